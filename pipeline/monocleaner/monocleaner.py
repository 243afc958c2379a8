"""Score one cleaned monolingual dataset with monocleaner and keep the sentences above its threshold.

Reads `<input-dir>/corpus.<lang>.zst` (the cleaned dataset), writes the kept sentences to
`<output-dir>/corpus.<lang>.zst`, every sentence's fluency score to `scores.zst` (one per input line, for tuning
the threshold) and `stats.json` (lines in, removed, kept, the threshold, a score histogram). A threshold of 0
skips the scoring: the dataset is copied through and needs no model pack. Otherwise `--pack` is the folder of
the fetch task (monocleaner-pack.tar.zst). Sentences are scored in blocks of --block-size.
"""

import argparse
import logging
import shutil
from pathlib import Path

from pipeline.common.io import dataset_of, read_lines, write_json, write_lines
from pipeline.common.score_filter import check_threshold, filter_by_score, unpack_model
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.monocleaner.scorers import load_scorer

logger = logging.getLogger("monocleaner")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dir", required=True, type=Path)
    parser.add_argument("--lang", required=True)
    parser.add_argument("--threshold", required=True, type=float)
    parser.add_argument(
        "--pack", type=Path, default=None, help="the fetch task's folder (needed unless threshold is 0)"
    )
    parser.add_argument("--scorer", default="pipeline.monocleaner.scorers:Monocleaner")
    parser.add_argument("--block-size", type=int, default=100_000)
    parser.add_argument("--output-dir", required=True, type=Path)


def main(args):
    outputs = [f"corpus.{args.lang}.zst", "scores.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    check_threshold(args.threshold)
    if args.block_size < 1:
        raise StepError(f"--block-size must be at least 1, got {args.block_size}")
    dataset = dataset_of(args.input_dir)
    source = args.input_dir / outputs[0]
    if not source.exists():
        raise StepError(f"dataset {dataset}: no cleaned corpus {source}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    work = args.output_dir / ".work"
    pack_dir = unpack_model(
        "monocleaner", args.threshold, args.pack, "monocleaner-pack.tar.zst", work, dataset
    )
    scorer = load_scorer(args.scorer, pack_dir, args.lang, threads()) if pack_dir else None
    with (
        write_lines(args.output_dir / outputs[0]) as kept_out,
        write_lines(args.output_dir / outputs[1]) as scores_out,
    ):
        counts = filter_by_score(
            read_lines(source),
            scorer.score if scorer else None,
            args.threshold,
            args.block_size,
            kept_out.write,
            scores_out.write,
        )
    stats = {
        "dataset": dataset,
        "lang": args.lang,
        "threshold": args.threshold,
        "scored": scorer is not None,
        **counts.as_stats(),
    }
    write_json(args.output_dir / "stats.json", stats)
    shutil.rmtree(work, ignore_errors=True)
    logger.info(
        "monocleaner: kept %d of %d %s lines of %s (threshold %s)",
        counts.lines_out,
        counts.lines_in,
        args.lang,
        dataset,
        args.threshold,
    )
    if counts.lines_out == 0 and counts.lines_in:
        logger.warning("dataset %s: monocleaner removed every line (threshold %s)", dataset, args.threshold)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
