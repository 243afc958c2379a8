"""monocleaner: the model-pack fetch (loopback server), the scoring step around the model call and its wiring
into the graph and the funnel.

The step's logic is tested with a scorer of the same interface (tests/monocleaner_scorers.py); the real scorer
(monocleaner's language-model filter on KenLM, an extra outside the lock that CI installs) with a pack trained
from the demo corpus in the test, skipped where the extra is not installed."""

import json
import subprocess
import sys
import tarfile

import pytest
import yaml

from conftest import (
    REPO_ROOT,
    file_server,
    kill_step_after,
    read_corpus,
    run_step,
    sample_pairs,
    step_env,
    tar_gz,
    write_corpus,
)

FETCH = "pipeline.monocleaner.download_pack"
MONOCLEANER = "pipeline.monocleaner.monocleaner"
SCORER = "tests.monocleaner_scorers:LetterShare"


def pack(with_metadata=True) -> bytes:
    metadata = {"fr/metadata.yaml": b"language: fr\nlm_type: CHARACTER\n"} if with_metadata else {}
    return tar_gz({"fr/fr.lm.bin": b"kenlm", **metadata})


PACKS = {"/fr.tgz": pack(), "/de.tgz": pack(with_metadata=False), "/es.tgz": b"not a tarball"}


@pytest.fixture(scope="module")
def server():
    with file_server(PACKS) as (url, _):
        yield url


def fetch(server, lang, out, check=True):
    env = step_env(MONOCLEANER_MIRROR=server, DOWNLOAD_BACKOFF="0.01", DOWNLOAD_ATTEMPTS="2")
    return run_step(FETCH, ["--lang", lang, "--output-dir", out], env=env, check=check)


@pytest.fixture
def cleaned(tmp_path):
    lines = [t for _, t in sample_pairs(2000)] + ["%%% 123 ### 456"] * 5
    folder = tmp_path / "cleaned"
    write_corpus(folder / "corpus.fr.zst", lines)
    (folder / "stats.json").write_text('{"dataset": "hplt_mono/v3.0", "lang": "fr"}')
    return folder


def score(cleaned, out, threshold, *extra, check=True, env=None):
    args = ["--input-dir", cleaned, "--lang", "fr", "--threshold", threshold, "--output-dir", out, *extra]
    return run_step(MONOCLEANER, args, check=check, env=env)


def test_the_pack_of_the_language_is_fetched_and_stored(server, tmp_path):
    out = tmp_path / "pack"
    fetch(server, "fr", out)
    info = json.loads((out / "pack.json").read_text())
    assert (info["lang"], info["pack"]) == ("fr", "fr") and info["url"].endswith("/fr.tgz")
    assert sorted(p.name for p in out.iterdir()) == ["monocleaner-pack.tar.zst", "pack.json"]


def test_a_fetch_killed_mid_download_leaves_no_pack_and_a_rerun_completes_it(server, tmp_path):
    fetch(server, "fr", tmp_path / "reference")
    out = tmp_path / "pack"
    env = step_env(MONOCLEANER_MIRROR=f"{server}/slow", DOWNLOAD_BACKOFF="0.01", DOWNLOAD_ATTEMPTS="2")
    assert kill_step_after(FETCH, ["--lang", "fr", "--output-dir", out], 1.0, env=env)
    assert not (out / "pack.json").exists() and not (out / "monocleaner-pack.tar.zst").exists()
    fetch(server, "fr", out)
    assert sorted(p.name for p in out.iterdir()) == ["monocleaner-pack.tar.zst", "pack.json"]
    reference = json.loads((tmp_path / "reference" / "pack.json").read_text())
    assert json.loads((out / "pack.json").read_text())["metadata"] == reference["metadata"]
    for name in ("monocleaner-pack.tar.zst",):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()


@pytest.mark.parametrize(
    "lang, message",
    [
        ("de", "has no metadata.yaml"),
        ("es", "not a valid tarball"),
        ("it", "no monocleaner pack for language it"),
    ],
)
def test_bad_or_missing_packs_fail_clearly(server, tmp_path, lang, message):
    result = fetch(server, lang, tmp_path / "pack", check=False)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pack" / "pack.json").exists()


