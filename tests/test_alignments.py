"""Word alignments (eflomal) and the lexical shortlist on small real data: outputs, bad input, kill -9."""

import functools
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import (
    REPO_ROOT,
    build_vocab,
    read_corpus,
    run_step,
    sample_pairs,
    step_env,
    tree_digest,
    write_corpus,
)

ALIGN = "pipeline.alignments.align"
SHORTLIST = "pipeline.alignments.shortlist"


def corpus_dir(tmp_path, pairs, name="corpus"):
    folder = tmp_path / name
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs])
    return folder


def check_alignments(path, pairs):
    lines = read_corpus(path)
    assert len(lines) == len(pairs)
    for line, (src, trg) in zip(lines, pairs, strict=True):
        for link in line.split():
            i, j = map(int, link.split("-"))
            assert 0 <= i < len(src.split()) and 0 <= j < len(trg.split()), (link, src, trg)
    return lines


def kill_when(module, args, condition, timeout=300):
    """Starts a step in its own process group and SIGKILLs the group (the step and its eflomal or Marian
    child, as a worker losing the task would) as soon as condition() holds; returns the step's exit status
    (-9 if killed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        env=step_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    return process.wait()


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """300 pairs of the shipped corpus, aligned without priors, and a 400-piece vocabulary."""
    tmp_path = tmp_path_factory.mktemp("aligned")
    pairs = sample_pairs(300)
    corpus = corpus_dir(tmp_path, pairs)
    out = tmp_path / "aln"
    run_step(ALIGN, ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--output-dir", out])
    vocab = tmp_path / "vocab"
    build_vocab(corpus, vocab, 400)
    return {"pairs": pairs, "corpus": corpus, "aln": out, "vocab": vocab / "vocab.spm", "tmp": tmp_path}


def test_align_writes_symmetrized_links_and_priors(aligned):
    out = aligned["aln"]
    assert sorted(p.name for p in out.iterdir()) == ["corpus.aln.zst", "priors.txt"]
    lines = check_alignments(out / "corpus.aln.zst", aligned["pairs"])
    # Most words of these close translations get a link; identical placeholders align to each other.
    assert sum(len(line.split()) for line in lines) > 0.6 * sum(len(s.split()) for s, _ in aligned["pairs"])
    priors = (out / "priors.txt").read_text().splitlines()
    assert {line.split("\t")[0] for line in priors} == {"LEX", "FERF", "FERR", "HMMF", "HMMR"}
    before = tree_digest(out)
    again = run_step(
        ALIGN, ["--corpus-dir", aligned["corpus"], "--src", "en", "--trg", "fr", "--output-dir", out]
    )
    assert "nothing to do" in again.stderr
    assert tree_digest(out) == before


def test_align_reuses_given_priors_on_another_corpus(aligned, tmp_path):
    pairs = sample_pairs(340)[300:] + [("", ""), ("only source", "")]
    corpus = corpus_dir(tmp_path, pairs, "other")
    before = tree_digest(corpus)
    out = tmp_path / "out"
    result = run_step(
        ALIGN,
        ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--priors", aligned["aln"] / "priors.txt", "--output-dir", out],
    )  # fmt: skip
    assert "pairs of lexical priors used" in result.stderr
    lines = check_alignments(out / "corpus.aln.zst", pairs)
    assert lines[-2:] == ["", ""]  # empty sides: an empty line keeps the corpus aligned
    assert (out / "priors.txt").read_bytes() == (aligned["aln"] / "priors.txt").read_bytes()
    assert tree_digest(corpus) == before


def test_grow_diag_final_and():
    from pipeline.alignments.align import grow_diag_final_and

    # The intersection {0-0} grows to its union neighbours 1-1 and then 1-2 (target word 2 is unaligned);
    # 3-4 is nobody's neighbour but joins at the end since both its words are unaligned; 3-2 does not
    # (target word 2 is aligned by then).
    forward = {(0, 0), (1, 1), (1, 2), (3, 2)}
    reverse = {(0, 0), (3, 4)}
    assert grow_diag_final_and(forward, reverse, 4, 5) == [(0, 0), (1, 1), (1, 2), (3, 4)]
    assert grow_diag_final_and(set(), set(), 2, 2) == []


def test_align_refuses_bad_input(aligned, tmp_path):
    out = tmp_path / "out"
    uneven = tmp_path / "uneven"
    write_corpus(uneven / "corpus.en.zst", ["a b", "c"])
    write_corpus(uneven / "corpus.fr.zst", ["a b"])
    result = run_step(
        ALIGN, ["--corpus-dir", uneven, "--src", "en", "--trg", "fr", "--output-dir", out], check=False
    )
    assert result.returncode == 1 and "line counts differ" in result.stderr
    bad_priors = tmp_path / "priors.txt"
    bad_priors.write_text("LEX\tdog\tchien\t1\nthis is not a prior\n")
    result = run_step(
        ALIGN,
        ["--corpus-dir", aligned["corpus"], "--src", "en", "--trg", "fr", "--priors", bad_priors, "--output-dir", out],
        check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "line 2 is not an eflomal prior" in result.stderr
    empty = tmp_path / "empty"
    write_corpus(empty / "corpus.en.zst", [])
    write_corpus(empty / "corpus.fr.zst", [])
    result = run_step(
        ALIGN, ["--corpus-dir", empty, "--src", "en", "--trg", "fr", "--output-dir", out], check=False
    )
    assert result.returncode == 1 and "is empty" in result.stderr
    result = run_step(
        ALIGN, ["--corpus-dir", aligned["corpus"], "--src", "en", "--trg", "fr", "--output-dir", out],
        env=step_env(THREADS="0"), check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "THREADS must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("moment", ["eflomal", "symmetrization"])
def test_align_resumes_after_kill_9(tmp_path, moment):
    # eflomal samples at random: a rerun cannot be byte-identical, but it must finish with a valid
    # alignment, and once eflomal's links exist it must reuse them.
    pairs = sample_pairs(3000)
    corpus = corpus_dir(tmp_path, pairs)
    out = tmp_path / "out"
    args = ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--output-dir", out]
    work = out / ".work"

    def moment_reached():
        # Both links files are renamed into place, reverse first: the moment after eflomal is when both exist.
        if moment == "eflomal":
            return work.exists()
        return (work / "sample" / "forward.links").exists() and (work / "sample" / "reverse.links").exists()

    assert kill_when(ALIGN, args, moment_reached) == -signal.SIGKILL
    assert not (out / "corpus.aln.zst").exists()
    result = run_step(ALIGN, args)
    assert ("reusing them" in result.stderr) == (moment == "symmetrization")
    check_alignments(out / "corpus.aln.zst", pairs)
    assert sorted(p.name for p in out.iterdir()) == ["corpus.aln.zst", "priors.txt"]


def test_align_in_chunks_with_priors_from_a_sample(aligned, tmp_path):
    # Priors from the first 120 pairs, then 3 chunks of at most 150 pairs aligned with them: as many lines as
    # pairs, links within bounds, about as many links as the whole corpus aligned at once gets.
    pairs = aligned["pairs"] + [("", "seule la cible"), ("only source", "")]
    corpus = corpus_dir(tmp_path, pairs)
    out = tmp_path / "out"
    args = ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--output-dir", out]
    result = run_step(ALIGN, [*args, "--prior-sample-lines", 120, "--chunk-lines", 150])
    assert "chunk 3/3: 2 pairs, with fixed priors" in result.stderr
    assert "computing priors from the alignment of 120 pairs" in result.stderr
    lines = check_alignments(out / "corpus.aln.zst", pairs)
    assert lines[-2:] == ["", ""]
    whole = read_corpus(aligned["aln"] / "corpus.aln.zst")
    links = sum(len(line.split()) for line in lines[:300])
    assert abs(links - sum(len(line.split()) for line in whole)) < 0.1 * links
    assert sorted(p.name for p in out.iterdir()) == ["corpus.aln.zst", "priors.txt"]
    from pipeline.alignments.align import check_priors

    check_priors(out / "priors.txt")
    # Given priors: the corpus is aligned in chunks with them even when it is shorter than the sample.
    again = tmp_path / "again"
    given = ["--priors", out / "priors.txt", "--chunk-lines", 1000, "--output-dir", again]
    result = run_step(ALIGN, [*args[:-2], *given])
    assert "chunk 1/1: 302 pairs, with fixed priors" in result.stderr
    assert (again / "priors.txt").read_bytes() == (out / "priors.txt").read_bytes()


def test_align_in_chunks_resumes_after_kill_9(tmp_path):
    pairs = sample_pairs(3000)
    corpus = corpus_dir(tmp_path, pairs)
    out = tmp_path / "out"
    args = ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--output-dir", out]
    args += ["--prior-sample-lines", 500, "--chunk-lines", 1000]
    work = out / ".work"
    assert kill_when(ALIGN, args, lambda: (work / "chunk.00001.aln.zst").exists()) == -signal.SIGKILL
    assert not (out / "corpus.aln.zst").exists()
    priors = (work / "priors.txt").read_bytes()
    result = run_step(ALIGN, args)
    assert "chunk 1/3 already aligned" in result.stderr and "chunk 2/3 already aligned" in result.stderr
    assert "computing priors" not in result.stderr
    assert "chunk 3/3: 1000 pairs" in result.stderr
    check_alignments(out / "corpus.aln.zst", pairs)
    assert (out / "priors.txt").read_bytes() == priors
    assert sorted(p.name for p in out.iterdir()) == ["corpus.aln.zst", "priors.txt"]


def shortlist_args(aligned, out):
    return [
        "--corpus-dir", aligned["corpus"], "--alignments", aligned["aln"] / "corpus.aln.zst",
        "--vocab", aligned["vocab"], "--src", "en", "--trg", "fr", "--output-dir", out,
    ]  # fmt: skip


def test_shortlist_keeps_the_best_target_pieces(aligned, tmp_path):
    import sentencepiece

    out = tmp_path / "out"
    run_step(SHORTLIST, [*shortlist_args(aligned, out), "--top-k", 60])
    assert sorted(p.name for p in out.iterdir()) == ["lex.50.50.s2t.bin", "lex.s2t.zst"]
    rows = [line.split(" ") for line in read_corpus(out / "lex.s2t.zst")]
    sp = sentencepiece.SentencePieceProcessor(model_file=str(aligned["vocab"]))
    pieces = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
    per_source = {}
    for trg, src, prob in rows:
        assert trg in pieces and src in pieces and 0 < float(prob) <= 1
        per_source.setdefault(src, []).append(float(prob))
    assert max(len(p) for p in per_source.values()) <= 60
    assert all(p == sorted(p, reverse=True) for p in per_source.values())
    assert all(sum(p) <= 1.0001 for p in per_source.values())
    # Placeholders are copied through in this corpus: "%s" leads to "%s".
    assert "%" in [r[0] for r in rows if r[1] == "%"][:3]
    # Marian's binary shortlist starts with its magic number.
    assert (out / "lex.50.50.s2t.bin").read_bytes()[:8] == (0xF11A48D5013417F5).to_bytes(8, "little")


def test_shortlist_pieces_follow_their_words():
    import sentencepiece

    from pipeline.alignments.shortlist import words_of_pieces

    model = sentencepiece.SentencePieceProcessor()
    import io

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(["the small dog sleeps", "un petit chien dort"] * 20),
        model_writer=buffer,
        vocab_size=20,
        character_coverage=1.0,
    )
    model.load_from_serialized_proto(buffer.getvalue())
    pieces, words = words_of_pieces(model, "the  small dog")
    assert len(pieces) == len(words)
    text = [
        "".join(p for p, w in zip(pieces, words, strict=True) if w == k).replace("▁", "") for k in range(3)
    ]
    assert text == ["the", "small", "dog"]


@functools.cache
def tiny_spm(sentences: tuple[str, ...]):
    import io

    import sentencepiece

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences * 20), model_writer=buffer, vocab_size=20, character_coverage=1.0
    )
    model = sentencepiece.SentencePieceProcessor()
    model.load_from_serialized_proto(buffer.getvalue())
    return model


@pytest.mark.parametrize(
    "line",
    [
        "the  small dog",
        "le petit chien dort",
        "a \x1f b dog",  # a control character SentencePiece removes: one word fewer for it
        "x\x1fy dog",  # ... joining two of str.split()'s words
        "the \u00a8 dog",  # NFKC turns the diaeresis into a space and a combining mark: one word more
        "\u00a0the\u00a0dog ",
        "\x01 dog",  # a word of nothing but a removed character
        "",
    ],
)
def test_shortlist_pieces_by_word_agrees_with_the_offsets(line):
    from pipeline.alignments.shortlist import pieces_by_word, words_of_pieces

    model = tiny_spm(("the small dog sleeps", "le petit chien dort"))
    expected = [[] for _ in line.split()]
    for piece, word in zip(*words_of_pieces(model, line), strict=True):
        expected[word].append(piece)
    assert pieces_by_word(model, line) == expected


def test_shortlist_counts_in_parallel_batches_as_in_one(aligned):
    import sentencepiece

    from pipeline.alignments.shortlist import count_links

    model = sentencepiece.SentencePieceProcessor(model_file=str(aligned["vocab"]))
    links = read_corpus(aligned["aln"] / "corpus.aln.zst")
    one = count_links(model, aligned["pairs"], links)
    parallel = count_links(model, aligned["pairs"], links, processes=2, batch_lines=7)
    assert {s: dict(c) for s, c in parallel.items()} == {s: dict(c) for s, c in one.items()}
    assert sum(sum(c.values()) for c in one.values()) > 1000
    bad = links[:250] + ["0-0 99-0"] + links[251:]
    with pytest.raises(Exception, match="alignment line 251: link 99-0 is out of bounds"):
        count_links(model, aligned["pairs"], bad, processes=2, batch_lines=7)
    with pytest.raises(Exception, match="has 299 lines for 300 sentence pairs"):
        count_links(model, aligned["pairs"], links[:-1], processes=2, batch_lines=7)


def test_shortlist_outputs_do_not_depend_on_threads(aligned, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_step(SHORTLIST, shortlist_args(aligned, one))
    run_step(SHORTLIST, shortlist_args(aligned, two), env=step_env(THREADS="2"))
    assert {k: v[0] for k, v in tree_digest(one).items()} == {k: v[0] for k, v in tree_digest(two).items()}


def test_shortlist_refuses_alignments_of_another_corpus(aligned, tmp_path):
    out = tmp_path / "out"
    short = tmp_path / "short.aln.zst"
    write_corpus(short, read_corpus(aligned["aln"] / "corpus.aln.zst")[:-1])
    args = shortlist_args(aligned, out)
    args[args.index("--alignments") + 1] = short
    result = run_step(SHORTLIST, args, check=False)
    assert result.returncode == 1 and "299 lines for 300 sentence pairs" in result.stderr
    wrong = tmp_path / "wrong.aln.zst"
    write_corpus(wrong, ["0-0 99-0"] + read_corpus(aligned["aln"] / "corpus.aln.zst")[1:])
    args[args.index("--alignments") + 1] = wrong
    result = run_step(SHORTLIST, args, check=False)
    assert result.returncode == 1 and "link 99-0 is out of bounds" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_shortlist_rerun_after_kill_9_gives_the_same_outputs(aligned, tmp_path):
    reference = tmp_path / "reference"
    run_step(SHORTLIST, shortlist_args(aligned, reference))
    out = tmp_path / "out"
    assert kill_when(SHORTLIST, shortlist_args(aligned, out), (out / ".work").exists) == -signal.SIGKILL
    run_step(SHORTLIST, shortlist_args(aligned, out))
    assert {k: v[0] for k, v in tree_digest(out).items()} == {
        k: v[0] for k, v in tree_digest(reference).items()
    }


@pytest.mark.parametrize(
    "forward, reverse, message",
    [
        (["0-0", "1-1"], ["0-0", "1-1"], None),
        (["0-0"], ["0-0", "1-1"], "eflomal wrote 1/2 link lines for 2 pairs"),
        (["0-0", "1-1"], ["0-0"], "eflomal wrote 2/1 link lines for 2 pairs"),
        (["0-0", "1-1", "2-2"], ["0-0", "1-1"], "eflomal wrote 3/2 link lines for 2 pairs"),
        (["0-0", "1-1"], ["0-0", "1-1", ""], "eflomal wrote 2/3 link lines for 2 pairs"),
    ],
)
def test_align_checks_eflomal_wrote_a_line_per_pair(tmp_path, forward, reverse, message):
    from pipeline.alignments.align import link_lines
    from pipeline.common.step import StepError

    paths = tmp_path / "forward.links", tmp_path / "reverse.links"
    for path, lines in zip(paths, (forward, reverse), strict=True):
        path.write_text("".join(line + "\n" for line in lines))
    if message is None:
        assert list(link_lines(*paths, 2)) == [("0-0", "0-0"), ("1-1", "1-1")]
    else:
        with pytest.raises(StepError, match=message):
            list(link_lines(*paths, 2))
