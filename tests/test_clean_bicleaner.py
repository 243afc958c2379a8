"""bicleaner-ai: the model-pack fetch (loopback server) and the scoring step around the model call.

bicleaner-ai needs TensorFlow, which this project's lock does not hold: the scoring step is tested with a
scorer of the same interface (tests/bicleaner_scorers.py); the real one runs `bicleaner-ai-classify`, tested in
tests/test_clean_bicleaner_real.py where its environment (.venv-bicleaner/) is installed."""

import json

import pytest

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

FETCH = "pipeline.bicleaner.download_pack"
BICLEANER = "pipeline.bicleaner.bicleaner"
SCORER = "tests.bicleaner_scorers:LengthRatio"


def pack(with_metadata=True) -> bytes:
    metadata = {"fr-en/metadata.yaml": b"src_lang: fr\ntrg_lang: en\n"} if with_metadata else {}
    return tar_gz({"fr-en/model.h5": b"weights", **metadata})


PACKS = {
    "/full-fr-en.tgz": pack(),
    "/full-de-en.tgz": pack(with_metadata=False),
    "/full-es-en.tgz": b"not a tarball",
}


@pytest.fixture(scope="module")
def served():
    with file_server(PACKS) as (url, requested):
        yield url, requested


@pytest.fixture
def server(served):
    return served[0]


def fetch(server, src, trg, out, check=True):
    env = step_env(BICLEANER_MIRROR=server, DOWNLOAD_BACKOFF="0.01", DOWNLOAD_ATTEMPTS="2")
    return run_step(FETCH, ["--src", src, "--trg", trg, "--output-dir", out], env=env, check=check)


def test_the_pack_of_the_reversed_pair_is_used_with_swapped_columns(served, tmp_path):
    server, requested = served
    out = tmp_path / "pack"
    fetch(server, "en", "fr", out)
    info = json.loads((out / "pack.json").read_text())
    assert (info["pack"], info["swapped"]) == ("full-fr-en", True)
    assert requested[-2:] == ["/full-en-fr.tgz", "/full-fr-en.tgz"]
    assert sorted(p.name for p in out.iterdir()) == ["bicleaner-pack.tar.zst", "pack.json"]


@pytest.mark.parametrize(
    "src, trg, message",
    [
        ("en", "de", "has no metadata.yaml"),
        ("en", "es", "not a valid tarball"),
        ("en", "xx", "no bicleaner-ai pack for en-xx"),
    ],
)
def test_bad_or_missing_packs_fail_clearly(server, tmp_path, src, trg, message):
    result = fetch(server, src, trg, tmp_path / "pack", check=False)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pack" / "pack.json").exists()


@pytest.fixture
def cleaned(tmp_path):
    pairs = sample_pairs(2000) + [("short", "une phrase beaucoup plus longue que sa source")] * 5
    folder = tmp_path / "cleaned"
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs])
    (folder / "stats.json").write_text('{"dataset": "opus_X/v1"}')
    return folder


def score(cleaned, out, threshold, *extra, check=True):
    args = [
        "--input-dir",
        cleaned,
        "--src",
        "en",
        "--trg",
        "fr",
        "--threshold",
        threshold,
        "--output-dir",
        out,
        *extra,
    ]
    return run_step(BICLEANER, args, check=check)


def test_threshold_zero_copies_through_without_a_model(cleaned, tmp_path):
    out = tmp_path / "out"
    score(cleaned, out, "0")
    assert read_corpus(out / "corpus.en.zst") == read_corpus(cleaned / "corpus.en.zst")
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["scored"], stats["removed"], stats["lines_out"]) == (False, 0, 2005)


