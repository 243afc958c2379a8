"""Word-align a parallel corpus with eflomal and symmetrize the two directions (grow-diag-final-and).

Reads `<corpus-dir>/corpus.<src|trg>.zst` (tokens = whitespace-separated words). Writes to <output-dir>:
`corpus.aln.zst`, one line per sentence pair of Pharaoh links `i-j` (source word i, target word j, from 0),
and `priors.txt`, eflomal's Dirichlet priors, which the later alignments of the chain reuse (--priors: those
of the parallel corpus guide the back-translated and distilled corpora's).

Memory follows --chunk-lines and --prior-sample-lines, not the corpus, as in the reference: without --priors,
the first --prior-sample-lines pairs (the merged corpora are shuffled: a random sample) are aligned and the
priors computed from them; a corpus no longer than the sample is then done (its alignment is the sample's).
A longer corpus, or any corpus given --priors, is aligned --chunk-lines pairs at a time with those fixed
priors, and each chunk symmetrized on its own. A pair with an empty side gets an empty line (no links).

eflomal samples at random, so two runs can differ slightly. A killed run resumes: the priors and each
finished chunk (or the two directions of the sample) are kept in `<output-dir>/.work/`, and only what is
missing is redone. Uses THREADS CPU threads.
"""

import argparse
import logging
import os
import shutil
from array import array
from itertools import islice, tee
from multiprocessing import Pool
from pathlib import Path

from pipeline.common.io import (
    atomic_path,
    count_lines,
    read_lines,
    read_pairs,
    remove_stale_temporaries,
    write_lines,
)
from pipeline.common.step import StepError, already_done, positive_int, run_step, threads

logger = logging.getLogger("align")

OUTPUTS = ["corpus.aln.zst", "priors.txt"]
NEIGHBOURS = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--corpus-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--priors", type=Path, help="eflomal priors (priors.txt of an earlier alignment)")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument(
        "--chunk-lines",
        type=positive_int,
        default=1_000_000,
        help="pairs aligned at once with fixed priors (memory grows with this, not with the corpus)",
    )
    parser.add_argument(
        "--prior-sample-lines",
        type=positive_int,
        default=10_000_000,
        help="pairs aligned to compute the priors when --priors is not given (the reference's 10M)",
    )


def parse_links(line: str, src_len: int, trg_len: int, where: str) -> set[tuple[int, int]]:
    links = set()
    for link in line.split():
        i, _, j = link.partition("-")
        try:
            pair = (int(i), int(j))
        except ValueError:
            raise StepError(f"{where}: {link!r} is not an i-j link") from None
        if not (0 <= pair[0] < src_len and 0 <= pair[1] < trg_len):
            raise StepError(f"{where}: link {link} is out of bounds ({src_len}x{trg_len} words)")
        links.add(pair)
    return links


def grow_diag_final_and(
    forward: set[tuple[int, int]], reverse: set[tuple[int, int]], src_len: int, trg_len: int
) -> list[tuple[int, int]]:
    """Koehn's symmetrization: the intersection, grown with diagonal neighbours from the union, then
    union links whose two words are both still unaligned."""
    union = forward | reverse
    alignment = forward & reverse
    src_aligned = {i for i, _ in alignment}
    trg_aligned = {j for _, j in alignment}
    grown = True
    while grown:
        grown = False
        for i, j in sorted(alignment):
            for di, dj in NEIGHBOURS:
                point = (i + di, j + dj)
                if (
                    point in union
                    and point not in alignment
                    and (point[0] not in src_aligned or point[1] not in trg_aligned)
                ):
                    alignment.add(point)
                    src_aligned.add(point[0])
                    trg_aligned.add(point[1])
                    grown = True
    for direction in (forward, reverse):
        for i, j in sorted(direction):
            if i not in src_aligned and j not in trg_aligned:
                alignment.add((i, j))
                src_aligned.add(i)
                trg_aligned.add(j)
    return sorted(alignment)


