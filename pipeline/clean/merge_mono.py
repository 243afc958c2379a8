"""Merge monolingual corpora (minimal): drop duplicates and lines of the parallel corpus, shuffle, cap.

Reads `<dir>/corpus.<lang>.zst` from each --input-dirs folder (at most --max-per-dataset lines of each, in
order) and, with --parallel-dir, drops the lines that are in `<parallel-dir>/corpus.<lang>.zst` (they would
leak the parallel data into back-translation or distillation twice). Shuffles with a fixed seed, keeps at
most --max-sentences lines, writes `<output-dir>/corpus.<lang>.zst` and `stats.json`.
"""

import argparse
import hashlib
import logging
import random
from pathlib import Path

from pipeline.common.io import read_lines, write_json, write_lines
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("merge-mono")

SEED = 1111


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dirs", required=True, nargs="+", type=Path)
    parser.add_argument("--lang", required=True)
    parser.add_argument("--parallel-dir", type=Path, help="drop the lines of this parallel corpus's side")
    parser.add_argument("--max-sentences", type=int, default=None, help="keep at most this many lines")
    parser.add_argument(
        "--max-per-dataset", type=int, default=None, help="read at most this many per dataset"
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def digest(line: str) -> bytes:
    return hashlib.blake2b(line.encode(), digest_size=8).digest()


def main(args):
    outputs = [f"corpus.{args.lang}.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    seen = set()
    in_parallel = 0
    if args.parallel_dir:
        seen.update(digest(line) for line in read_lines(args.parallel_dir / outputs[0]))
    lines, per_dataset = [], []
    for input_dir in args.input_dirs:
        read = kept = 0
        for line in read_lines(input_dir / outputs[0]):
            if args.max_per_dataset is not None and read >= args.max_per_dataset:
                break
            read += 1
            key = digest(line)
            if not line.strip() or key in seen:
                continue
            seen.add(key)
            lines.append(line)
            kept += 1
        per_dataset.append({"dataset": str(input_dir), "lines": read, "kept": kept})
        in_parallel += read - kept
    if not lines:
        raise StepError(
            f"the merged mono corpus is empty: no new lines in {', '.join(map(str, args.input_dirs))}"
        )
    random.Random(SEED).shuffle(lines)
    total = len(lines)
    if args.max_sentences is not None:
        lines = lines[: args.max_sentences]
    with write_lines(args.output_dir / outputs[0]) as out:
        for line in lines:
            out.write(line)
    write_json(
        args.output_dir / "stats.json",
        {
            "datasets": per_dataset,
            "lines_in": sum(d["lines"] for d in per_dataset),
            "dropped": in_parallel,
            "capped": total - len(lines),
            "lines_out": len(lines),
        },
    )
    logger.info("merged %d lines (%d over the cap)", len(lines), total - len(lines))


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
