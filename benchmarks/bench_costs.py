"""Measure the CPU rates of the preflight cost model (taskcluster/translations_taskgraph/cost_model.py) that
Marian and SentencePiece set, with pymarian on this machine, on the demo corpus (data/l10n-en-fr):

- SentencePiece vocabulary training (pipeline/train/spm_vocab.py): sampled lines per CPU-second;
- Marian training of the tiny teacher preset for --updates updates: target words per CPU-second (Marian's log);
- scoring --lines test pairs with that model (the cross-entropy filter's work): target words per CPU-second.

    task bench-costs [-- --threads 1 --updates 60 --lines 1000 --output FILE]

Decoding is not measured here: a model trained for a few updates ends every output at once (0 words). The
decoding rates come from trained models (pipeline/common/marian.py's CPU batch measurement). Prints a JSON
object, also written to --output.
"""

import argparse
import gzip
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
import zstandard

from pipeline.common.marian import marian_command, to_args

REPO = Path(__file__).resolve().parents[1]

CORPUS = REPO / "data" / "l10n-en-fr"


def read_gz(path: Path) -> bytes:
    with gzip.open(path, "rb") as file:
        return file.read()


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command run to its end."""
    cpu, start = cpu_seconds_of_children(), time.monotonic()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start, cpu_seconds_of_children() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "bench-costs.json")
    args = parser.parse_args(argv)
    result = {"threads": args.threads, "host_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        corpus.mkdir()
        for lang in ("en", "fr"):
            text = read_gz(CORPUS / f"train.{lang}.gz")
            (corpus / f"corpus.{lang}.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
        pairs = text.count(b"\n")

        env = {**os.environ, "THREADS": str(args.threads)}
        wall, cpu = timed(
            [sys.executable, "-m", "pipeline.train.spm_vocab", "--corpus-dir", str(corpus), "--src", "en",
             "--trg", "fr", "--vocab-size", "8000", "--output-dir", str(work / "vocab")],
            env,
        )  # fmt: skip
        result["spm"] = {"lines": 2 * pairs, "wall_s": wall, "cpu_s": cpu, "lines_per_cpu_s": 2 * pairs / cpu}
        vocab = str(work / "vocab" / "vocab.spm")

        options = yaml.safe_load((REPO / "pipeline/train/configs/model/teacher.tiny.yml").read_text())
        options.update(
            {
                "model": str(work / "model.npz"),
                "train-sets": [str(CORPUS / "train.en.gz"), str(CORPUS / "train.fr.gz")],
                "vocabs": [vocab, vocab],
                "after": f"{args.updates}u",
                "disp-freq": 10,
                "valid-freq": 10 * args.updates,
                "save-freq": args.updates,
                "cpu-threads": args.threads,
                "workspace": 2000,
                "log": str(work / "train.log"),
                "seed": 1111,
                "quiet": True,
            }
        )
        options.pop("early-stopping", None)
        wall, cpu = timed([*marian_command("train"), *to_args(options)])
        log = (work / "train.log").read_text()
        speeds = [float(s.replace(",", "")) for s in re.findall(r"([\d,.]+) words/s", log)]
        steady = speeds[1:] or speeds  # the first display interval includes start-up
        words_per_s = sum(steady) / len(steady)
        result["train"] = {
            "preset": "teacher.tiny",
            "updates": args.updates,
            "wall_s": wall,
            "cpu_s": cpu,
            "words_per_s": words_per_s,
            "words_per_cpu_s": words_per_s / args.threads,
        }

        lines = {
            lang: read_gz(CORPUS / f"test.{lang}.gz").decode().splitlines()[: args.lines]
            for lang in ("en", "fr")
        }
        for lang, text in lines.items():
            (work / f"test.{lang}").write_text("\n".join(text) + "\n")
        common = ["-m", str(work / "model.npz"), "-v", vocab, vocab, "--cpu-threads", str(args.threads)]
        wall, cpu = timed(
            [*marian_command("score"), *common, "-t", str(work / "test.en"), str(work / "test.fr"),
             "--mini-batch", "32", "--quiet"]
        )  # fmt: skip
        words = sum(len(line.split()) for line in lines["fr"])
        result["score"] = {"lines": args.lines, "target_words": words, "wall_s": wall, "cpu_s": cpu,
                           "words_per_cpu_s": words / cpu}  # fmt: skip
    text = json.dumps(result, indent=1)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
