"""Score one cleaned parallel dataset with bicleaner-ai and keep the pairs above its threshold.

Reads `<input-dir>/corpus.<src|trg>.zst` (the cleaned dataset), writes the kept pairs to
`<output-dir>/corpus.<src|trg>.zst`, every pair's score to `scores.zst` (one per input line, for tuning the
threshold) and `stats.json` (pairs in, removed, kept, the threshold, a score histogram). A threshold of 0 skips
the scoring: the dataset is copied through and needs no model pack. Otherwise `--pack` is the folder of the
fetch task (bicleaner-pack.tar.zst, pack.json). Pairs are scored in blocks of --block-size.
"""

import argparse
import logging
import shutil
from pathlib import Path

from pipeline.bicleaner.scorers import load_scorer
from pipeline.common.io import dataset_of, read_json, read_pairs, write_json, write_lines
from pipeline.common.score_filter import check_threshold, filter_by_score, unpack_model
from pipeline.common.step import already_done, run_step, threads

logger = logging.getLogger("bicleaner")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--threshold", required=True, type=float)
    parser.add_argument(
        "--pack", type=Path, default=None, help="the fetch task's folder (needed unless threshold is 0)"
    )
    parser.add_argument("--scorer", default="pipeline.bicleaner.scorers:BicleanerAI")
    parser.add_argument("--block-size", type=int, default=50_000)
    parser.add_argument("--output-dir", required=True, type=Path)


def main(args):
    outputs = [f"corpus.{args.src}.zst", f"corpus.{args.trg}.zst", "scores.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    check_threshold(args.threshold)
    dataset = dataset_of(args.input_dir)
    pairs = read_pairs(args.input_dir / outputs[0], args.input_dir / outputs[1])
    args.output_dir.mkdir(parents=True, exist_ok=True)
    work = args.output_dir / ".work"
    pack_dir = unpack_model("bicleaner", args.threshold, args.pack, "bicleaner-pack.tar.zst", work, dataset)
    scorer = None
    if pack_dir:
        swapped = bool(read_json(args.pack / "pack.json").get("swapped"))
        scorer = load_scorer(args.scorer, pack_dir, swapped, threads())
    with (
        write_lines(args.output_dir / outputs[0]) as src_out,
        write_lines(args.output_dir / outputs[1]) as trg_out,
        write_lines(args.output_dir / outputs[2]) as scores_out,
    ):

        def keep(pair):
            src_out.write(pair[0])
            trg_out.write(pair[1])

        counts = filter_by_score(
            pairs, scorer.score if scorer else None, args.threshold, args.block_size, keep, scores_out.write
        )
    stats = {
        "dataset": dataset,
        "threshold": args.threshold,
        "scored": scorer is not None,
        **counts.as_stats(),
    }
    write_json(args.output_dir / "stats.json", stats)
    shutil.rmtree(work, ignore_errors=True)
    kept, seen = counts.lines_out, counts.lines_in
    logger.info("bicleaner: kept %d of %d pairs of %s (threshold %s)", kept, seen, dataset, args.threshold)
    if kept == 0 and seen:
        logger.warning("dataset %s: bicleaner removed every pair (threshold %s)", dataset, args.threshold)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