def test_threshold_zero_copies_through_without_a_model(cleaned, tmp_path):
    out = tmp_path / "out"
    score(cleaned, out, "0")
    assert read_corpus(out / "corpus.fr.zst") == read_corpus(cleaned / "corpus.fr.zst")
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["scored"], stats["removed"], stats["lines_out"], stats["lang"]) == (False, 0, 2005, "fr")


def test_sentences_at_or_below_the_threshold_are_removed(server, cleaned, tmp_path):
    fetch(server, "fr", tmp_path / "pack")
    out = tmp_path / "out"
    score(cleaned, out, "0.6", "--pack", tmp_path / "pack", "--scorer", SCORER, "--block-size", "300")
    scores = [float(s) for s in read_corpus(out / "scores.zst")]
    lines = read_corpus(cleaned / "corpus.fr.zst")
    expected = [line for line, x in zip(lines, scores, strict=True) if x > 0.6]
    assert read_corpus(out / "corpus.fr.zst") == expected
    assert "%%% 123 ### 456" not in expected
    stats = json.loads((out / "stats.json").read_text())
    assert stats["removed"] == 2005 - len(expected) >= 5 and stats["dataset"] == "hplt_mono/v3.0"
    assert sum(stats["score_histogram"].values()) == 2005
    assert not (out / ".work").exists()


