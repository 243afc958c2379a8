"""Build the lexical shortlist of a student: which target pieces may follow from each source piece.

Reads the corpus `<corpus-dir>/corpus.<src|trg>.zst`, its word alignments `<alignments>` (corpus.aln.zst
of pipeline.alignments.align: Pharaoh links over whitespace words) and the SentencePiece vocabulary. Each
aligned word pair links every piece of the source word with every piece of the target word; the
lexical probability p(target piece | source piece) is the share of the source piece's links that go to
the target piece (unaligned pieces count towards NULL), like Marian's extract_lex. Writes to <output-dir>:
`lex.s2t.zst`, the table pruned to the --top-k most probable target pieces of each source piece (lines
`target source probability`), and `lex.<first>.<best>.s2t.bin`, Marian's binary shortlist made from it by
`marian-conv --shortlist` (the `first` most frequent target pieces are always allowed, plus the `best`
best of each source piece). Uses THREADS CPU threads and WORKSPACE MB.
"""

import argparse
import logging
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.common.io import atomic_path, read_lines, read_pairs, remove_stale_temporaries, write_lines
from pipeline.common.marian import run_marian
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.common.vocab import vocab_pair

logger = logging.getLogger("shortlist")

NULL = "NULL"
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
    # word_at[p]: the word holding character p, or the next word if p is a space.
    word_at, word = [], 0
    for position in range(len(line) + 1):
        while word < len(ends) - 1 and ends[word] <= position:
            word += 1
        word_at.append(word)
    pieces, words = [], []
    for piece in sp.encode(line, out_type="immutable_proto").pieces:
        pieces.append(piece.piece)
        words.append(word_at[min(piece.begin, len(line))])
    return pieces, words


def count_links(sp, pairs, alignment_lines, alignments_name="the alignments", trg_sp=None):
    """Link counts per source piece, streaming the corpus and its alignments (memory grows with the
    vocabulary, not the corpus); fails if the two differ in length. `trg_sp`: the target side's own
    SentencePiece model, when the languages have one each."""
    trg_sp = trg_sp or sp
    counts: dict[str, Counter] = defaultdict(Counter)
    pairs, alignment_lines = iter(pairs), iter(alignment_lines)
    number = 0
    for number, pair in enumerate(pairs, start=1):
        links = next(alignment_lines, None)
        if links is None:
            total = number + sum(1 for _ in pairs)
            raise StepError(
                f"{alignments_name} has {number - 1} lines for {total} sentence pairs: "
                "not the alignments of this corpus"
            )
        src, trg = pair
        src_pieces, src_words = words_of_pieces(sp, src)
        trg_pieces, trg_words = words_of_pieces(trg_sp, trg)
        src_by_word, trg_by_word = defaultdict(list), defaultdict(list)
        for piece, word in zip(src_pieces, src_words, strict=True):
            src_by_word[word].append(piece)
        for piece, word in zip(trg_pieces, trg_words, strict=True):
            trg_by_word[word].append(piece)
        aligned_src, aligned_trg = set(), set()
        for link in links.split():
            i, _, j = link.partition("-")
            try:
                i, j = int(i), int(j)
            except ValueError:
                raise StepError(f"alignment line {number}: {link!r} is not an i-j link") from None
            if i not in src_by_word or j not in trg_by_word:
                raise StepError(
                    f"alignment line {number}: link {link} is out of bounds "
                    f"({len(src.split())} source, {len(trg.split())} target words): not this corpus' alignments?"
                )
            aligned_src.add(i)
            aligned_trg.add(j)
            for s in src_by_word[i]:
                for t in trg_by_word[j]:
                    counts[s][t] += 1
        for i, word_pieces in src_by_word.items():
            if i not in aligned_src:
                for s in word_pieces:
                    counts[s][NULL] += 1
        for j, word_pieces in trg_by_word.items():
            if j not in aligned_trg:
                for t in word_pieces:
                    counts[NULL][t] += 1
    extra = sum(1 for _ in alignment_lines)
    if extra:
        raise StepError(
            f"{alignments_name} has {number + extra} lines for {number} sentence pairs: "
            "not the alignments of this corpus"
        )
    return counts


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
    threads()
    if args.top_k < args.best:
        raise StepError(f"--top-k {args.top_k} keeps fewer pieces than the shortlist's --best {args.best}")
    if not args.vocab.exists():
        raise StepError(f"input file {args.vocab} does not exist")
    src_vocab, trg_vocab = vocab_pair(args.vocab, args.src, args.trg)
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(src_vocab))
    trg_sp = sentencepiece.SentencePieceProcessor(model_file=str(trg_vocab)) if trg_vocab != src_vocab else sp
    pairs = read_pairs(args.corpus_dir / f"corpus.{args.src}.zst", args.corpus_dir / f"corpus.{args.trg}.zst")
    counts = count_links(sp, pairs, read_lines(args.alignments), str(args.alignments), trg_sp)
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
