"""Merge the monolingual datasets of one language: dedupe, drop what the parallel corpus has, decontaminate.

Reads `<dir>/corpus.<lang>.zst` from each --input-dirs folder; removes exact and normalized duplicates (the
first copy is kept), every line that (normalized) is a sentence of the merged parallel corpus' side in that
language (--parallel-dir), and every line that is a sentence of the devtest/test datasets (--exclude-dirs);
shuffles with a fixed seed and keeps at most --max-sentences lines (the config's mono-max-sentences-*.total;
the per-dataset cap is applied by the import). Writes `<output-dir>/corpus.<lang>.zst` and `stats.json`.
Streams with bounded memory (pipeline/clean/merge.py).
"""

import argparse
import logging
from pathlib import Path

from pipeline.clean.merge import BATCH, Merger, bucket_count, test_set_hashes, write_merged
from pipeline.clean.merge_corpus import dataset_name
from pipeline.common.io import read_line_blocks, write_json
from pipeline.common.step import StepError, already_done, positive_int, run_step, threads

logger = logging.getLogger("merge-mono")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dirs", required=True, nargs="+", type=Path)
    parser.add_argument("--lang", required=True)
    parser.add_argument("--parallel-dir", type=Path, default=None, help="the merged parallel corpus")
    parser.add_argument(
        "--exclude-dirs", nargs="*", type=Path, default=[], help="devtest/test datasets to remove"
    )
    parser.add_argument("--max-sentences", type=positive_int, default=None)
    parser.add_argument("--output-dir", required=True, type=Path)


def main(args):
    outputs = [f"corpus.{args.lang}.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    args.output_dir.mkdir(parents=True, exist_ok=True)
    inputs = [d / outputs[0] for d in args.input_dirs]
    merger = Merger(args.output_dir / ".work", bucket_count(inputs), sides=1, cores=threads())
    merger.test_hashes = test_set_hashes(args.exclude_dirs, [args.lang])
    if args.parallel_dir is not None:
        parallel = args.parallel_dir / outputs[0]
        if not parallel.exists():
            raise StepError(f"the parallel corpus {parallel} does not exist")
        merger.exclude(read_line_blocks([parallel], BATCH))
    for folder in args.input_dirs:
        # Blank lines carry nothing to translate (cleaning drops them; a dataset fed in directly may hold some).
        blocks = read_line_blocks([folder / outputs[0]], BATCH)
        merger.add_dataset(dataset_name(folder), blocks, skip_blank=True)
    count = write_merged([args.output_dir / outputs[0]], merger.merged(args.max_sentences))
    if count == 0:
        (args.output_dir / outputs[0]).unlink()
        raise StepError(f"the merged monolingual corpus is empty ({merger.totals()})")
    totals = merger.totals()
    stats = {
        "lang": args.lang,
        "datasets": [d.as_dict() for d in merger.datasets],
        "test_sets": [dataset_name(d) for d in args.exclude_dirs],
        "lines_in": totals["lines"],
        **totals,
        "lines_out": count,
    }
    write_json(args.output_dir / "stats.json", stats)
    logger.info("merged %d %s lines: %s", count, args.lang, totals)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
