"""Benchmark of the teacher's distillation decoding: Marian against CTranslate2 (`experiment.teacher-decoder`), the
translate step itself (pipeline/translate/translate.py) on the same lines, model, threads and beam, both decoding
the n-best list and keeping the hypothesis closest to the reference by chrF, as distillation does.

    task bench-teacher-decoders -- --model-dir runs/tiny-en-de/train-teacher-en-de-1/artifacts \
        --chunk-dir runs/tiny-en-de/distillation-parallel-src-chunk-en-de/artifacts --src en --trg de --lines 2000

Reports, per decoder: wall seconds (CTranslate2's one-off model conversion timed apart), source words/s, and the
chrF of the kept translations against the references; and how many kept lines are identical between the two.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.common.io import read_lines, write_lines

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_translate(
    decoder: str, model_dir: Path, source: Path, references: Path, out: Path, threads: int
) -> float:
    env = {**os.environ, "THREADS": str(threads), "WORKSPACE": "2000"}
    env.pop("GPUS", None)
    command = [
        sys.executable, "-m", "pipeline.translate.translate", "--input", str(source), "--references", str(references),
        "--chunk", "1", "--chunks", "1", "--model-dirs", str(model_dir), "--decoder", decoder,
        "--output-dir", str(out),
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--chunk-dir", required=True, type=Path, help="a distillation chunk's folder")
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--chunk", type=int, default=1)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    from sacrebleu.metrics import CHRF

    from pipeline.translate.ctranslate2_decoder import convert

    work = Path(tempfile.mkdtemp(prefix="bench-decoders-"))
    sources = list(read_lines(args.chunk_dir / f"chunk.{args.chunk}.corpus.{args.src}.zst"))[: args.lines]
    references = list(read_lines(args.chunk_dir / f"chunk.{args.chunk}.corpus.{args.trg}.zst"))[: args.lines]
    source, reference = work / f"corpus.{args.src}.zst", work / f"corpus.{args.trg}.zst"
    for path, lines in ((source, sources), (reference, references)):
        with write_lines(path) as out:
            for line in lines:
                out.write(line)
    words = sum(len(line.split()) for line in sources)

    started = time.monotonic()
    convert(args.model_dir, work / "convert-once")
    conversion = time.monotonic() - started

    results = {"lines": len(sources), "source_words": words, "threads": args.threads, "decoders": {}}
    kept = {}
    for decoder in ("marian", "ctranslate2"):
        out = work / decoder
        seconds = run_translate(decoder, args.model_dir, source, reference, out, args.threads)
        kept[decoder] = list(read_lines(out / "translation.zst"))
        chrf = CHRF().corpus_score(kept[decoder], [references]).score
        results["decoders"][decoder] = {
            "seconds": round(seconds, 1),
            "words_per_second": round(words / seconds, 1),
            "chrf_of_kept": round(chrf, 2),
        }
    results["decoders"]["ctranslate2"]["conversion_seconds"] = round(conversion, 1)
    results["identical_kept_lines"] = sum(
        a == b for a, b in zip(kept["marian"], kept["ctranslate2"], strict=True)
    )
    print(json.dumps(results, indent=2))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
