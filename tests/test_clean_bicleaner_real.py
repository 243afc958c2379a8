"""bicleaner-ai's real command-line contract: a tiny model trained here by bicleaner-ai-train (its default
dec_attention classifier) is fetched as a model pack and scored by the real `bicleaner-ai-classify` through the
pipeline's own steps (pipeline/bicleaner/download_pack.py, bicleaner.py and scorers.py): the arguments, the
input columns (swapped for a pack of the reversed pair), the score column, one score per pair in order.

bicleaner-ai pins numpy<2 and TensorFlow, so it lives in an environment of its own, `.venv-bicleaner/`
(`TRANSLATIONS_EXTRAS=bicleaner scripts/setup.sh`); without it these tests are skipped. The model is far too
small to judge quality (one epoch of 20 batches): the tests check the contract, not the scores' worth. Nothing
may come from the Hugging Face hub: every HTTP request but those to this machine goes to a closed port."""

import json
import subprocess

import pytest

from conftest import (
    REPO_ROOT,
    file_server,
    read_corpus,
    run_step,
    sample_pairs,
    step_env,
    tar_gz,
    write_corpus,
)
from pipeline.common.io import read_lines

ENVIRONMENT = REPO_ROOT / ".venv-bicleaner"
FETCH = "pipeline.bicleaner.download_pack"
BICLEANER = "pipeline.bicleaner.bicleaner"

pytestmark = pytest.mark.skipif(
    not (ENVIRONMENT / "bin" / "bicleaner-ai-classify").exists(),
    reason="bicleaner-ai's environment .venv-bicleaner/ is absent: `TRANSLATIONS_EXTRAS=bicleaner "
    "scripts/setup.sh` installs it",
)

