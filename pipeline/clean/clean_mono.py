"""Clean one monolingual dataset with a filter pipeline in OpusCleaner's format, over THREADS cores.

Reads `<input-dir>/corpus.<lang>.zst`, writes the kept lines to `<output-dir>/corpus.<lang>.zst`, the filter
config it ran to `filters.json` and `stats.json` (lines in and out, removed per filter, length histogram).
The config is <filters-dir>/mono.filters.json (`--opuscleaner-mode defaults`) or, with `custom`, the most
specific of <lang>/<dataset>.mono.filters.json, <lang>/mono.filters.json and mono.filters.json. Each filter
sees a line as both sides of a pair (so the parallel filters apply; language ID classifies it once).
`--language-id false` removes the langid filter. An emptied dataset warns and gives an empty output.
"""

import argparse
import logging
from pathlib import Path

from pipeline.clean import filters as filtering
from pipeline.clean import runner
from pipeline.common.io import dataset_of, read_line_blocks, write_lines
from pipeline.common.step import StepError, already_done, run_step, threads

logger = logging.getLogger("clean-mono")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dir", required=True, type=Path)
    parser.add_argument("--lang", required=True)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--opuscleaner-mode", choices=["defaults", "custom"], default="defaults")
    parser.add_argument("--filters-dir", type=Path, default=runner.DEFAULT_FILTERS_DIR)
    parser.add_argument("--language-id", choices=["true", "false"], default="true")
    parser.add_argument("--output-dir", required=True, type=Path)


def select_config(args) -> Path:
    candidates = []
    if args.opuscleaner_mode == "custom":
        if args.dataset:
            candidates.append(
                args.filters_dir / args.lang / f"{runner.dataset_slug(args.dataset)}.mono.filters.json"
            )
        candidates.append(args.filters_dir / args.lang / "mono.filters.json")
    candidates.append(args.filters_dir / "mono.filters.json")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise StepError(f"no filter config: none of {', '.join(map(str, candidates))} exists")


def main(args):
    outputs = [f"corpus.{args.lang}.zst", "filters.json", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    cores = threads()
    if args.dataset is None:
        args.dataset = dataset_of(args.input_dir)
    config_path = select_config(args)
    steps = filtering.load_config(config_path, args.lang, args.lang)
    if args.language_id == "false":
        steps = [s for s in steps if s["filter"] != "langid"]
    runner.init_filters(steps, args.lang, args.lang, {})  # fails early; forked workers inherit it
    logger.info("filter config %s: %s", config_path, ", ".join(s["filter"] for s in steps))
    blocks = read_line_blocks([args.input_dir / outputs[0]], runner.BATCH)
    counts = runner.CleaningCounts()
    with runner.cleaned_blocks(blocks, cores) as results, write_lines(args.output_dir / outputs[0]) as out:
        for (frame,), kept in runner.counted(results, counts):
            out.write_frame(frame, kept)
    stats = {
        "dataset": args.dataset,
        "lang": args.lang,
        "lines_in": counts.seen,
        "lines_out": out.count,
        "removed": dict(counts.removed),
        "lengths": {args.lang: runner.length_histogram(counts.lengths, "src")},
    }
    runner.write_results(args.output_dir, config_path, args.filters_dir, stats, "line")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
