"""Build the lexical shortlist of a student: which target pieces may follow from each source piece.

Reads the corpus `<corpus-dir>/corpus.<src|trg>.zst`, its word alignments `<alignments>` (corpus.aln.zst
of pipeline.alignments.align: Pharaoh links over whitespace words) and the SentencePiece vocabulary. Each
aligned word pair links every piece of the source word with every piece of the target word; the
lexical probability p(target piece | source piece) is the share of the source piece's links that go to
the target piece (unaligned pieces count towards NULL), like Marian's extract_lex. Writes to <output-dir>:
`lex.s2t.zst`, the table pruned to the --top-k most probable target pieces of each source piece (lines
`target source probability`), and `lex.<first>.<best>.s2t.bin`, Marian's binary shortlist made from it by
`marian-conv --shortlist` (the `first` most frequent target pieces are always allowed, plus the `best`
best of each source piece). Uses THREADS processes (each counts batches of pairs; their counts are added
up, so the outputs do not depend on THREADS) and WORKSPACE MB.
"""

import argparse
import logging
import re
import shutil
from bisect import bisect_right
from collections import Counter, defaultdict, deque
from multiprocessing import Pool
from pathlib import Path

from pipeline.common.io import atomic_path, read_lines, read_pairs, remove_stale_temporaries, write_lines
from pipeline.common.marian import run_marian
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.common.vocab import vocab_pair

logger = logging.getLogger("shortlist")

NULL = "NULL"
MARKER = "\u2581"  # SentencePiece's word-boundary marker
WORD = re.compile(r"\S+")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--corpus-dir", required=True, type=Path)
    parser.add_argument("--alignments", required=True, type=Path, help="corpus.aln.zst of the corpus")
    parser.add_argument(
        "--vocab",
        required=True,
        type=Path,
        help="the SentencePiece model of both languages, or build-vocab's folder (one per language)",
    )
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--top-k", type=int, default=100, help="target pieces kept per source piece")
    parser.add_argument("--first", type=int, default=50, help="most frequent target pieces always allowed")
    parser.add_argument("--best", type=int, default=50, help="best target pieces of each source piece")
    parser.add_argument("--output-dir", required=True, type=Path)


def words_of_pieces(sp, line: str) -> tuple[list[str], list[int]]:
    """The pieces of a line and, for each, the index of the whitespace word it belongs to (a piece that is
    only the word-boundary marker belongs to the word it starts)."""
    ends = [match.end() for match in WORD.finditer(line)]
    last = max(len(ends) - 1, 0)
    pieces, words = [], []
    for piece in sp.encode(line, out_type="immutable_proto").pieces:
        pieces.append(piece.piece)
        # The word holding character `begin` (the next word if it is a space): the number of words
        # that end at or before it.
        words.append(min(bisect_right(ends, min(piece.begin, len(line))), last))
    return pieces, words


def pieces_by_word(sp, line: str) -> list[list[str]]:
    """The pieces of each whitespace word of a line. The fast way: a piece that starts with the
    word-boundary marker starts a word. Where SentencePiece's normalization made the words differ from
    str.split()'s (a control character removed, a character whose NFKC form holds a space), the pieces' offsets
    decide, as words_of_pieces does."""
    words: list[list[str]] = []
    for piece in sp.encode(line, out_type=str):
        if piece[0] == MARKER or not words:
            words.append([piece])
        else:
            words[-1].append(piece)
    count = len(line.split())
    if len(words) == count:
        return words
    words = [[] for _ in range(count)]
    for piece, word in zip(*words_of_pieces(sp, line), strict=True):
        words[word].append(piece)
    return words


def count_pair(counts: dict[str, Counter], sp, trg_sp, src: str, trg: str, links: str, number: int):
    """Adds the piece links of one sentence pair (its alignment line `links`) to `counts`."""
    src_words, trg_words = pieces_by_word(sp, src), pieces_by_word(trg_sp, trg)
    aligned_src, aligned_trg = set(), set()
    for link in links.split():
        i, _, j = link.partition("-")
        try:
            i, j = int(i), int(j)
        except ValueError:
            raise StepError(f"alignment line {number}: {link!r} is not an i-j link") from None
        if not (0 <= i < len(src_words) and 0 <= j < len(trg_words)):
            raise StepError(
                f"alignment line {number}: link {link} is out of bounds "
                f"({len(src_words)} source, {len(trg_words)} target words): not this corpus' alignments?"
            )
        aligned_src.add(i)
        aligned_trg.add(j)
        targets = trg_words[j]
        for s in src_words[i]:
            row = counts[s]
            for t in targets:
                row[t] += 1
    for i, pieces in enumerate(src_words):
        if i not in aligned_src:
            for s in pieces:
                counts[s][NULL] += 1
    for j, pieces in enumerate(trg_words):
        if j not in aligned_trg:
            for t in pieces:
                counts[NULL][t] += 1


def batches_of_lines(pairs, alignment_lines, alignments_name: str, batch_lines: int):
    """(first line number, [(src, trg, links), ...]) of at most batch_lines pairs; fails if the corpus and
    its alignments differ in length."""
    pairs, alignment_lines = iter(pairs), iter(alignment_lines)
    number, batch = 0, []
    for number, (src, trg) in enumerate(pairs, start=1):
        links = next(alignment_lines, None)
        if links is None:
            total = number + sum(1 for _ in pairs)
            raise StepError(
                f"{alignments_name} has {number - 1} lines for {total} sentence pairs: "
                "not the alignments of this corpus"
            )
        batch.append((src, trg, links))
        if len(batch) == batch_lines:
            yield number - batch_lines + 1, batch
            batch = []
    if batch:
        yield number - len(batch) + 1, batch
    extra = sum(1 for _ in alignment_lines)
    if extra:
        raise StepError(
            f"{alignments_name} has {number + extra} lines for {number} sentence pairs: "
            "not the alignments of this corpus"
        )