def bigram_arpa(token_lines: list[str]) -> str:
    """A KenLM-readable ARPA bigram model (add-one smoothed, no backoff) of tokenized lines: what lmplz would
    estimate, in miniature, for the tests (lmplz itself needs Boost and is not in the kenlm wheel)."""
    import math
    from collections import Counter

    unigrams, bigrams = Counter(), Counter()
    for line in token_lines:
        tokens = ["<s>", *line.split(), "</s>"]
        unigrams.update(tokens)
        bigrams.update(zip(tokens, tokens[1:], strict=False))
    vocab = [*sorted(unigrams), "<unk>"]
    total = sum(unigrams.values()) + len(vocab)
    lines = ["\\data\\", f"ngram 1={len(vocab)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    for token in vocab:
        probability = -99.0 if token == "<s>" else math.log10((unigrams[token] + 1) / total)
        lines.append(f"{probability:.6f}\t{token}\t0")
    lines += ["", "\\2-grams:"]
    for (first, second), count in sorted(bigrams.items()):
        lines.append(f"{math.log10((count + 1) / (unigrams[first] + len(vocab))):.6f}\t{first} {second}")
    return "\n".join([*lines, "", "\\end\\", ""])


@pytest.fixture(scope="module")
def real_pack(tmp_path_factory):
    """A monocleaner pack trained as monocleaner-train does (character LM of clean French text, perplexity
    statistics of held-out clean and of noisy text), with the bigram estimator above in place of lmplz."""
    lm = pytest.importorskip(
        "monocleaner.lm", reason="monocleaner is an extra: TRANSLATIONS_EXTRAS=monocleaner scripts/setup.sh"
    )
    import random

    import numpy

    french = [t for _, t in sample_pairs(6000)]
    train, held_out = french[:5000], french[5000:5500]
    rng = random.Random(1)
    noisy = ["".join(rng.sample(line, len(line))) for line in held_out]
    fluency = lm.LMFluencyFilter(lm.LMType.CHARACTER, "fr", None)
    folder = tmp_path_factory.mktemp("monocleaner") / "fr"
    folder.mkdir()
    (folder / "fr.arpa").write_text(
        bigram_arpa([fluency._tokenize(line) for line in train]), encoding="utf-8"
    )
    fluency.load(str(folder / "fr.arpa"))
    clean_scores = [fluency.raw_score(line) for line in held_out]
    noisy_scores = [fluency.raw_score(line) for line in noisy]
    metadata = {
        "language": "fr", "lm_type": "CHARACTER", "lm_file": "fr.arpa",
        "clean_mean_perp": float(numpy.mean(clean_scores)), "clean_stddev_perp": float(numpy.std(clean_scores)),
        "noisy_mean_perp": float(numpy.mean(noisy_scores)), "noisy_stddev_perp": float(numpy.std(noisy_scores)),
    }  # fmt: skip
    (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    archive = folder.parent / "fr.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="fr")
    out = folder.parent / "pack"
    with file_server({"/fr.tgz": archive.read_bytes()}) as (url, _):
        fetch(url, "fr", out)
    return out, french[5500:6000], ["".join(rng.sample(line, len(line))) for line in french[5500:6000]]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_real_monocleaner_model_keeps_fluent_text_and_drops_scrambled_text(real_pack, tmp_path, threads):
    pack, fluent, scrambled = real_pack
    folder = tmp_path / "cleaned"
    write_corpus(
        folder / "corpus.fr.zst", [line for pair in zip(fluent, scrambled, strict=True) for line in pair]
    )
    out = tmp_path / "out"
    score(folder, out, "0.5", "--pack", pack, "--block-size", "300", env=step_env(THREADS=threads))
    kept = set(read_corpus(out / "corpus.fr.zst"))
    assert len(kept & set(fluent)) >= 0.9 * len(set(fluent))
    assert len(kept & set(scrambled)) <= 0.1 * len(set(scrambled))
    scores = [float(x) for x in read_corpus(out / "scores.zst")]
    assert len(scores) == 1000 and all(0 <= x <= 1 for x in scores)
    if threads == "2":  # the forked workers score exactly as one process does
        one = tmp_path / "one"
        score(folder, one, "0.5", "--pack", pack, "--block-size", "300", env=step_env(THREADS="1"))
        assert (one / "scores.zst").read_bytes() == (out / "scores.zst").read_bytes()


def test_a_pack_for_another_language_is_refused(real_pack, tmp_path):
    pack, fluent, _ = real_pack
    folder = tmp_path / "cleaned"
    write_corpus(folder / "corpus.de.zst", fluent[:10])
    result = run_step(
        MONOCLEANER, ["--input-dir", folder, "--lang", "de", "--threshold", "0.5", "--pack", pack, "--output-dir", tmp_path / "out"],
        check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "the monocleaner pack is for language 'fr', not 'de'" in result.stderr


def test_bad_input_and_bad_scores_fail_clearly(server, cleaned, tmp_path):
    result = score(cleaned, tmp_path / "a", "0.5", check=False)
    assert result.returncode == 1 and "needs --pack" in result.stderr
    result = score(cleaned, tmp_path / "b", "1.5", check=False)
    assert result.returncode == 1 and "between 0 and 1" in result.stderr
    fetch(server, "fr", tmp_path / "pack")
    result = score(
        cleaned, tmp_path / "c", "0.5", "--pack", tmp_path / "pack", "--scorer", "tests.bicleaner_scorers:Broken",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "scores are between 0 and 1" in result.stderr
    # The test pack holds no language model: monocleaner (or its absence) is named, nothing is written.
    result = score(cleaned, tmp_path / "d", "0.5", "--pack", tmp_path / "pack", check=False)
    assert result.returncode == 1 and (
        "monocleaner is not installed" in result.stderr
        or "pack in" in result.stderr
        and "cannot be loaded" in result.stderr
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "d" / "corpus.fr.zst").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    import zstandard

    (bad / "corpus.fr.zst").write_bytes(zstandard.ZstdCompressor().compress(b"bonjour\n\xff\xfe\n"))
    result = score(bad, tmp_path / "e", "0", check=False)
    assert result.returncode == 1 and "UTF-8" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "e" / "corpus.fr.zst").exists()
    result = score(tmp_path / "missing", tmp_path / "f", "0", check=False)
    assert result.returncode == 1 and "no cleaned corpus" in result.stderr


def test_kill_9_then_rerun_gives_the_same_outputs(server, tmp_path):
    lines = [t for _, t in sample_pairs(40000)] * 6
    folder = tmp_path / "cleaned"
    write_corpus(folder / "corpus.fr.zst", lines)
    fetch(server, "fr", tmp_path / "pack")
    extra = ["--pack", tmp_path / "pack", "--scorer", SCORER, "--block-size", "5000"]
    score(folder, tmp_path / "reference", "0.6", *extra)
    out = tmp_path / "out"
    args = ["--input-dir", folder, "--lang", "fr", "--threshold", "0.6", "--output-dir", out, *extra]
    # Fails unless the step (and its scorer) was killed mid-run; one that finished first is run again sooner.
    kill_step_after(MONOCLEANER, args, 1.0, retry_dir=out)
    score(folder, out, "0.6", *extra)
    for name in ("corpus.fr.zst", "scores.zst", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()


def tiny_config(**monocleaner):
    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["experiment"]["monocleaner"] = monocleaner
    return config


def test_the_schema_takes_the_reference_shape_and_names_a_bad_threshold():
    from translations_taskgraph.training_config import (
        ConfigError,
        monocleaner_threshold,
        validate_training_config,
    )

    config = tiny_config(
        **{"mono-trg": {"default-threshold": 0.0, "dataset-thresholds": {"local_data_l10n_en_fr_mono": 0.7}}}
    )
    validated = validate_training_config(config)
    assert monocleaner_threshold(validated, "trg", "local_data/l10n-en-fr/mono") == 0.7
    assert monocleaner_threshold(validated, "trg", "local_data/l10n-en-fr/mono-slice") == 0.0
    assert monocleaner_threshold(validated, "src", "local_data/l10n-en-fr/mono-slice") == 0.0
    config["experiment"]["monocleaner"]["mono-src"] = {"default-threshold": 2}
    with pytest.raises(
        ConfigError, match=r"experiment\.monocleaner\.mono-src\.default-threshold: must be between 0 and 1"
    ):
        validate_training_config(config)


def test_a_threshold_for_a_dataset_the_config_does_not_list_is_warned_about(caplog):
    from translations_taskgraph.training_config import validate_training_config

    validate_training_config(
        tiny_config(**{"mono-trg": {"dataset-thresholds": {"local_data_l10n_en_fr_monoo": 0.7}}})
    )
    assert (
        "experiment.monocleaner.mono-trg.dataset-thresholds.local_data_l10n_en_fr_monoo: names no dataset"
        in caplog.text
    )


def test_the_graph_fetches_a_pack_only_for_a_language_that_filters(tmp_path):
    config = tiny_config(**{"mono-trg": {"dataset-thresholds": {"local_data_l10n_en_fr_mono": 0.7}}})
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "localrun", "--config", path, "--runs-dir", tmp_path / "runs", "--dry-run",
               "--target-stage", "corpus-merge-mono"]  # fmt: skip
    # The run is refused up front where monocleaner is not installed; stand-ins let this one render the graph.
    stand_ins = tmp_path / "stand-ins"
    (stand_ins / "monocleaner").mkdir(parents=True)
    (stand_ins / "monocleaner" / "__init__.py").write_text("")
    (stand_ins / "kenlm.py").write_text("")
    env = step_env(PYTHONPATH=str(stand_ins))
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    plan = result.stdout + result.stderr
    assert "corpus-clean-mono-fetch-monocleaner-model-fr " in plan
    assert "fetch-monocleaner-model-en" not in plan
    filtered = next(
        line
        for line in plan.splitlines()
        if "corpus-clean-mono-monocleaner-local_data_l10n_en_fr_mono-fr " in line
    )
    assert "corpus-clean-mono-fetch-monocleaner-model-fr" in filtered
    merge = next(line for line in plan.splitlines() if "corpus-merge-mono-trg-fr " in line)
    assert "corpus-clean-mono-monocleaner-local_data_l10n_en_fr_mono-fr" in merge


def test_the_funnel_counts_what_monocleaner_removed():
    from pipeline.eval.funnel import build_funnel

    imported = [{"dataset": "hplt_mono/v3.0", "langs": ["fr"], "lines": 100}]
    cleaned = [{"dataset": "hplt_mono/v3.0", "lang": "fr", "removed": {"langid": 10}, "lines_out": 90}]
    monocleaned = [{"dataset": "hplt_mono/v3.0", "lang": "fr", "removed": 30, "lines_out": 60}]
    merged = [{"lang": "fr", "datasets": [{"dataset": "hplt_mono/v3.0", "duplicates_exact": 5, "kept": 55}]}]
    row = build_funnel(imported, cleaned, merged, [], monocleaned)["datasets"][0]
    assert (row["cleaning"], row["monocleaner"], row["duplicates"], row["kept"]) == (10, 30, 5, 55)