def test_pairs_at_or_below_the_threshold_are_removed(server, cleaned, tmp_path):
    fetch(server, "en", "fr", tmp_path / "pack")
    out = tmp_path / "out"
    score(cleaned, out, "0.5", "--pack", tmp_path / "pack", "--scorer", SCORER, "--block-size", "300")
    scores = [float(s) for s in read_corpus(out / "scores.zst")]
    src, trg = read_corpus(cleaned / "corpus.en.zst"), read_corpus(cleaned / "corpus.fr.zst")
    expected = [(s, t) for s, t, x in zip(src, trg, scores, strict=True) if x > 0.5]
    assert (
        list(zip(read_corpus(out / "corpus.en.zst"), read_corpus(out / "corpus.fr.zst"), strict=True))
        == expected
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats["removed"] == 2005 - len(expected) >= 5 and stats["dataset"] == "opus_X/v1"
    assert sum(stats["score_histogram"].values()) == 2005
    assert not (out / ".work").exists()


def test_the_real_scorer_finds_bicleaner_ai_or_says_how_to_install_it(tmp_path, monkeypatch):
    from pipeline.bicleaner import scorers
    from pipeline.common.step import StepError

    monkeypatch.setenv("BICLEANER_AI_CLASSIFY", str(tmp_path / "nothing"))
    with pytest.raises(StepError, match="BICLEANER_AI_CLASSIFY=.*nothing is not an executable"):
        scorers.find_command()
    monkeypatch.delenv("BICLEANER_AI_CLASSIFY")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(scorers, "EXTRA_ENVIRONMENT", tmp_path / "absent")
    with pytest.raises(StepError, match="run `TRANSLATIONS_EXTRAS=bicleaner scripts/setup.sh`"):
        scorers.find_command()
    # The environment that setup.sh installs, found without PATH.
    command = tmp_path / "venv" / "bin" / "bicleaner-ai-classify"
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    monkeypatch.setattr(scorers, "EXTRA_ENVIRONMENT", tmp_path / "venv")
    assert scorers.find_command() == str(command)
    monkeypatch.setenv("BICLEANER_AI_CLASSIFY", str(command))
    assert scorers.find_command() == str(command)


def test_bad_input_and_bad_scores_fail_clearly(server, cleaned, tmp_path):
    result = score(cleaned, tmp_path / "a", "0.5", check=False)
    assert result.returncode == 1 and "needs --pack" in result.stderr
    result = score(cleaned, tmp_path / "b", "1.5", check=False)
    assert result.returncode == 1 and "between 0 and 1" in result.stderr
    fetch(server, "en", "fr", tmp_path / "pack")
    result = score(
        cleaned,
        tmp_path / "c",
        "0.5",
        "--pack",
        tmp_path / "pack",
        "--scorer",
        "tests.bicleaner_scorers:Broken",
        check=False,
    )
    assert result.returncode == 1 and "scores are between 0 and 1" in result.stderr
    assert not (tmp_path / "c" / "corpus.en.zst").exists()
    result = score(cleaned, tmp_path / "d", "0.5", "--pack", tmp_path / "pack", check=False)
    assert result.returncode == 1 and (
        "bicleaner-ai-classify is not installed" in result.stderr or "failed" in result.stderr
    )
    write_corpus(tmp_path / "bad" / "corpus.en.zst", ["a", "b"])
    write_corpus(tmp_path / "bad" / "corpus.fr.zst", ["a"])
    result = score(tmp_path / "bad", tmp_path / "e", "0", check=False)
    assert (
        result.returncode == 1 and "line counts differ" in result.stderr and "Traceback" not in result.stderr
    )


def test_kill_9_then_rerun_gives_the_same_outputs(server, tmp_path):
    pairs = sample_pairs(40000) * 4
    folder = tmp_path / "cleaned"
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs])
    fetch(server, "en", "fr", tmp_path / "pack")
    extra = ["--pack", tmp_path / "pack", "--scorer", SCORER, "--block-size", "5000"]
    score(folder, tmp_path / "reference", "0.5", *extra)
    out = tmp_path / "out"
    args = [
        "--input-dir",
        folder,
        "--src",
        "en",
        "--trg",
        "fr",
        "--threshold",
        "0.5",
        "--output-dir",
        out,
        *extra,
    ]
    # Fails unless the step (and its scorer) was killed mid-run; one that finished first is run again sooner.
    kill_step_after(BICLEANER, args, 1.0, retry_dir=out)
    score(folder, out, "0.5", *extra)
    for name in ("corpus.en.zst", "corpus.fr.zst", "scores.zst", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()


def test_the_schema_takes_the_reference_shape_and_names_a_bad_threshold():
    import yaml

    from translations_taskgraph.training_config import (
        ConfigError,
        bicleaner_threshold,
        validate_training_config,
    )

    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["experiment"]["bicleaner"] = {
        "default-threshold": 0.5,
        "dataset-thresholds": {"opus_ParaCrawl_v9": 0.7},
    }
    validated = validate_training_config(config)
    assert bicleaner_threshold(validated, "opus_ParaCrawl/v9") == 0.7
    assert bicleaner_threshold(validated, "local_data/l10n-en-fr/train") == 0.5
    config["experiment"]["bicleaner"]["dataset-thresholds"]["opus_X_v1"] = 7
    with pytest.raises(
        ConfigError, match=r"experiment\.bicleaner\.dataset-thresholds\.opus_X_v1: must be between 0 and 1"
    ):
        validate_training_config(config)