def _symmetrize(item):
    number, src_len, trg_len, fwd_line, rev_line = item
    where = f"eflomal links of pair {number}"
    forward = parse_links(fwd_line, src_len, trg_len, where)
    reverse = parse_links(rev_line, src_len, trg_len, where)
    return " ".join(f"{i}-{j}" for i, j in grow_diag_final_and(forward, reverse, src_len, trg_len))


def run_eflomal(sources, targets, count: int, priors: Path | None, work: Path, cores: int):
    """eflomal on `count` pairs: `sources` and `targets` are iterables of lines."""
    import eflomal

    forward, reverse = work / "forward.links", work / "reverse.links"
    if forward.exists() and reverse.exists():
        logger.info("eflomal links from an earlier run are in %s: reusing them", work)
        return forward, reverse
    # OpenMP runs eflomal's samplers in parallel.
    os.environ["OMP_NUM_THREADS"] = str(cores)
    aligner = eflomal.Aligner()
    with atomic_path(forward) as fwd_tmp, atomic_path(reverse) as rev_tmp:
        logger.info("aligning %d sentence pairs with eflomal%s", count, " and priors" if priors else "")
        try:
            if priors:
                with open(priors, encoding="utf-8") as priors_file:
                    aligner.align(
                        sources,
                        targets,
                        links_filename_fwd=str(fwd_tmp),
                        links_filename_rev=str(rev_tmp),
                        priors_input=priors_file,
                    )
            else:
                aligner.align(
                    sources, targets, links_filename_fwd=str(fwd_tmp), links_filename_rev=str(rev_tmp)
                )
        except (ValueError, UnicodeDecodeError) as error:
            raise StepError(f"eflomal failed: {error} (is {priors} an eflomal priors file?)") from None
    return forward, reverse


def check_priors(path: Path):
    """Fails early on a priors file eflomal cannot read (eflomal's own message is an unhelpful crash)."""
    kinds = {"LEX": 4, "FERF": 4, "FERR": 4, "HMMF": 3, "HMMR": 3}
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        try:
            float(fields[-1])
            ok = kinds.get(fields[0]) == len(fields)
        except ValueError:
            ok = False
        if not ok:
            raise StepError(
                f"{path}: line {number} is not an eflomal prior (LEX/FERF/FERR/HMMF/HMMR): {line[:80]!r}"
            )


def eflomal_links(pairs: list[tuple[str, str]], priors: Path | None, work: Path, cores: int):
    """eflomal's forward and reverse link files of `pairs` (one line each per pair), kept in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    sources = (src.strip() + "\n" for src, _ in pairs)
    targets = (trg.strip() + "\n" for _, trg in pairs)
    return run_eflomal(sources, targets, len(pairs), priors, work, cores)


def link_lines(forward: Path, reverse: Path, count: int):
    """The (forward, reverse) link lines of eflomal's two files; fails unless each has `count` lines."""
    fwd_lines, rev_lines = read_lines(forward), read_lines(reverse)
    for _ in range(count):
        fwd, rev = next(fwd_lines, None), next(rev_lines, None)
        if fwd is None or rev is None:
            break
        yield fwd, rev
    else:
        if next(fwd_lines, None) is None and next(rev_lines, None) is None:
            return
    raise StepError(
        f"eflomal wrote {count_lines(forward)}/{count_lines(reverse)} link lines for {count} pairs"
    )


def word_counts(pairs) -> tuple[array, array]:
    """The number of words of each pair's two sides, all symmetrization needs of the text."""
    src_words, trg_words = array("I"), array("I")
    for src, trg in pairs:
        src_words.append(len(src.split()))
        trg_words.append(len(trg.split()))
    return src_words, trg_words


def write_symmetrized(path: Path, lengths, forward: Path, reverse: Path, first_number: int, cores: int):
    src_words, trg_words = lengths
    links = link_lines(forward, reverse, len(src_words))
    items = (
        (n, src_len, trg_len, fwd, rev)
        for n, (src_len, trg_len, (fwd, rev)) in enumerate(
            zip(src_words, trg_words, links, strict=True), start=first_number
        )
    )
    with Pool(cores) as pool, write_lines(path) as aln:
        for line in pool.imap(_symmetrize, items, chunksize=2000):
            aln.write(line)


