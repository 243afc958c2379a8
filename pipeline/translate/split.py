"""Split a corpus to translate into its chunks, so that each translate task fetches only its own.

Reads --input (the side to translate) and --references (for distillation: the other side, which the n-best
pick compares with) and writes, for each, `chunk.<k>.<file name>` for k = 1..--chunks to <output-dir>, in one streaming pass
over each file. Chunk k holds the lines translate.py's `chunk_bounds` gives it (ceil(lines / chunks) per
chunk, in order), so `collect.py` puts the translations back in the corpus's order. With more chunks than
lines the last chunks are empty files (their translate tasks write empty translations); no line is dropped.
Fails, writing nothing, when the inputs differ in line count.
"""

import argparse
import logging
from pathlib import Path

from pipeline.common.io import count_lines, read_lines, remove_stale_temporaries, write_json, write_lines
from pipeline.common.step import StepError, already_done, positive_int, run_step
from pipeline.translate.translate import chunk_bounds

logger = logging.getLogger("split")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input", required=True, type=Path, help="the corpus to translate (one side)")
    parser.add_argument("--references", type=Path, help="its references (the parallel corpus's other side)")
    parser.add_argument("--chunks", required=True, type=positive_int, help="how many chunks")
    parser.add_argument("--output-dir", required=True, type=Path)


def chunk_name(number: int, path: Path) -> str:
    return f"chunk.{number}.{path.name}"


def main(args):
    out = args.output_dir
    inputs = [args.input] + ([args.references] if args.references else [])
    names = [path.name for path in inputs]
    if len(set(names)) != len(names):
        raise StepError(
            f"two inputs have the same file name ({', '.join(names)}): their chunks would collide"
        )
    outputs = [chunk_name(k, path) for path in inputs for k in range(1, args.chunks + 1)]
    if already_done(out, [*outputs, "chunks.json"]):
        return
    remove_stale_temporaries(out)
    counts = {path: count_lines(path) for path in inputs}
    if len(set(counts.values())) > 1:
        raise StepError(
            "line counts differ: " + ", ".join(f"{path} has {count}" for path, count in counts.items())
        )
    total = counts[inputs[0]]
    if args.chunks > total:
        logger.warning(
            "%d chunks for %d lines: chunks %d to %d are empty", args.chunks, total, total + 1, args.chunks
        )
    for path in inputs:
        lines = read_lines(path)
        for number in range(1, args.chunks + 1):
            start, end = chunk_bounds(total, number, args.chunks)
            with write_lines(out / chunk_name(number, path)) as chunk:
                for _ in range(end - start):
                    chunk.write(next(lines))
        logger.info("%s: %d lines in %d chunks", path, total, args.chunks)
    write_json(out / "chunks.json", {"chunks": args.chunks, "lines": total, "inputs": names})


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
