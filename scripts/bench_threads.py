"""Benchmark: two trainings on 2 cores, one after the other with 2 threads each (sync SGD), or side by side
with 1 thread each? (issue 8: how the local engine should schedule ensemble members and other independent
trainings.)

    python scripts/bench_threads.py [--updates 200] [--pairs 10000] [--work DIR]

Trains the tiny teacher preset twice in each layout on the shipped corpus through pipeline/train/train.py
(OpusTrainer + Marian, as the pipeline does) and prints wall time, CPU time (user+sys of the trainings) and
Marian's words/s per layout as JSON. Wall time is only meaningful on an otherwise idle machine.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.common.io import read_lines, write_lines

REPO_ROOT = Path(__file__).resolve().parent.parent


def env(threads: int) -> dict:
    return {**os.environ, "THREADS": str(threads), "WORKSPACE": "1500"}


def prepare(work: Path, pairs: int) -> None:
    data = REPO_ROOT / "data" / "l10n-en-fr"
    for split, count, folder in (("parallel", pairs, "corpus"), ("dev", 200, "devset")):
        for lang in ("en", "fr"):
            with write_lines(work / folder / f"corpus.{lang}.zst") as out:
                for _, line in zip(range(count), read_lines(data / f"{split}.{lang}.gz"), strict=False):
                    out.write(line)
    subprocess.run(
        [sys.executable, "-m", "pipeline.train.spm_vocab", "--corpus-dir", work / "corpus", "--src", "en",
         "--trg", "fr", "--vocab-size", "4000", "--output-dir", work / "vocab"],
        cwd=REPO_ROOT, env=env(2), check=True, capture_output=True,
    )  # fmt: skip


def train_command(work: Path, out: Path, seed: int, updates: int) -> list:
    options = {"after": f"{updates}u", "valid-freq": updates, "save-freq": updates, "disp-freq": 20}
    return [
        sys.executable, "-m", "pipeline.train.train", "--model-type", "teacher", "--architecture", "tiny",
        "--src", "en", "--trg", "fr", "--train-dir", work / "corpus", "--devset-dir", work / "devset",
        "--vocab", work / "vocab" / "vocab.spm", "--seed", str(seed), "--marian-args", json.dumps(options),
        "--output-dir", out,
    ]  # fmt: skip


def words_per_second(log: Path) -> float:
    rates = [float(m) for m in re.findall(r"([\d.]+) words/s", log.read_text())]
    return round(sum(rates) / len(rates), 1) if rates else 0.0


def run_layout(work: Path, layout: str, updates: int) -> dict:
    outs = [work / layout / f"model{seed}" for seed in (1, 2)]
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    if layout == "sequential-2-threads":
        for seed, out in enumerate(outs, start=1):
            subprocess.run(train_command(work, out, seed, updates), cwd=REPO_ROOT, env=env(2), check=True,
                           capture_output=True)  # fmt: skip
    else:
        processes = [
            subprocess.Popen(
                train_command(work, out, seed, updates),
                cwd=REPO_ROOT,
                env=env(1),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for seed, out in enumerate(outs, start=1)
        ]
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"a training of layout {layout} failed")
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "layout": layout,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "words_per_s_per_training": [words_per_second(out / "train.log") for out in outs],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=10000)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-threads-"))
    prepare(work, args.pairs)
    results = [
        run_layout(work, layout, args.updates) for layout in ("sequential-2-threads", "parallel-1-thread")
    ]
    print(
        json.dumps(
            {"updates": args.updates, "cores": len(os.sched_getaffinity(0)), "results": results}, indent=1
        )
    )


if __name__ == "__main__":
    main()
