"""Merge parallel corpora: drop exact duplicate pairs, shuffle with a fixed seed, cap the size.

Reads `<dir>/corpus.<src|trg>.zst` from each --input-dirs folder (in the order given; the first copy of a
duplicate pair is kept), writes `<output-dir>/corpus.<src|trg>.zst` and `stats.json`. Used for the training
corpus, the devset and the distilled corpus.
"""

import argparse
import hashlib
import logging
import random
from pathlib import Path

from pipeline.common.io import read_json, read_pairs, write_json, write_pairs
from pipeline.common.step import StepError, already_done, positive_int, run_step

logger = logging.getLogger("merge")

SEED = 1111


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dirs", required=True, nargs="+", type=Path)
    parser.add_argument(
        "--more-input-dirs", nargs="*", type=Path, default=[], help="merged after --input-dirs"
    )
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument(
        "--max-sentences", type=positive_int, default=None, help="keep at most this many pairs"
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def main(args):
    outputs = [f"corpus.{args.src}.zst", f"corpus.{args.trg}.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    seen_hashes = set()
    pairs = []
    per_dataset = []
    for input_dir in [*args.input_dirs, *args.more_input_dirs]:
        lines = duplicates = 0
        for src, trg in read_pairs(input_dir / outputs[0], input_dir / outputs[1]):
            lines += 1
            key = hashlib.blake2b(f"{src}\t{trg}".encode(), digest_size=8).digest()
            if key in seen_hashes:
                duplicates += 1
                continue
            seen_hashes.add(key)
            pairs.append((src, trg))
        stats_file = input_dir / "stats.json"
        dataset = read_json(stats_file).get("dataset") if stats_file.exists() else str(input_dir)
        per_dataset.append({"dataset": dataset, "lines": lines, "duplicates": duplicates})
    if not pairs:
        raise StepError(f"the merged corpus is empty: no pairs in {', '.join(map(str, args.input_dirs))}")
    random.Random(SEED).shuffle(pairs)
    total = len(pairs)
    if args.max_sentences is not None:
        pairs = pairs[: args.max_sentences]
    write_pairs(args.output_dir / outputs[0], args.output_dir / outputs[1], pairs)
    stats = {
        "datasets": per_dataset,
        "lines_in": sum(d["lines"] for d in per_dataset),
        "duplicates": sum(d["duplicates"] for d in per_dataset),
        "capped": total - len(pairs),
        "lines_out": len(pairs),
    }
    write_json(args.output_dir / "stats.json", stats)
    logger.info(
        "merged %d pairs (%d duplicates, %d over the cap)", len(pairs), stats["duplicates"], stats["capped"]
    )


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