_worker_models = None


def _load_models(src_proto: bytes, trg_proto: bytes):
    import sentencepiece

    global _worker_models
    src_sp = sentencepiece.SentencePieceProcessor()
    src_sp.load_from_serialized_proto(src_proto)
    trg_sp = src_sp
    if trg_proto != src_proto:
        trg_sp = sentencepiece.SentencePieceProcessor()
        trg_sp.load_from_serialized_proto(trg_proto)
    _worker_models = src_sp, trg_sp


def count_batch(counts: dict[str, Counter], sp, trg_sp, batch) -> dict[str, Counter]:
    """Adds the links of a batch of batches_of_lines to `counts`."""
    first_number, lines = batch
    for number, (src, trg, links) in enumerate(lines, start=first_number):
        count_pair(counts, sp, trg_sp, src, trg, links, number)
    return counts


def _count_batch(batch) -> dict[str, Counter]:
    return count_batch(defaultdict(Counter), *_worker_models, batch)


def count_links(
    sp, pairs, alignment_lines, alignments_name="the alignments", trg_sp=None, processes=1, batch_lines=2000
):
    """Link counts per source piece, streaming the corpus and its alignments (memory grows with the
    vocabulary and processes x batch_lines, not the corpus); fails if the two differ in length. `trg_sp`: the
    target side's own SentencePiece model, when the languages have one each. With processes > 1, batches
    are counted by that many worker processes and their counts added up (the sum does not depend on the
    order)."""
    trg_sp = trg_sp or sp
    counts: dict[str, Counter] = defaultdict(Counter)
    batches = batches_of_lines(pairs, alignment_lines, alignments_name, batch_lines)
    if processes == 1:
        for batch in batches:
            count_batch(counts, sp, trg_sp, batch)
        return counts
    protos = (sp.serialized_model_proto(), trg_sp.serialized_model_proto())
    # At most two batches per worker in flight: Pool.imap would read the whole corpus ahead.
    with Pool(processes, initializer=_load_models, initargs=protos) as pool:
        pending = deque()
        for batch in batches:
            pending.append(pool.apply_async(_count_batch, (batch,)))
            if len(pending) >= 2 * processes:
                add_counts(counts, pending.popleft().get())
        while pending:
            add_counts(counts, pending.popleft().get())
    return counts


def add_counts(total: dict[str, Counter], part: dict[str, Counter]):
    for src, targets in part.items():
        total[src].update(targets)


def pruned_table(counts: dict[str, Counter], top_k: int):
    """Lines `target source p(target|source)`, the top_k targets of each source, NULL left out."""
    for src in sorted(counts):
        if src == NULL:
            continue
        total = sum(counts[src].values())
        best = sorted(((-c, t) for t, c in counts[src].items() if t != NULL))[:top_k]
        for negative_count, trg in best:
            yield f"{trg} {src} {-negative_count / total:.8f}"


def main(args):
    out = args.output_dir
    binary_name = f"lex.{args.first}.{args.best}.s2t.bin"
    if already_done(out, ["lex.s2t.zst", binary_name]):
        return
    remove_stale_temporaries(out)
    cores = threads()
    if args.top_k < args.best:
        raise StepError(f"--top-k {args.top_k} keeps fewer pieces than the shortlist's --best {args.best}")
    if not args.vocab.exists():
        raise StepError(f"input file {args.vocab} does not exist")
    src_vocab, trg_vocab = vocab_pair(args.vocab, args.src, args.trg)
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(src_vocab))
    trg_sp = sentencepiece.SentencePieceProcessor(model_file=str(trg_vocab)) if trg_vocab != src_vocab else sp
    pairs = read_pairs(args.corpus_dir / f"corpus.{args.src}.zst", args.corpus_dir / f"corpus.{args.trg}.zst")
    counts = count_links(
        sp, pairs, read_lines(args.alignments), str(args.alignments), trg_sp, processes=cores
    )
    if not counts:
        raise StepError(f"the corpus in {args.corpus_dir} is empty")
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    work.mkdir(exist_ok=True)
    table = work / "lex.s2t"
    with atomic_path(table) as tmp, open(tmp, "w", encoding="utf-8") as text:
        rows = 0
        for row in pruned_table(counts, args.top_k):
            text.write(row + "\n")
            rows += 1
    if rows == 0:
        raise StepError("no aligned word pairs: the shortlist would be empty")
    logger.info("lexical table: %d entries for %d source pieces", rows, len(counts) - (NULL in counts))

    with atomic_path(out / binary_name) as tmp:
        options = {
            "shortlist": [str(table), args.first, args.best, 0],
            "dump-shortlist": str(tmp),
            "vocabs": [str(src_vocab), str(trg_vocab)],
        }
        run_marian("convert", options, log_path=None)
        if tmp.stat().st_size == 0:
            raise StepError("marian-conv wrote an empty binary shortlist")
    with write_lines(out / "lex.s2t.zst") as compressed:
        for line in read_lines(table):
            compressed.write(line)
    shutil.rmtree(work)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
