"""Word-align a parallel corpus with eflomal and symmetrize the two directions (grow-diag-final-and).

Reads `<corpus-dir>/corpus.<src|trg>.zst` (tokens = whitespace-separated words). Writes to <output-dir>:
`corpus.aln.zst`, one line per sentence pair of Pharaoh links `i-j` (source word i, target word j, from 0),
and `priors.txt`, eflomal's Dirichlet priors: computed from this corpus when --priors is not given, else a
copy of the given file, which guides the alignment (priors of the parallel corpus reused for the
back-translated and distilled corpora).

eflomal samples at random, so two runs can differ slightly. A killed run resumes: the two directions are
kept in `<output-dir>/.work/` once eflomal has written them, and only what is missing is redone.
Uses THREADS CPU threads.
"""

import argparse
import logging
import os
import shutil
from multiprocessing import Pool
from pathlib import Path

from pipeline.common.io import atomic_path, read_lines, read_pairs, remove_stale_temporaries, write_lines
from pipeline.common.step import StepError, already_done, run_step, threads

logger = logging.getLogger("align")

OUTPUTS = ["corpus.aln.zst", "priors.txt"]
NEIGHBOURS = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--corpus-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--priors", type=Path, help="eflomal priors (priors.txt of an earlier alignment)")
    parser.add_argument("--output-dir", required=True, type=Path)


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


def run_eflomal(sources: list[str], targets: list[str], priors: Path | None, work: Path, cores: int):
    import eflomal

    forward, reverse = work / "forward.links", work / "reverse.links"
    if forward.exists() and reverse.exists():
        logger.info("eflomal links from an earlier run are in %s: reusing them", work)
        return forward, reverse
    # OpenMP runs eflomal's samplers in parallel.
    os.environ["OMP_NUM_THREADS"] = str(cores)
    aligner = eflomal.Aligner()
    with atomic_path(forward) as fwd_tmp, atomic_path(reverse) as rev_tmp:
        logger.info(
            "aligning %d sentence pairs with eflomal%s", len(sources), " and priors" if priors else ""
        )
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


def main(args):
    out = args.output_dir
    if already_done(out, OUTPUTS):
        return
    remove_stale_temporaries(out)
    cores = threads()
    if args.priors:
        check_priors(args.priors)
    pairs = list(
        read_pairs(args.corpus_dir / f"corpus.{args.src}.zst", args.corpus_dir / f"corpus.{args.trg}.zst")
    )
    if not pairs:
        raise StepError(f"the corpus in {args.corpus_dir} is empty")
    sources = [src.strip() + "\n" for src, _ in pairs]
    targets = [trg.strip() + "\n" for _, trg in pairs]
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    forward, reverse = run_eflomal(sources, targets, args.priors, work, cores)

    fwd_lines, rev_lines = list(read_lines(forward)), list(read_lines(reverse))
    if not len(fwd_lines) == len(rev_lines) == len(pairs):
        raise StepError(f"eflomal wrote {len(fwd_lines)}/{len(rev_lines)} link lines for {len(pairs)} pairs")
    items = (
        (n, len(src.split()), len(trg.split()), fwd, rev)
        for n, ((src, trg), fwd, rev) in enumerate(zip(pairs, fwd_lines, rev_lines, strict=True), start=1)
    )
    with Pool(cores) as pool, write_lines(out / "corpus.aln.zst") as aln:
        for line in pool.imap(_symmetrize, items, chunksize=2000):
            aln.write(line)
    logger.info("wrote %d alignment lines to %s", aln.count, out / "corpus.aln.zst")

    with atomic_path(out / "priors.txt") as tmp:
        if args.priors:
            shutil.copyfile(args.priors, tmp)
        else:
            import eflomal

            logger.info("computing priors from the alignment")
            priors = eflomal.calculate_priors(sources, targets, fwd_lines, rev_lines)
            with open(tmp, "w", encoding="utf-8") as priors_file:
                eflomal.write_priors(priors_file, *priors)
    shutil.rmtree(work)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
