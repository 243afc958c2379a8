"""Benchmark translation speed: each model folder (or ensemble) decodes the same test set at a fixed
thread count, several times; prints words/s (best run, wall clock and CPU time) and the ratio to the first.

    python -m pipeline.eval.bench --dataset-dir DIR --src en --trg fr --threads 1 \\
        --models ensemble=runs/x/train-teacher-en-fr-1/artifacts,runs/x/train-teacher-en-fr-2/artifacts \\
                 int8=runs/x/distillation-student-model-quantize-en-fr/artifacts

Model folders are those evaluate.py reads (a trained model, or an int8 model that decodes with its
shortlist). The issue's target: the int8 student at least 3x the teacher ensemble's words/s.
"""

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline.common.io import read_pairs
from pipeline.common.marian import decoding_batch_options, marian_command, to_args
from pipeline.common.step import StepError, run_step
from pipeline.eval.evaluate import decoding_options


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--dataset-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--models", nargs="+", required=True, help="NAME=DIR[,DIR...] (several = an ensemble)"
    )
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")


def decode_once(options: dict, source: Path) -> tuple[float, float]:
    command = marian_command("decode") + to_args(
        {**options, "input": str(source), "cpu-threads": options["cpu-threads"], "quiet": True}
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise StepError(f"decoding failed: {result.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(args):
    sources = [
        src
        for src, _ in read_pairs(
            args.dataset_dir / f"corpus.{args.src}.zst", args.dataset_dir / f"corpus.{args.trg}.zst"
        )
    ]
    if not sources:
        raise StepError(f"the test set in {args.dataset_dir} is empty")
    words = sum(len(s.split()) for s in sources)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.txt"
        source.write_text("\n".join(sources) + "\n", encoding="utf-8")
        for spec in args.models:
            name, _, folders = spec.partition("=")
            if not folders:
                raise StepError(f"--models takes NAME=DIR[,DIR...], got {spec!r}")
            options, models = decoding_options([Path(f) for f in folders.split(",")])
            options.update(decoding_batch_options({}))
            options.update({"cpu-threads": args.threads, "workspace": 2000, "quiet-translation": True})
            runs = [decode_once(options, source) for _ in range(args.repeats)]
            wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
            results.append(
                {
                    "model": name,
                    "words_per_second": round(words / wall, 1),
                    "words_per_cpu_second": round(words / cpu, 1),
                    "model_bytes": sum(p.stat().st_size for p in models),
                }
            )
    first = results[0]
    print(f"{len(sources)} sentences, {words} source words, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'model':<24} {'words/s':>10} {'words/CPU s':>12} {'x first':>8} {'bytes':>12}")
    for r in results:
        r["ratio_to_first"] = round(r["words_per_second"] / first["words_per_second"], 2)
        print(
            f"{r['model']:<24} {r['words_per_second']:>10} {r['words_per_cpu_second']:>12} "
            f"{r['ratio_to_first']:>8} {r['model_bytes']:>12}"
        )
    if args.output:
        args.output.write_text(
            json.dumps({"threads": args.threads, "words": words, "results": results}, indent=2)
        )


if __name__ == "__main__":
    os.environ.setdefault("THREADS", "1")
    run_step(__doc__.splitlines()[0], add_arguments, main)