# A download attempt fails at once instead of reaching the hub (the loopback pack server stays reachable).
NO_INTERNET = {
    **{name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
    **{name: "127.0.0.1,localhost" for name in ("NO_PROXY", "no_proxy")},
}

# bicleaner-ai-train as its console script runs it (get_arguments, initialization, perform_training), with the
# one setting its command line lacks: the SentencePiece vocabulary, 32,000 pieces by default, more than the
# sample corpus has ("Vocabulary size too high (32000). Please set it to a value <= 23015"); perform_training
# takes it from the arguments when they have it.
TRAIN = """
import sys
from bicleaner_ai import bicleaner_ai_train as train
args = train.get_arguments(sys.argv[1:])
args.vocab_size = 2000
train.initialization(args)
train.perform_training(args)
"""

# Pairs whose place in the output is known: a source that is only spaces (bicleaner-ai scores an empty side 0
# without the model), and sentences holding a tab and a carriage return, which must stay one pair, two columns.
BLANK, TAB, CARRIAGE_RETURN = 5, 11, 17


def train_tiny_model(folder):
    """Trains the model in folder/model with bicleaner-ai-train's defaults (dec_attention, hard rules off)
    but one epoch of 20 batches of 32 and a vocabulary of 2,000 pieces; frequency noise needs a word-frequency
    list, so it is off (`--freq_ratio 0`): the negative examples are random pairs and pairs with words omitted.
    About 45 s on 2 cores, 15 of them for the GloVe embeddings."""
    train, dev = sample_pairs(9000), sample_pairs(200, "dev")
    mono = [s for s, _ in train[:5000]] + [t for _, t in train[:5000]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mono.txt").write_text(
        "".join(f"{line}\n" for line in mono[::2] + mono[1::2]), encoding="utf-8"
    )
    for name, pairs in (("train.tsv", train[5000:]), ("valid.tsv", dev)):
        (folder / name).write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    model = folder / "model"
    model.mkdir()
    command = [
        ENVIRONMENT / "bin" / "python", "-c", TRAIN, "--model_dir", model, "--source_lang", "en",
        "--target_lang", "fr", "--mono_train", folder / "mono.txt", "--parallel_train", folder / "train.tsv",
        "--parallel_valid", folder / "valid.tsv", "--freq_ratio", "0", "--epochs", "1", "--steps_per_epoch", "20",
        "--batch_size", "32", "--seed", "1", "--quiet",
    ]  # fmt: skip
    result = subprocess.run(
        [str(part) for part in command],
        cwd=REPO_ROOT,
        env=step_env(BICLEANER_AI_THREADS="2", **NO_INTERNET),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"bicleaner-ai-train failed:\n{result.stderr[-5000:]}"
    return model


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory):
    """The tiny model served as bicleaner-ai's release page serves its packs (full-en-fr.tgz)."""
    model = train_tiny_model(tmp_path_factory.mktemp("bicleaner-train"))
    metadata = (model / "metadata.yaml").read_text()
    assert "classifier_type: dec_attention" in metadata and "vocab_size: 2000" in metadata
    archive = tar_gz({f"en-fr/{path.name}": path.read_bytes() for path in sorted(model.iterdir())})
    with file_server({"/full-en-fr.tgz": archive}) as (url, _):
        yield url, model


def cleaned_pairs() -> list[tuple[str, str]]:
    pairs = sample_pairs(40, "dev")
    pairs[BLANK] = ("   ", pairs[BLANK][1])
    pairs[TAB] = ("Column one\tand column two", pairs[TAB][1])
    pairs[CARRIAGE_RETURN] = ("First line\rsecond line", pairs[CARRIAGE_RETURN][1])
    return pairs


def score_with_the_real_classifier(tmp_path, url, src, trg, pairs):
    """Fetches the pack for src-trg and runs the bicleaner step on pairs with its default scorer."""
    env = step_env(THREADS="2", BICLEANER_MIRROR=url, **NO_INTERNET)
    run_step(FETCH, ["--src", src, "--trg", trg, "--output-dir", tmp_path / "pack"], env=env)
    cleaned = tmp_path / "cleaned"
    write_corpus(cleaned / f"corpus.{src}.zst", [s for s, _ in pairs])
    write_corpus(cleaned / f"corpus.{trg}.zst", [t for _, t in pairs])
    (cleaned / "stats.json").write_text('{"dataset": "opus_X/v1"}')
    out = tmp_path / "out"
    args = ["--input-dir", cleaned, "--src", src, "--trg", trg, "--threshold", "0.001",
            "--pack", tmp_path / "pack", "--output-dir", out]  # fmt: skip
    result = run_step(BICLEANER, args, env=env)
    return out, [float(line) for line in read_corpus(out / "scores.zst")], result


@pytest.fixture(scope="module")
def scored(pack_server, tmp_path_factory):
    url, _ = pack_server
    return score_with_the_real_classifier(tmp_path_factory.mktemp("en-fr"), url, "en", "fr", cleaned_pairs())


def test_the_real_classifier_scores_every_pair_in_order_through_the_step(scored):
    out, scores, result = scored
    pairs = cleaned_pairs()
    assert len(scores) == len(pairs) and all(0 <= score <= 1 for score in scores)
    # The empty side's 0 is where its pair is, and only there: the scores follow the pairs line by line.
    assert scores[BLANK] == 0 and all(score > 0 for i, score in enumerate(scores) if i != BLANK)
    assert len(set(scores)) > len(scores) // 2, "the model gave the same score to most pairs"
    kept = [pair for pair, score in zip(pairs, scores, strict=True) if score > 0.001]
    src, trg = read_lines(out / "corpus.en.zst"), read_lines(out / "corpus.fr.zst")
    assert list(zip(src, trg, strict=True)) == kept  # the tab and the carriage return as they were
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["scored"], stats["lines_in"], stats["lines_out"]) == (True, len(pairs), len(kept))
    # The command's warnings reach the step's log; the threads are given its way (BICLEANER_AI_THREADS).
    assert "bicleaner-ai-classify: " in result.stderr
    assert "--processes option is not available" not in result.stderr


def test_a_pack_of_the_reversed_pair_reads_the_swapped_columns(pack_server, scored, tmp_path, monkeypatch):
    """fr-en data with the en-fr model: the fetch marks the pack swapped, the scorer hands the command the
    columns the other way round, and each pair gets the score it got as en-fr."""
    url, model = pack_server
    _, en_fr, _ = scored
    reversed_pairs = [(t, s) for s, t in cleaned_pairs()]
    out, fr_en, _ = score_with_the_real_classifier(tmp_path, url, "fr", "en", reversed_pairs)
    assert json.loads((tmp_path / "pack" / "pack.json").read_text())["swapped"] is True
    assert fr_en == en_fr
    # The control: read the wrong way round, the same pairs score otherwise (so the equality above means
    # something).
    from pipeline.bicleaner.scorers import BicleanerAI

    for name, value in NO_INTERNET.items():
        monkeypatch.setenv(name, value)
    wrong_way = BicleanerAI(model, swapped=True, threads=2).score(cleaned_pairs())
    assert len(wrong_way) == len(en_fr) and wrong_way != en_fr
