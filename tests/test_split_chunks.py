"""The chunk kinds (pipeline/translate/split.py): a corpus to translate split once into its chunks, each
translate task reading only its own, and the translations collected back in the corpus's order."""

import json
import time

from test_streaming_chain import fake_marian, translate

from conftest import kill_step_after, read_corpus, run_step, tree_digest, write_corpus

SPLIT = "pipeline.translate.split"
COLLECT = "pipeline.translate.collect"


def test_chunks_hold_the_lines_translate_would_take_and_collect_back_in_order(tmp_path):
    from pipeline.translate.translate import chunk_bounds

    source = [f"line {i}" for i in range(35)]
    corpus = tmp_path / "corpus"
    write_corpus(corpus / "corpus.en.zst", source)
    write_corpus(corpus / "corpus.fr.zst", [f"ligne {i}" for i in range(35)])
    before = tree_digest(corpus)
    out = tmp_path / "chunks"
    args = ["--input", corpus / "corpus.en.zst", "--references", corpus / "corpus.fr.zst", "--chunks", 3,
            "--output-dir", out]  # fmt: skip
    run_step(SPLIT, args)
    assert json.loads((out / "chunks.json").read_text()) == {
        "chunks": 3, "lines": 35, "inputs": ["corpus.en.zst", "corpus.fr.zst"],
    }  # fmt: skip
    for chunk in (1, 2, 3):
        start, end = chunk_bounds(35, chunk, 3)
        assert read_corpus(out / f"chunk.{chunk}.corpus.en.zst") == source[start:end]
        assert read_corpus(out / f"chunk.{chunk}.corpus.fr.zst") == [f"ligne {i}" for i in range(start, end)]
    assert tree_digest(corpus) == before

    # Each translate task reads its chunk only (a stand-in decoder upper-cases), with its references.
    marian, model = fake_marian(tmp_path)
    chunk_dirs = []
    for chunk in (2, 3, 1):
        chunk_dirs.append(tmp_path / f"translated{chunk}")
        result = translate(
            out / f"chunk.{chunk}.corpus.en.zst", model, chunk_dirs[-1], "--input-holds", "chunk",
            chunk=chunk, chunks=3, MARIAN=str(marian),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    collected = tmp_path / "collected"
    run_step(COLLECT, ["--original-dir", corpus, "--original-lang", "en", "--translated-lang", "fr",
                       "--chunk-dirs", *chunk_dirs, "--output-dir", collected])  # fmt: skip
    assert read_corpus(collected / "corpus.fr.zst") == [line.upper() for line in source]
    again = run_step(SPLIT, args)
    assert "nothing to do" in again.stderr


def test_more_chunks_than_lines_gives_empty_last_chunks_and_loses_nothing(tmp_path):
    source = write_corpus(tmp_path / "corpus.en.zst", ["one", "two", "three"])
    out = tmp_path / "chunks"
    result = run_step(SPLIT, ["--input", source, "--chunks", 5, "--output-dir", out])
    assert "5 chunks for 3 lines: chunks 4 to 5 are empty" in result.stderr
    chunks = [read_corpus(out / f"chunk.{k}.corpus.en.zst") for k in range(1, 6)]
    assert chunks == [["one"], ["two"], ["three"], [], []]


def test_split_refuses_bad_input_and_writes_nothing(tmp_path):
    source = write_corpus(tmp_path / "a" / "corpus.en.zst", ["one", "two", "three"])
    references = write_corpus(tmp_path / "a" / "corpus.fr.zst", ["un", "deux"])
    out = tmp_path / "chunks"
    result = run_step(SPLIT, ["--input", source, "--references", references, "--chunks", 2, "--output-dir", out],
                      check=False)  # fmt: skip
    assert result.returncode == 1 and "line counts differ" in result.stderr and "has 2" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    same_name = write_corpus(tmp_path / "b" / "corpus.en.zst", ["uno", "dos", "tres"])
    result = run_step(SPLIT, ["--input", source, "--references", same_name, "--chunks", 2, "--output-dir", out],
                      check=False)  # fmt: skip
    assert result.returncode == 1 and "the same file name" in result.stderr
    result = run_step(SPLIT, ["--input", source, "--chunks", 0, "--output-dir", out], check=False)
    assert result.returncode == 2 and "--chunks" in result.stderr
    bad = tmp_path / "bad" / "corpus.en"
    bad.parent.mkdir()
    bad.write_bytes(b"fine\n\xff\xfe broken\n")
    result = run_step(SPLIT, ["--input", bad, "--chunks", 2, "--output-dir", out], check=False)
    assert result.returncode == 1 and "UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_split_rerun_after_kill_9_gives_the_same_chunks(tmp_path):
    lines = [f"sentence number {i} of a corpus long enough to be killed halfway" for i in range(400_000)]
    source = write_corpus(tmp_path / "corpus.en.zst", lines)
    unkilled = tmp_path / "unkilled"
    started = time.time()
    run_step(SPLIT, ["--input", source, "--chunks", 4, "--output-dir", unkilled])
    seconds = time.time() - started
    killed = tmp_path / "killed"
    args = ["--input", source, "--chunks", 4, "--output-dir", killed]
    kill_step_after(SPLIT, args, seconds / 2, retry_dir=killed)
    assert not (killed / "chunks.json").exists()
    run_step(SPLIT, args)
    contents = [{name: sha for name, (sha, _) in tree_digest(d).items()} for d in (killed, unkilled)]
    assert contents[0] == contents[1]
