"""Train a translation model with Marian.

Reads the training corpus `<train-dir>/corpus.<src|trg>.zst`, the validation set
`<devset-dir>/corpus.<src|trg>.zst` and the SentencePiece vocabulary; trains with the architecture preset
`configs/model/<model-type>.<architecture>.yml`, overridden by --marian-args (JSON); keeps the best
checkpoint by --best-metric. Writes to <output-dir>: `final.model.npz` (the best checkpoint),
`final.model.npz.decoder.yml` (paths relative to itself), `vocab.spm`, `train.log`, `valid.log`.

A killed run resumes: Marian restarts from `model.npz` and its optimizer state in <output-dir>.
Uses THREADS CPU threads (or the GPUS listed) and WORKSPACE MB.
"""

import argparse
import logging
import shutil
import zipfile
from pathlib import Path

import yaml

from pipeline.common.io import atomic_path, read_lines, write_lines
from pipeline.common.marian import device_options, parse_marian_args, run_marian
from pipeline.common.step import StepError, already_done, run_step
from pipeline.common.taskcluster_resume import fetch_previous_run

logger = logging.getLogger("train")

PRESETS = Path(__file__).parent / "configs" / "model"
OUTPUTS = ["final.model.npz", "final.model.npz.decoder.yml", "vocab.spm", "train.log", "valid.log"]
DECODING_KEYS = ["beam-size", "normalize", "max-length-factor", "word-penalty", "mini-batch", "maxi-batch"]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model-type", required=True, choices=["teacher", "backward", "student"])
    parser.add_argument("--architecture", required=True, help="preset name: tiny, base, big")
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--train-dir", required=True, type=Path)
    parser.add_argument("--devset-dir", required=True, type=Path)
    parser.add_argument("--vocab", required=True, type=Path)
    parser.add_argument("--best-metric", default="chrf", choices=["chrf", "bleu-detok", "ce-mean-words"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--marian-args", default="{}", help="JSON mapping of extra Marian options")
    parser.add_argument("--output-dir", required=True, type=Path)


def load_preset(model_type: str, architecture: str) -> dict:
    path = PRESETS / f"{model_type}.{architecture}.yml"
    if not path.exists():
        known = sorted(p.stem for p in PRESETS.glob("*.yml"))
        raise StepError(f"no Marian preset {path.name}; known: {', '.join(known)}")
    return yaml.safe_load(path.read_text())


def decompress(source: Path, destination: Path) -> int:
    """Marian reads plain or gzip text: unpack zstd corpora once (kept for resumes)."""
    if destination.exists():
        return sum(1 for _ in open(destination, "rb"))
    with write_lines(destination) as out:
        for line in read_lines(source):
            out.write(line)
    return out.count


def checkpoint_is_readable(out: Path) -> bool:
    """A `kill -9` while Marian saves can leave a truncated checkpoint that Marian would crash on."""
    for name in ("model.npz", "model.npz.optimizer.npz"):
        path = out / name
        if not path.exists():
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    return False
        except (zipfile.BadZipFile, OSError):
            return False
    return True


def validation_metrics(best: str) -> list[str]:
    # The first metric decides early stopping and the best checkpoint; chrF and cross-entropy are cheap.
    return [best] + [m for m in ("chrf", "ce-mean-words") if m != best]


def main(args):
    out = args.output_dir
    if already_done(out, OUTPUTS):
        return
    # A retried Taskcluster run (RUN_ID > 0) continues from the checkpoint an earlier run uploaded.
    fetch_previous_run(out, ["model.npz*", "train.log", "valid.log"])
    options = load_preset(args.model_type, args.architecture)
    options.update(parse_marian_args(args.marian_args))
    devices = device_options()
    if not args.vocab.exists():
        raise StepError(f"input file {args.vocab} does not exist")
    work = out / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    counts = {}
    for lang in (args.src, args.trg):
        counts[f"train.{lang}"] = decompress(args.train_dir / f"corpus.{lang}.zst", work / f"train.{lang}")
        counts[f"dev.{lang}"] = decompress(args.devset_dir / f"corpus.{lang}.zst", work / f"dev.{lang}")
    for split in ("train", "dev"):
        if counts[f"{split}.{args.src}"] != counts[f"{split}.{args.trg}"]:
            raise StepError(f"the {split} corpus is not aligned: {counts}")
        if counts[f"{split}.{args.src}"] == 0:
            raise StepError(f"the {split} corpus is empty")
    vocab = out / "vocab.spm"
    if not vocab.exists():
        with atomic_path(vocab) as tmp:
            shutil.copyfile(args.vocab, tmp)

    best = args.best_metric
    options.update(
        {
            "model": str(out / "model.npz"),
            "train-sets": [str(work / f"train.{args.src}"), str(work / f"train.{args.trg}")],
            "vocabs": [str(vocab), str(vocab)],
            "valid-sets": [str(work / f"dev.{args.src}"), str(work / f"dev.{args.trg}")],
            "valid-metrics": validation_metrics(best),
            "valid-translation-output": str(out / "devset.out"),
            "log": str(out / "train.log"),
            "valid-log": str(out / "valid.log"),
            "tempdir": str(work),
            "seed": args.seed,
            "keep-best": True,
            "overwrite": True,
            "quiet-translation": True,
            **devices,
        }
    )
    if not checkpoint_is_readable(out):
        logger.warning("the checkpoint in %s is damaged (killed while saving?): training from scratch", out)
        for path in out.glob("model.npz*"):
            path.unlink()
    if (out / "model.npz.progress.yml").exists():
        logger.info("resuming the training from the checkpoint in %s", out)
    run_marian("train", options, log_path=out / "train.log")

    best_checkpoint = out / f"model.npz.best-{best}.npz"
    if not best_checkpoint.exists():
        raise StepError(
            f"Marian finished without a best checkpoint {best_checkpoint.name}: did it validate at all?"
        )
    decoder = {
        "relative-paths": True,
        "models": ["final.model.npz"],
        "vocabs": ["vocab.spm", "vocab.spm"],
        **{key: options[key] for key in DECODING_KEYS if key in options},
    }
    with atomic_path(out / "final.model.npz.decoder.yml") as tmp:
        tmp.write_text(yaml.safe_dump(decoder, sort_keys=False))
    with atomic_path(out / "final.model.npz") as tmp:
        shutil.copyfile(best_checkpoint, tmp)
    shutil.rmtree(work)
    logger.info("best checkpoint by %s copied to %s", best, out / "final.model.npz")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
