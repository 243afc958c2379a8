"""Model-chain steps in bounded memory (issue 20): cross-entropy filtering streams its corpus and scores."""

import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, read_corpus, step_env, write_corpus
from pipeline.cefilter import cefilter

CEFILTER = "pipeline.cefilter.cefilter"


def dropped_by_threshold(scores: list[float], fraction: float) -> set[int]:
    count = math.floor(len(scores) * fraction)
    if not count:
        return set()
    array = np.array(scores)

    def blocks():
        return iter(np.array_split(array, 7))

    threshold, ties = cefilter.drop_threshold(blocks, count, *cefilter.score_range(blocks())[1:])
    dropped = set()
    for index, value in enumerate(scores):
        if value < threshold or (value == threshold and ties > 0):
            ties -= value == threshold
            dropped.add(index)
    return dropped


@pytest.mark.parametrize("exact_below", [0, 5, 1_000_000])
def test_the_streaming_threshold_drops_what_sorting_drops(monkeypatch, exact_below):
    # exact_below=0 narrows the interval to a single value; ties, equal runs and adjacent floats included.
    monkeypatch.setattr(cefilter, "EXACT_BELOW", exact_below)
    rng = random.Random(0)
    for trial in range(120):
        size = rng.randint(1, 2000)
        kind = trial % 4
        if kind == 0:
            scores = [rng.gauss(-2, 1) for _ in range(size)]
        elif kind == 1:
            scores = [float(rng.randint(-5, 0)) for _ in range(size)]
        elif kind == 2:
            scores = [-1.0] * size
        else:
            scores = [rng.choice([-1e-9, 0.0, -3.5, -3.5000000000000004]) for _ in range(size)]
        fraction = rng.choice([0.0, 0.05, 0.1, 0.5, 0.99])
        assert dropped_by_threshold(scores, fraction) == cefilter.lowest(scores, fraction), (trial, fraction)


def filter_with_scores(tmp_path, lines: int) -> tuple[int, dict]:
    """Runs the step on `lines` generated pairs whose scores.zst is already there (as a rerun finds it), so
    Marian is not needed; returns the step's peak RSS in kB and its stats."""
    rng = random.Random(lines)
    corpus, model, out = tmp_path / f"corpus{lines}", tmp_path / "model", tmp_path / f"out{lines}"
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    src = [" ".join(rng.choices(words, k=8)) + f" {i}" for i in range(lines)]
    write_corpus(corpus / "corpus.en.zst", src)
    write_corpus(corpus / "corpus.fr.zst", [line.upper() for line in src])
    write_corpus(out / "scores.zst", [f"{rng.gauss(-2, 1):.6f}" for _ in range(lines)])
    model.mkdir(exist_ok=True)
    for name in ("final.model.npz", "vocab.spm"):
        (model / name).write_bytes(b"")
    (model / "final.model.npz.decoder.yml").write_text(
        "models: [final.model.npz]\nvocabs: [vocab.spm, vocab.spm]\n"
    )
    measure = (
        "import resource, subprocess, sys;"
        "code = subprocess.run(sys.argv[1:]).returncode;"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    args = ["--corpus-dir", corpus, "--model-dir", model, "--src", "en", "--trg", "fr",
            "--remove-fraction", "0.1", "--output-dir", out]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", CEFILTER, *map(str, args)],
        cwd=REPO_ROOT,
        env=step_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    kept = read_corpus(out / "corpus.en.zst")
    scores = [float(x) for x in read_corpus(out / "scores.zst")]
    worst = cefilter.lowest(scores, 0.1)
    assert kept == [line for i, line in enumerate(src) if i not in worst]
    return int(result.stdout.split()[-1]), json.loads((out / "stats.json").read_text())


def test_cefilter_memory_does_not_grow_with_the_corpus(tmp_path):
    small_rss, small = filter_with_scores(tmp_path, 40_000)
    large_rss, large = filter_with_scores(tmp_path, 400_000)
    assert (large["lines_in"], large["removed"], large["lines_out"]) == (400_000, 40_000, 360_000)
    assert small["removed"] == 4_000
    # Ten times the corpus: the old step (every pair in a list) grew about 4x here.
    assert large_rss <= 1.3 * small_rss, (small_rss, large_rss)


TRANSLATE = "pipeline.translate.translate"
# A stand-in for marian-decoder: echoes its input upper-cased, and stops after STOP_AFTER lines (exit STATUS).
FAKE_DECODER = """#!/usr/bin/env python3
import os, sys
stop, status = int(os.environ.get("STOP_AFTER", "-1")), int(os.environ.get("STATUS", "0"))
for number, line in enumerate(sys.stdin):
    if number == stop:
        sys.exit(status)
    sys.stdout.write(line.upper())
"""


def fake_marian(tmp_path):
    folder = tmp_path / "marian"
    folder.mkdir()
    (folder / "marian-decoder").write_text(FAKE_DECODER)
    (folder / "marian-decoder").chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    for name in ("final.model.npz", "final.model.npz.decoder.yml"):
        (model / name).write_bytes(b"")
    return folder, model


def translate(source, model, out, *extra, chunk=1, chunks=1, **env):
    """Runs the translation step on one chunk, in parts of 10 lines, with `env` added to the step's."""
    args = ["--input", source, "--chunk", chunk, "--chunks", chunks, "--model-dirs", model, "--part-lines", 10,
            "--output-dir", out, *extra]  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", TRANSLATE, *map(str, args)],
        cwd=REPO_ROOT,
        env=step_env(**env),
        capture_output=True,
        text=True,
    )