def write_priors(path: Path, pairs, forward: Path, reverse: Path):
    import eflomal

    logger.info("computing priors from the alignment of %d pairs", len(pairs))
    # calculate_priors reads the four in step: tee keeps one line pair at most.
    fwd_links, rev_links = tee(link_lines(forward, reverse, len(pairs)))
    priors = eflomal.calculate_priors(
        (src for src, _ in pairs),
        (trg for _, trg in pairs),
        (fwd for fwd, _ in fwd_links),
        (rev for _, rev in rev_links),
    )
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as priors_file:
        eflomal.write_priors(priors_file, *priors)


def main(args):
    out = args.output_dir
    if already_done(out, OUTPUTS):
        return
    remove_stale_temporaries(out)
    cores = threads()
    if args.priors:
        check_priors(args.priors)
    src_file = args.corpus_dir / f"corpus.{args.src}.zst"
    trg_file = args.corpus_dir / f"corpus.{args.trg}.zst"
    total, trg_total = count_lines(src_file), count_lines(trg_file)
    if total != trg_total:
        raise StepError(f"line counts differ: {src_file} has {total} lines, {trg_file} has {trg_total}")
    if total == 0:
        raise StepError(f"the corpus in {args.corpus_dir} is empty")
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    priors = args.priors
    if priors is None and total <= args.prior_sample_lines:
        # The whole corpus is the sample: its alignment is the output, its priors are computed from it.
        pairs = list(read_pairs(src_file, trg_file))
        forward, reverse = eflomal_links(pairs, None, work / "sample", cores)
        write_priors(out / "priors.txt", pairs, forward, reverse)
        lengths = word_counts(pairs)
        del pairs  # the symmetrization's workers are forked: the smaller this process, the smaller they are
        write_symmetrized(out / "corpus.aln.zst", lengths, forward, reverse, 1, cores)
        logger.info("wrote %d alignment lines to %s", len(lengths[0]), out / "corpus.aln.zst")
        shutil.rmtree(work)
        return
    if priors is None:
        priors = work / "priors.txt"
        if not priors.exists():
            sample = list(islice(read_pairs(src_file, trg_file), args.prior_sample_lines))
            write_priors(priors, sample, *eflomal_links(sample, None, work / "sample", cores))
            del sample
            shutil.rmtree(work / "sample")
    chunks = -(-total // args.chunk_lines)
    corpus = read_pairs(src_file, trg_file)
    for number in range(chunks):
        pairs = list(islice(corpus, args.chunk_lines))
        chunk_file = work / f"chunk.{number:05d}.aln.zst"
        if chunk_file.exists():
            logger.info("chunk %d/%d already aligned", number + 1, chunks)
            continue
        logger.info("chunk %d/%d: %d pairs, with fixed priors", number + 1, chunks, len(pairs))
        chunk_work = work / f"chunk.{number:05d}"
        forward, reverse = eflomal_links(pairs, priors, chunk_work, cores)
        lengths = word_counts(pairs)
        del pairs  # before the symmetrization forks, and before the next chunk is read
        write_symmetrized(chunk_file, lengths, forward, reverse, number * args.chunk_lines + 1, cores)
        shutil.rmtree(chunk_work)
    with write_lines(out / "corpus.aln.zst") as aln:
        for number in range(chunks):
            for line in read_lines(work / f"chunk.{number:05d}.aln.zst"):
                aln.write(line)
        if aln.count != total:
            raise StepError(f"{aln.count} alignment lines for {total} pairs: a chunk is damaged")
    logger.info("wrote %d alignment lines to %s in %d chunk(s)", aln.count, out / "corpus.aln.zst", chunks)
    with atomic_path(out / "priors.txt") as tmp:
        shutil.copyfile(priors, tmp)
    shutil.rmtree(work)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
