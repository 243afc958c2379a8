"""Benchmark of the model-chain steps that stream: lines/s and peak RSS of translation (one chunk, n-best
against references or plain), cross-entropy filtering, word alignment (eflomal priors from a sample, then
chunks with fixed priors) and the shortlist, at several corpus sizes, so that their memory growth can be
read off.

    task bench-chain -- --model-dir DIR                      # 100k generated lines, 2 threads
    task bench-chain -- --model-dir DIR --sizes 100000 1000000 --stages cefilter
    task bench-chain -- --model-dir DIR --baseline-repo /tmp/old-checkout   # the same steps of another checkout
    task bench-chain -- --model-dir DIR --sizes 100000 1000000 10000000 --stages align,shortlist \
        --prior-sample-lines 100000 --align-chunk-lines 100000

DIR is a trained model folder (final.model.npz, its decoder.yml, vocab.spm): the tests' tiny models, or a
run's `train-teacher-*/artifacts`. The corpus joins two random pairs of the demo corpus per line (as
`task bench-data` does). Cross-entropy filtering is measured on scores written beforehand (`--scores
generated`, the default: selection and writing only, no Marian) or scored by Marian with DIR standing in for
the backward model (`--scores marian`). CPU time and peak RSS come from wait4() (the step and its Marian).
"""

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import zstandard
from bench_data import generate, measure

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_scores(path: Path, lines: int) -> None:
    rng = random.Random(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb")) as out:  # noqa: SIM115
        for _ in range(lines):
            out.write(f"{rng.gauss(-2, 1):.6f}\n".encode())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--stages", default="translate,translate-nbest,cefilter")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part-lines", type=int, default=2000)
    parser.add_argument("--scores", choices=["generated", "marian"], default="generated")
    parser.add_argument(
        "--prior-sample-lines", type=int, default=10_000_000, help="align's sample for priors"
    )
    parser.add_argument("--align-chunk-lines", type=int, default=1_000_000, help="align's chunk size")
    parser.add_argument(
        "--baseline-repo", type=Path, help="also run the steps of this checkout, for comparison"
    )
    parser.add_argument("--output", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    repos = [("current", REPO_ROOT)] + (
        [("baseline", args.baseline_repo.resolve())] if args.baseline_repo else []
    )
    stages = args.stages.split(",")
    model = args.model_dir.resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        root = Path(tmp)
        for size in args.sizes:
            corpus = generate(root / f"corpus{size}", size)
            for name, repo in repos:
                for stage in stages:
                    out = root / f"{name}-{stage}-{size}"
                    if stage.startswith("translate"):
                        module = "pipeline.translate.translate"
                        step_args = ["--input", corpus / "corpus.en.zst", "--chunk", 1, "--chunks", 1,
                                     "--model-dirs", model, "--part-lines", args.part_lines, "--output-dir", out]  # fmt: skip
                        if stage == "translate-nbest":
                            step_args += ["--references", corpus / "corpus.fr.zst"]
                    elif stage == "cefilter":
                        module = "pipeline.cefilter.cefilter"
                        if args.scores == "generated":
                            write_scores(out / "scores.zst", size)
                        step_args = ["--corpus-dir", corpus, "--model-dir", model, "--src", "en", "--trg", "fr",
                                     "--remove-fraction", "0.05", "--output-dir", out]  # fmt: skip
                    elif stage == "align":
                        module = "pipeline.alignments.align"
                        step_args = ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--output-dir", out,
                                     "--prior-sample-lines", args.prior_sample_lines,
                                     "--chunk-lines", args.align_chunk_lines]  # fmt: skip
                    elif stage == "shortlist":
                        alignments = root / f"{name}-align-{size}" / "corpus.aln.zst"
                        if not alignments.exists():
                            raise SystemExit("the shortlist stage needs the align stage before it")
                        module = "pipeline.alignments.shortlist"
                        step_args = ["--corpus-dir", corpus, "--alignments", alignments,
                                     "--vocab", model / "vocab.spm", "--src", "en", "--trg", "fr",
                                     "--output-dir", out]  # fmt: skip
                    else:
                        raise SystemExit(f"unknown stage {stage!r}")
                    result = measure(module, step_args, args.threads, repo)
                    result.update(code=name, stage=stage, lines=size, threads=args.threads)
                    result["lines_per_s"] = size / result["wall_s"]
                    rows.append(result)
                    print(
                        f"{name:>9} {stage:<16} {size:>10,} lines  {result['lines_per_s']:>9,.0f} lines/s  "
                        f"{result['cpu_s']:>8.1f} CPU-s  {result['peak_rss_mb']:>7.0f} MB peak",
                        flush=True,
                    )
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
