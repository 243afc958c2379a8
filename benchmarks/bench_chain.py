"""Benchmark of the model-chain steps that stream: lines/s and peak RSS of the split into chunks, translation (one chunk, n-best
against references or plain), cross-entropy filtering, word alignment (eflomal priors from a sample, then
chunks with fixed priors) and the shortlist, at several corpus sizes, so that their memory growth can be
read off.

    task bench-chain -- --model-dir DIR                      # 100k generated lines, 2 threads
    task bench-chain -- --model-dir DIR --sizes 100000 1000000 --stages cefilter
    task bench-chain -- --model-dir DIR --baseline-repo /tmp/old-checkout   # the same steps of another checkout
    task bench-chain -- --model-dir DIR --sizes 100000 1000000 10000000 --stages split,translate \
        --translate-chunk-lines 10000                          # one 10k-line chunk of each corpus, as a task
    task bench-chain -- --sizes 100000 1000000 10000000 --stages align,shortlist \
        --prior-sample-lines 1000000 --align-chunk-lines 1000000   # priors from 1M pairs, then 1M-pair chunks
    task bench-chain -- --sizes 10000000 --stages align --work-dir KEPT   # the alignments stay in KEPT ...
    task bench-chain -- --sizes 10000000 --stages shortlist --work-dir KEPT   # ... for a later shortlist run

DIR is a trained model folder (final.model.npz, its decoder.yml, vocab.spm), such as a run's
`train-teacher-*/artifacts`; without --model-dir, a model of the test fixtures' size (dim 32, one layer each
side) is trained first for 200 updates on the demo corpus. The corpus joins two random pairs of the demo corpus per line (as
`task bench-data` does). Cross-entropy filtering is measured on scores written beforehand (`--scores
generated`, the default: selection and writing only, no Marian) or scored by Marian with DIR standing in for
the backward model (`--scores marian`). CPU time and peak RSS come from wait4() (the step and its Marian).
"""

import argparse
import contextlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
import zstandard
from bench_data import CORPUS, generate, measure, read_text

from pipeline.common.marian import marian_command, to_args

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_scores(path: Path, lines: int) -> None:
    rng = random.Random(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb")) as out:  # noqa: SIM115
        for _ in range(lines):
            out.write(f"{rng.gauss(-2, 1):.6f}\n".encode())


# The test fixtures' size (tests/test_model_chain.py MICRO): speed and memory of the steps around Marian,
# not of a real model.
TINY_MODEL = {
    "type": "transformer",
    "dim-emb": 32,
    "transformer-dim-ffn": 64,
    "enc-depth": 1,
    "dec-depth": 1,
    "transformer-heads": 2,
    "tied-embeddings-all": True,
    "dim-vocabs": [2000, 2000],
    "mini-batch": 16,
    "after": "200u",
    "disp-freq": 100,
    "seed": 1,
}


def train_tiny_model(folder: Path, threads: int) -> Path:
    """A fixture-size en-fr model trained for 200 updates on the demo corpus: final.model.npz, its
    decoder.yml and vocab.spm, as translate.py reads them; one trained before in a kept --work-dir is reused."""
    if (folder / "final.model.npz.decoder.yml").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "fr"):
        lines = read_text(CORPUS / f"train.{lang}.gz").splitlines()[:20000]
        (folder / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = {
        **TINY_MODEL,
        "model": str(folder / "final.model.npz"),
        "train-sets": [str(folder / "train.en"), str(folder / "train.fr")],
        "vocabs": [str(folder / "vocab.spm")] * 2,
        "cpu-threads": threads,
        "log": str(folder / "train.log"),
        "quiet": True,
    }
    subprocess.run([*marian_command("train"), *to_args(options)], check=True)
    decoder = {"relative-paths": True, "models": ["final.model.npz"], "vocabs": ["vocab.spm", "vocab.spm"],
               "beam-size": 4, "normalize": 1.0}  # fmt: skip
    (folder / "final.model.npz.decoder.yml").write_text(yaml.safe_dump(decoder))
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, help="a trained model folder (default: a fixture-size model trained first)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--stages", default="translate,translate-nbest,cefilter")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part-lines", type=int, default=2000)
    parser.add_argument(
        "--translate-chunk-lines",
        type=int,
        help="the split stage cuts the corpus into chunks of this many lines and the translate stages "
        "translate the first, as a translate task does (default: the whole corpus is one chunk)",
    )
    parser.add_argument("--scores", choices=["generated", "marian"], default="generated")
    parser.add_argument(
        "--prior-sample-lines", type=int, default=10_000_000, help="align's sample for priors"
    )
    parser.add_argument("--align-chunk-lines", type=int, default=1_000_000, help="align's chunk size")
    parser.add_argument(
        "--baseline-repo", type=Path, help="also run the steps of this checkout, for comparison"
    )
    parser.add_argument("--output", type=Path, help="write the rows as JSON")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the corpora and every stage's outputs here (default: a temporary folder, deleted); "
        "a later run with the same folder can measure the shortlist on the alignments of an earlier one",
    )
    args = parser.parse_args(argv)
    repos = [("current", REPO_ROOT)] + (
        [("baseline", args.baseline_repo.resolve())] if args.baseline_repo else []
    )
    stages = args.stages.split(",")
    rows = []
    with contextlib.ExitStack() as stack:
        if args.work_dir:
            root = args.work_dir.resolve()
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-chain-")))
        model = (args.model_dir or train_tiny_model(root / "tiny-model", args.threads)).resolve()
        for size in args.sizes:
            corpus = root / f"corpus{size}"
            if not (corpus / "stats.json").exists():  # written last: a kept folder's corpus is whole
                generate(corpus, size)
            for name, repo in repos:
                for stage in stages:
                    out = root / f"{name}-{stage}-{size}"
                    if out.exists():
                        shutil.rmtree(out)  # a kept folder's earlier outputs would make the step skip
                    lines = size
                    if stage == "split":
                        module = "pipeline.translate.split"
                        chunk_lines = args.translate_chunk_lines or size
                        step_args = ["--input", corpus / "corpus.en.zst", "--references", corpus / "corpus.fr.zst",
                                     "--chunks", -(-size // chunk_lines), "--output-dir", out]  # fmt: skip
                    elif stage.startswith("translate"):
                        module = "pipeline.translate.translate"
                        source, references = corpus / "corpus.en.zst", corpus / "corpus.fr.zst"
                        if args.translate_chunk_lines:
                            # As a translate task does: only its own chunk, from the split step.
                            split = root / f"{name}-split-{size}"
                            if not split.exists():
                                raise SystemExit(
                                    "--translate-chunk-lines needs the split stage before translate"
                                )
                            source = split / f"chunk.1.{source.name}"
                            references = split / f"chunk.1.{references.name}"
                            lines = min(size, args.translate_chunk_lines)
                        step_args = ["--input", source, "--chunk", 1, "--chunks", 1,
                                     "--model-dirs", model, "--part-lines", args.part_lines, "--output-dir", out]  # fmt: skip
                        if stage == "translate-nbest":
                            step_args += ["--references", references]
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
                    result.update(
                        code=name, stage=stage, corpus_lines=size, lines=lines, threads=args.threads
                    )
                    result["lines_per_s"] = lines / result["wall_s"]
                    rows.append(result)
                    print(
                        f"{name:>9} {stage:<16} {size:>10,} lines ({lines:,} processed) "
                        f"{result['lines_per_s']:>9,.0f} lines/s  "
                        f"{result['cpu_s']:>8.1f} CPU-s  {result['peak_rss_mb']:>7.0f} MB peak",
                        flush=True,
                    )
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
