"""Benchmark of the data stages: pairs/s (CPU time and wall time) and peak RSS of import, rule-based cleaning,
cleaning with language ID, and the merge, at several corpus sizes, so their growth can be read off.

    task bench-data                                   # 200k and 2M generated pairs, and the demo corpus
    task bench-data -- --sizes 200000 --threads 2     # other sizes / cores

The generated corpus joins two random pairs of the demo corpus (data/l10n-en-fr) per line, so it is real
English and French text, mostly unique, with some exact duplicates mixed in (1%). Each stage runs as its own
process, as the engines run it; CPU time and peak RSS come from wait4() (the step and its worker processes).
Results are printed as a table and written to --output (JSON).

The yardstick is issue 9's: language ID, cleaning and merge together at 10x the 3,300 pairs/s the first cleaning
step did on one core. That step (benchmarks/first_cleaner.py) also runs here, on the demo corpus and the first
size, so the factor can be read against its speed on this machine too.
"""

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT / "data" / "l10n-en-fr"
FIRST_CLEANER_PAIRS_PER_S = 3_300  # rules + py3langid one text at a time, one core, as issue 9 measured it


def read_text(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return file.read()


def generate(folder: Path, size: int, seed: int = 7) -> Path:
    src, trg = (read_text(CORPUS / f"train.{lang}.gz").splitlines() for lang in ("en", "fr"))
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with (
        zstandard.ZstdCompressor(level=3).stream_writer(open(folder / "corpus.en.zst", "wb")) as en,  # noqa: SIM115
        zstandard.ZstdCompressor(level=3).stream_writer(open(folder / "corpus.fr.zst", "wb")) as fr,  # noqa: SIM115
    ):
        previous = []
        for _ in range(size):
            if previous and rng.random() < 0.01:
                s, t = rng.choice(previous)
            else:
                i, j = rng.randrange(len(src)), rng.randrange(len(src))
                s, t = f"{src[i]} {src[j]}", f"{trg[i]} {trg[j]}"
                if len(previous) < 10000:
                    previous.append((s, t))
            en.write((s + "\n").encode())
            fr.write((t + "\n").encode())
    (folder / "stats.json").write_text(
        json.dumps({"dataset": f"generated_{size}", "langs": ["en", "fr"], "lines": size})
    )
    return folder


def measure(module: str, args: list, threads: int, repo: Path = REPO_ROOT) -> dict:
    """Runs a step of the checkout `repo` as the engines do; its CPU time, wall time and peak RSS."""
    env = {**os.environ, "THREADS": str(threads), "WORKSPACE": "1000"}
    start = time.time()
    process = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=repo, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    stderr = process.stderr.read().decode()  # before waiting: a full pipe would block the step
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.time() - start
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{module} failed:\n{stderr[-3000:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def start_up(root: Path, threads: int) -> dict:
    """Wall seconds of cleaning with language ID and of the merge on a 10-pair corpus: what every run pays
    whatever its size (interpreter, imports, loading the compiled loops and the model, forking the workers)."""
    tiny = generate(root / "tiny", 10)
    seconds = {}
    for stage, module, args in (
        ("clean", "pipeline.clean.clean_parallel", ["--input-dir", tiny, "--src", "en", "--trg", "fr"]),
        ("merge", "pipeline.clean.merge_corpus", ["--input-dirs", tiny, "--src", "en", "--trg", "fr"]),
    ):
        runs = [
            measure(module, [*args, "--output-dir", root / f"tiny-{stage}-{i}"], threads) for i in range(3)
        ]
        seconds[stage] = min(r["wall_s"] for r in runs)
    print(
        f"  start-up (10 pairs, best of 3): clean with language ID {seconds['clean']:.2f} s, merge {seconds['merge']:.2f} s"
    )
    return seconds


def bench_size(
    label: str, dataset: Path, pairs: int, work: Path, threads: int, first_cleaner: bool, fixed: dict
) -> list[dict]:
    rows = []

    def stage(name, module, args, cores):
        result = measure(module, args, cores)
        result.update(corpus=label, pairs=pairs, stage=name, threads=cores)
        result["pairs_per_cpu_s"] = pairs / result["cpu_s"]
        result["pairs_per_wall_s"] = pairs / result["wall_s"]
        rows.append(result)
        print(
            f"{label:>12} {name:<28} threads {cores}  {result['pairs_per_cpu_s']:>10,.0f} pairs/CPU-s  "
            f"{result['pairs_per_wall_s']:>10,.0f} pairs/s wall  {result['peak_rss_mb']:>7.0f} MB peak",
            flush=True,
        )

    common = ["--input-dir", dataset, "--src", "en", "--trg", "fr"]
    if first_cleaner:
        stage(
            "first cleaner (yardstick)",
            "benchmarks.first_cleaner",
            [*common, "--output-dir", work / "first"],
            1,
        )
    stage(
        "clean: rules only",
        "pipeline.clean.clean_parallel",
        [*common, "--language-id", "false", "--output-dir", work / "rules"],
        1,
    )
    merge_args = [
        "--input-dirs",
        work / "clean1",
        "--src",
        "en",
        "--trg",
        "fr",
        "--exclude-dirs",
        work / "test",
    ]
    # cleaning first: the merge reads its one-core output
    for name, module, args, output in (
        ("clean: rules + language ID", "pipeline.clean.clean_parallel", common, "clean"),
        ("merge (dedupe, decontaminate)", "pipeline.clean.merge_corpus", merge_args, "merge"),
    ):
        for cores in sorted({1, threads}):
            stage(name, module, [*args, "--output-dir", work / f"{output}{cores}"], cores)
    # The yardstick: language ID, cleaning and merge one after the other on this machine's cores,
    # against the 3,300 pairs/s of the first cleaning step (rules and py3langid, one core).
    clean, merged = (
        next(r for r in rows if r["stage"] == name and r["threads"] == threads)
        for name in ("clean: rules + language ID", "merge (dedupe, decontaminate)")
    )
    together = pairs / (clean["wall_s"] + merged["wall_s"])
    row = {"corpus": label, "pairs": pairs, "stage": "language ID + cleaning + merge", "threads": threads,
           "wall_s": clean["wall_s"] + merged["wall_s"], "pairs_per_wall_s": together,
           "times_issue_figure": together / FIRST_CLEANER_PAIRS_PER_S}  # fmt: skip
    line = (
        f"{label:>12} {'language ID + cleaning + merge':<28} threads {threads}  {together:>10,.0f} pairs/s wall "
        f"= {together / FIRST_CLEANER_PAIRS_PER_S:.1f}x the issue's {FIRST_CLEANER_PAIRS_PER_S:,}"
    )
    steady = pairs / max(clean["wall_s"] + merged["wall_s"] - fixed["clean"] - fixed["merge"], 1e-9)
    row["pairs_per_wall_s_without_start_up"] = steady
    line += f" ({steady:,.0f} pairs/s without the start-up)"
    first = next((r for r in rows if r["stage"] == "first cleaner (yardstick)"), None)
    if first:
        row["times_first_cleaner_here"] = together / first["pairs_per_wall_s"]
        line += f", {row['times_first_cleaner_here']:.1f}x the first cleaner measured here"
    rows.append(row)
    print(line)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[200_000, 2_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-demo", action="store_true", help="skip the demo corpus")
    parser.add_argument(
        "--no-first-cleaner",
        action="store_true",
        help="skip the first cleaner (benchmarks/first_cleaner.py), otherwise run on the demo corpus and the first size",
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "runs" / "bench-data.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        root = Path(tmp)
        test = root / "test"
        test.mkdir()
        for lang in ("en", "fr"):
            (test / f"corpus.{lang}.zst").write_bytes(
                zstandard.ZstdCompressor().compress(read_text(CORPUS / f"test.{lang}.gz").encode())
            )
        fixed = start_up(root, args.threads)
        rows.append(
            {"stage": "start-up", "threads": args.threads, **{f"{k}_wall_s": v for k, v in fixed.items()}}
        )
        corpora = []
        if not args.no_demo:
            demo = root / "demo"
            result = measure("pipeline.data.import_dataset", ["--dataset", "local_data/l10n-en-fr/train", "--langs", "en,fr", "--output-dir", demo], 1)  # fmt: skip
            corpora.append(("l10n-en-fr", demo, 40_089))
            print(
                f"  l10n-en-fr import: {40_089 / result['cpu_s']:,.0f} pairs/CPU-s, {result['peak_rss_mb']:.0f} MB peak"
            )
        for size in args.sizes:
            corpora.append((f"{size:,}", generate(root / f"gen-{size}", size), size))
        for number, (label, dataset, pairs) in enumerate(corpora):
            work = root / f"work-{label}"
            work.mkdir()
            (work / "test").symlink_to(test)
            first_cleaner = not args.no_first_cleaner and number < len(corpora) - len(args.sizes) + 1
            rows += bench_size(label, dataset, pairs, work, args.threads, first_cleaner, fixed)
    if len(args.sizes) >= 2:
        small, large = f"{min(args.sizes):,}", f"{max(args.sizes):,}"
        print(f"\ngrowth from {small} to {large} pairs (large / small):")
        for row in rows:
            if row.get("corpus") == large and "peak_rss_mb" in row:
                base = next(
                    r
                    for r in rows
                    if r.get("corpus") == small
                    and r["stage"] == row["stage"]
                    and r["threads"] == row["threads"]
                )
                print(
                    f"  {row['stage']:<28} threads {row['threads']}: peak RSS x{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}, "
                    f"pairs/CPU-s x{row['pairs_per_cpu_s'] / base['pairs_per_cpu_s']:.2f}"
                )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
