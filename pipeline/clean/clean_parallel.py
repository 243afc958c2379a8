"""Clean one parallel dataset with a filter pipeline in OpusCleaner's format, over THREADS cores.

Reads `<input-dir>/corpus.<src|trg>.zst`, writes the kept pairs to `<output-dir>/corpus.<src|trg>.zst`, the
filter config it ran to `filters.json`, and `stats.json`: pairs in and out, how many pairs each filter removed
(the data funnel of the run report) and length histograms of the kept pairs.

The filter config (pipeline/clean/filters.py) is the built-in default (`--opuscleaner-mode defaults`), or with
`custom` the most specific of: <filters-dir>/<src>-<trg>/<dataset>.filters.json, <src>-<trg>/default.filters.json,
default.filters.json. `--min-words`, `--max-words`, `--max-length-ratio` set the built-in default's
parameters; `--language-id false` removes the langid filter from any config.

Blocks of pairs stream through a pool of THREADS processes in order, so the output is the same whatever
THREADS is. A dataset that cleaning empties gets a warning and empty outputs (the merge counts it).
"""

import argparse
import logging
from pathlib import Path

from pipeline.clean import filters as filtering
from pipeline.clean import runner
from pipeline.common.io import dataset_of, read_line_blocks, write_lines
from pipeline.common.step import already_done, run_step, threads

logger = logging.getLogger("clean")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument(
        "--dataset", default=None, help="the dataset name (picks a per-dataset filter config)"
    )
    parser.add_argument("--opuscleaner-mode", choices=["defaults", "custom"], default="defaults")
    parser.add_argument("--filters-dir", type=Path, default=runner.DEFAULT_FILTERS_DIR)
    parser.add_argument("--min-words", type=int, default=1)
    parser.add_argument("--max-words", type=int, default=150)
    parser.add_argument("--max-length-ratio", type=float, default=3.0)
    parser.add_argument("--language-id", choices=["true", "false"], default="true")
    parser.add_argument("--lid-threshold", type=float, default=0.5)
    parser.add_argument("--output-dir", required=True, type=Path)


def select_config(args) -> Path:
    if args.opuscleaner_mode == "defaults":
        return args.filters_dir / "default.filters.json"
    return filtering.choose_config(
        args.filters_dir, args.src, args.trg, runner.dataset_slug(args.dataset) if args.dataset else None
    )


def main(args):
    outputs = [f"corpus.{args.src}.zst", f"corpus.{args.trg}.zst", "filters.json", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    cores = threads()
    dataset = args.dataset or dataset_of(args.input_dir)
    if args.dataset is None:
        args.dataset = dataset
    config_path = select_config(args)
    steps = filtering.load_config(config_path, args.src, args.trg)
    if args.language_id == "false":
        steps = [s for s in steps if s["filter"] != "langid"]
    overrides = {"langid": {"THRESHOLD": args.lid_threshold}}
    if config_path.resolve() == (args.filters_dir / "default.filters.json").resolve():
        overrides |= {
            "max_length": {"MINLENGTH": args.min_words, "MAXLENGTH": args.max_words},
            "char_ratio": {"RATIO": args.max_length_ratio},
        }
    # Built once, here (fails early on an unknown language or a bad parameter); forked workers inherit it.
    runner.init_filters(steps, args.src, args.trg, overrides)
    logger.info("filter config %s: %s", config_path, ", ".join(s["filter"] for s in steps))

    counts = runner.CleaningCounts()
    blocks = read_line_blocks([args.input_dir / outputs[0], args.input_dir / outputs[1]], runner.BATCH)
    with (
        runner.cleaned_blocks(blocks, cores) as results,
        write_lines(args.output_dir / outputs[0]) as src_out,
        write_lines(args.output_dir / outputs[1]) as trg_out,
    ):
        for (src_frame, trg_frame), kept in runner.counted(results, counts):
            src_out.write_frame(src_frame, kept)
            trg_out.write_frame(trg_frame, kept)
    stats = {
        "dataset": dataset,
        "lines_in": counts.seen,
        "lines_out": src_out.count,
        "removed": dict(counts.removed),
        "lengths": {side: runner.length_histogram(counts.lengths, side) for side in ("src", "trg")},
    }
    runner.write_results(args.output_dir, config_path, args.filters_dir, stats, "pair")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