def test_a_decoder_that_dies_mid_stream_fails_clearly_and_keeps_the_finished_parts(tmp_path):
    marian, model = fake_marian(tmp_path)
    source = write_corpus(tmp_path / "source.zst", [f"line {i}" for i in range(35)])
    out = tmp_path / "out"
    result = translate(source, model, out, MARIAN=str(marian), STOP_AFTER="23", STATUS="3")
    assert result.returncode == 1
    assert (
        "Marian decode failed with exit status 3; see" in result.stderr and "Traceback" not in result.stderr
    )
    assert sorted(p.name for p in (out / "parts").glob("part.*.zst")) == ["part.00000.zst", "part.00001.zst"]
    assert not (out / "translation.zst").exists()
    # A decoder that ends early without an error is caught too.
    result = translate(source, model, out, MARIAN=str(marian), STOP_AFTER="11", STATUS="0")
    assert result.returncode == 1 and "Marian returned 11 translations for 15 lines" in result.stderr
    # The rerun resumes at the third part and finishes.
    result = translate(source, model, out, MARIAN=str(marian))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("already translated") == 3
    assert read_corpus(out / "translation.zst") == [f"LINE {i}" for i in range(35)]


def test_more_chunks_than_lines_leaves_the_last_chunks_empty_without_starting_marian(tmp_path):
    marian, model = fake_marian(tmp_path)
    (marian / "marian-decoder").write_text("#!/bin/sh\nexit 9\n")  # would fail the step if started
    source = write_corpus(tmp_path / "source.zst", ["one", "two", "three"])
    result = translate(source, model, tmp_path / "out", chunk=5, chunks=5, MARIAN=str(marian))
    assert result.returncode == 0, result.stderr
    assert read_corpus(tmp_path / "out" / "translation.zst") == []
    assert json.loads((tmp_path / "out" / "chunk.json").read_text())["lines"] == 0


def test_references_of_another_length_are_refused_before_decoding(tmp_path):
    marian, model = fake_marian(tmp_path)
    source = write_corpus(tmp_path / "source.zst", ["one", "two", "three"])
    references = write_corpus(tmp_path / "references.zst", ["un", "deux"])
    result = translate(source, model, tmp_path / "out", "--references", references, MARIAN=str(marian))
    assert result.returncode == 1 and "references.zst has 2 lines, " in result.stderr
    assert not (tmp_path / "out" / "parts").exists()
