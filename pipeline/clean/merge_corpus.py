"""Merge parallel corpora: exact and normalized dedupe, test-set decontamination, a fixed-seed shuffle, a cap.

Reads `<dir>/corpus.<src|trg>.zst` from each --input-dirs folder (in the order given; the first copy of a
duplicate pair is kept) and removes every pair one side of which (normalized: case, punctuation, whitespace)
is a sentence of the datasets in --exclude-dirs (the devtest and test sets). Writes
`<output-dir>/corpus.<src|trg>.zst` and `stats.json` (per dataset: lines, duplicates, decontaminated, capped,
kept). Streams with bounded memory (pipeline/clean/merge.py). Used for the training corpus, the devset and
the distilled corpus (--more-input-dirs: the distilled mono data after the distilled parallel data).
"""

import argparse
import logging
from pathlib import Path

from pipeline.clean.merge import BATCH, Merger, bucket_count, test_set_hashes, write_merged
from pipeline.common.io import dataset_of, read_line_blocks, write_json
from pipeline.common.step import StepError, already_done, positive_int, run_step, threads

logger = logging.getLogger("merge")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dirs", required=True, nargs="+", type=Path)
    parser.add_argument(
        "--exclude-dirs", nargs="*", type=Path, default=[], help="devtest/test datasets to remove"
    )
    parser.add_argument(
        "--more-input-dirs", nargs="*", type=Path, default=[], help="merged after --input-dirs"
    )
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument(
        "--max-sentences", type=positive_int, default=None, help="keep at most this many pairs"
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def dataset_name(folder: Path) -> str:
    return dataset_of(folder) or str(folder)


def main(args):
    outputs = [f"corpus.{args.src}.zst", f"corpus.{args.trg}.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    args.output_dir.mkdir(parents=True, exist_ok=True)
    input_dirs = [*args.input_dirs, *args.more_input_dirs]
    inputs = [d / name for d in input_dirs for name in outputs[:2]]
    merger = Merger(args.output_dir / ".work", bucket_count(inputs), cores=threads())
    merger.test_hashes = test_set_hashes(args.exclude_dirs, [args.src, args.trg])
    for folder in input_dirs:
        blocks = read_line_blocks([folder / outputs[0], folder / outputs[1]], BATCH)
        merger.add_dataset(dataset_name(folder), blocks)
    count = write_merged(
        [args.output_dir / outputs[0], args.output_dir / outputs[1]], merger.merged(args.max_sentences)
    )
    if count == 0:
        for name in outputs[:2]:
            (args.output_dir / name).unlink()
        raise StepError(
            f"the merged corpus is empty: no pairs left of {merger.totals()['lines']} in "
            f"{', '.join(map(str, args.input_dirs))} ({merger.totals()})"
        )
    totals = merger.totals()
    stats = {
        "datasets": [d.as_dict() for d in merger.datasets],
        "test_sets": [dataset_name(d) for d in args.exclude_dirs],
        "lines_in": totals["lines"],
        "duplicates": totals["duplicates_exact"] + totals["duplicates_normalized"],
        **totals,
        "lines_out": count,
    }
    write_json(args.output_dir / "stats.json", stats)
    logger.info("merged %d pairs: %s", count, totals)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
