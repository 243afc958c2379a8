"""A plain-Marian baseline for a finished run's teacher: same architecture, same data, same wall time.

Marian trains directly on the run's merged parallel corpus (no OpusTrainer curriculum, no augmentation, no
back-translations), with the teacher preset and the config's `marian-args.training-teacher` less its caps
(`after`, `early-stopping`), validating on the run's devset, and is stopped through its own save-and-exit
(SIGTERM) after the wall time the run's teacher trained (its training.json), or --seconds. The best checkpoint
by chrF is evaluated on the run's test set(s) with the pipeline's evaluate step. Prints one JSON line per test
set; writes everything under --output-dir.

    task bench-baseline -- --config configs/tiny.en-de.yml --run-dir runs/tiny-en-de
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pipeline.common.io import read_lines
from pipeline.common.lr_cooldown import OPTIONS as COOLDOWN_OPTIONS
from pipeline.common.marian import marian_command, to_args
from pipeline.train.train import load_preset

REPO = Path(__file__).resolve().parents[1]


def write_plain(source: Path, destination: Path):
    with open(destination, "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in read_lines(source))


def only(pattern: str, run_dir: Path) -> Path:
    found = sorted(run_dir.glob(pattern))
    if len(found) != 1:
        sys.exit(f"error: expected one {pattern} in {run_dir}, found {len(found)}")
    return found[0]


def baseline_options(config: dict, out: Path, src: str, trg: str, threads: int) -> dict:
    """Marian's options: the teacher preset and the config's training-teacher arguments, less the pipeline's
    caps and its own cooldown (not Marian options), training on the plain files in `out`."""
    options = load_preset("teacher", config["experiment"].get("teacher-model", "base"))
    options.update((config.get("marian-args") or {}).get("training-teacher") or {})
    for option in ("after", "after-epochs", "early-stopping", "early-stopping-epsilon", *COOLDOWN_OPTIONS):
        options.pop(option, None)
    options.update(
        {
            "model": str(out / "model.npz"),
            "train-sets": [str(out / f"train.{src}"), str(out / f"train.{trg}")],
            "vocabs": [str(out / "vocab.spm")] * 2,
            "valid-sets": [str(out / f"dev.{src}"), str(out / f"dev.{trg}")],
            "valid-metrics": ["chrf", "ce-mean-words"],
            "early-stopping": 1000,
            "log": str(out / "train.log"),
            "valid-log": str(out / "valid.log"),
            "keep-best": True,
            "overwrite": True,
            "quiet-translation": True,
            "seed": 1,
            "cpu-threads": threads,
            "workspace": 4000,
        }
    )
    return options


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--run-dir", required=True, type=Path, help="the finished run (runs/<name>)")
    parser.add_argument("--seconds", type=float, help="default: the wall time of the run's first teacher")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output-dir", type=Path, help="default: <run-dir>/plain-marian-baseline")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    src, trg = config["experiment"]["src"], config["experiment"]["trg"]
    run, out = args.run_dir, args.output_dir or args.run_dir / "plain-marian-baseline"
    teacher = only(f"train-teacher-{src}-{trg}-1/artifacts", run)
    seconds = args.seconds or json.loads((teacher / "training.json").read_text())["wall_seconds"]
    corpus = only(f"corpus-merge-parallel-{src}-{trg}/artifacts", run)
    devset = only(f"corpus-merge-devset-{src}-{trg}/artifacts", run)
    vocab = only(f"build-vocab-{src}-{trg}/artifacts/vocab.spm", run)
    out.mkdir(parents=True, exist_ok=True)
    for folder, name in ((corpus, "train"), (devset, "dev")):
        for lang in (src, trg):
            write_plain(folder / f"corpus.{lang}.zst", out / f"{name}.{lang}")
    shutil.copyfile(vocab, out / "vocab.spm")

    options = baseline_options(config, out, src, trg, args.threads)
    print(f"plain Marian for {seconds:.0f} s on {args.threads} threads", file=sys.stderr)
    marian = subprocess.Popen([*marian_command("train"), *to_args(options)])
    timer = threading.Timer(seconds, marian.send_signal, args=(signal.SIGTERM,))
    start = time.monotonic()
    timer.start()
    code = marian.wait()
    trained = time.monotonic() - start
    timer.cancel()
    if code not in (0, 128 + signal.SIGTERM, -signal.SIGTERM):
        sys.exit(f"error: Marian failed ({code}); see {out / 'train.log'}")
    progress = yaml.safe_load((out / "model.npz.progress.yml").read_text())
    model = out / "model"
    model.mkdir(exist_ok=True)
    shutil.copyfile(out / "model.npz.best-chrf.npz", model / "final.model.npz")
    shutil.copyfile(out / "vocab.spm", model / "vocab.spm")
    decoder = {"relative-paths": True, "models": ["final.model.npz"], "vocabs": ["vocab.spm", "vocab.spm"]}
    decoder.update({k: options[k] for k in ("beam-size", "normalize") if k in options})
    (model / "final.model.npz.decoder.yml").write_text(yaml.safe_dump(decoder))
    env = {**os.environ, "THREADS": str(args.threads), "WORKSPACE": "2000"}
    for test in sorted(run.glob(f"dataset-*-{src}-{trg}/artifacts")):
        dataset = test.parent.name.removeprefix("dataset-").removesuffix(f"-{src}-{trg}")
        if not any(dataset in str(p) for p in run.glob(f"evaluate-teacher-{src}-{trg}-1-*")):
            continue  # not a test set of the run
        evaluation = out / f"evaluate-{dataset}"
        shutil.rmtree(evaluation, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pipeline.eval.evaluate", "--model-dir", str(model), "--model-name",
             "plain-marian", "--dataset-dir", str(test), "--dataset", dataset, "--src", src, "--trg", trg,
             "--output-dir", str(evaluation)],
            cwd=REPO, env=env, check=True,
        )  # fmt: skip
        metrics = json.loads((evaluation / "metrics.json").read_text())
        print(
            json.dumps(
                {
                    "dataset": dataset,
                    "updates": progress["batches"],
                    "seconds": round(trained),
                    "chrf": metrics["chrf"],
                    "bleu": metrics["bleu"],
                }
            )
        )


if __name__ == "__main__":
    main()
