"""Train a translation model (teacher, backward or student) with Marian, fed by OpusTrainer.

Reads the training corpus `<train-dir>/corpus.<src|trg>.zst`, optionally the back-translations
`<backtranslations-dir>/corpus.<src|trg>.zst` (teacher curricula) and word alignments (`--alignments`, Pharaoh
`i-j` over the whitespace tokens, one line per pair), the validation set `<devset-dir>/corpus.<src|trg>.zst`
and the SentencePiece vocabulary. OpusTrainer mixes the datasets by the curriculum
`configs/opustrainer/<model-type>[.<teacher-mode>].yml`, applies its modifiers and streams TSV to Marian's
stdin; with alignments, the Tags modifier re-maps them onto SentencePiece pieces for guided alignment.
The architecture preset is `configs/model/<model-type>.<architecture>.yml` (plus `configs/finetune/` with
--pretrained-model; --init-model starts from a model's weights with its architecture), overridden by --marian-args
(JSON). Writes to <output-dir>: `final.model.npz` (the best
checkpoint by --best-metric), `final.model.npz.decoder.yml` (paths relative to itself), the vocabularies
(`vocab.spm`, or `vocab.<src>.spm` and `vocab.<trg>.spm`: --vocab is a file or build-vocab's folder),
`train.log`, `valid.log`, `config.opustrainer.yml` and `training.json` (updates, why the training stopped, lines
fed and skipped, seconds).

Training stops at the first of: early stopping on the devset (`early-stopping` validations without an
improvement over `early-stopping-epsilon`), or a cap in `after`, one or more of `Ne` (passes over the last
curriculum stage's corpus), `Nu` (updates), `Nt` (target labels) and `Ns`/`Nm`/`Nh` (seconds, minutes, hours
of training, counted over every resumed run), comma-separated: `after: 6e,40m`. A wall-time stop saves the
last weights without validating them: they are validated on the devset then (chrF, as Marian validates) and
kept when better than the best validated checkpoint (`final_validation` in training.json).

`lr-cooldown: F` (with a wall-time cap) anneals the training within its budget on any machine: after (1 - F) of
the wall time, Marian saves and stops, and resumes with its learning rate multiplied by `lr-decay` (0.5 unless
given) `lr-cooldown-decays` times (default 4), the first at once and the others evenly spaced over the updates
the remaining time holds at the speed measured so far (more decays if the training turns out faster). The
schedule is written to `lr-cooldown.json` before Marian resumes, so that a killed or retried run keeps it.

A killed run resumes exactly: Marian from `model.npz`, its optimizer state and its progress, and the data
stream at the batch that checkpoint had reached (the curriculum is replayed from its seed and Marian skips the
batches it had trained on: pipeline/train/curriculum_feed.py). On Taskcluster the checkpoints are also
published while training (pipeline/common/taskcluster_checkpoints.py), so that a retried run continues from
there even when the worker was preempted.
Uses THREADS CPU threads (or the GPUS listed) and WORKSPACE MB.
"""

import argparse
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import yaml

from pipeline.common.encoder_init import encoder_differences
from pipeline.common.io import atomic_path, read_lines, write_json
from pipeline.common.lr_cooldown import DEFAULT_DECAYS, cooldown_problems
from pipeline.common.marian import (
    device_options,
    marian_command,
    parse_marian_args,
    run_marian,
    to_args,
)
from pipeline.common.marian_log import training_curve
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.common.taskcluster_checkpoints import CheckpointPublisher
from pipeline.common.taskcluster_resume import fetch_previous_run
from pipeline.common.vocab import vocab_names, vocab_pair

logger = logging.getLogger("train")

CONFIGS = Path(__file__).parent / "configs"
PRESETS = CONFIGS / "model"
# What a retried Taskcluster run needs to continue: published while training, fetched on the next run.
CHECKPOINT_FILES = ["model.npz*", "training-clock.json", "lr-cooldown.json", "train.log", "valid.log"]
# Plus the vocabularies (pipeline.common.vocab: vocab.spm, or one per language).
OUTPUTS = [
    "final.model.npz",
    "final.model.npz.decoder.yml",
    "train.log",
    "valid.log",
    "training.json",
]
TIME_UNITS = {"s": 1, "m": 60, "h": 3600}
# A training stopped by SIGTERM after saving its checkpoint: EX_TEMPFAIL, which the engines retry.
EXIT_TERMINATED = 75
# Batch sizes are not among them: decoding batches by device (common.marian.decoding_batch_options).
DECODING_KEYS = ["beam-size", "normalize", "max-length-factor", "word-penalty"]
# Modifiers that only make sense for a source language whose script has letter case.
CASE_MODIFIERS = {"UpperCase", "TitleCase", "Typos"}
# OpusTrainer needs the Tags modifier last (it re-maps the alignments the others would invalidate).
MODIFIER_ORDER = ["UpperCase", "TitleCase", "RemoveEndPunct", "Typos", "Noise", "Tags"]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model-type", required=True, choices=["teacher", "backward", "student"])
    parser.add_argument("--architecture", required=True, help="preset name: tiny, base, big, base-memory")
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--train-dir", required=True, type=Path)
    parser.add_argument("--alignments", type=Path, help="word alignments of the training corpus (.aln.zst)")
    parser.add_argument("--backtranslations-dir", type=Path, help="back-translated corpus (teacher)")
    parser.add_argument(
        "--backtranslations-alignments", type=Path, help="word alignments of the back-translated corpus"
    )
    parser.add_argument("--teacher-mode", default="two-stage", choices=["one-stage", "two-stage"])
    parser.add_argument("--devset-dir", required=True, type=Path)
    parser.add_argument("--vocab", required=True, type=Path)
    parser.add_argument("--best-metric", default="chrf", choices=["chrf", "bleu-detok", "ce-mean-words"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pretrained-model", type=Path, help="fine-tune this model (a trained model's folder or .npz)"
    )
    parser.add_argument(
        "--init-model",
        type=Path,
        help="start from this model's weights (continuation mode init): its architecture, a fresh optimizer and "
        "schedule, this model type's training (a trained model's folder or .npz)",
    )
    parser.add_argument(
        "--student-init",
        default="random",
        choices=["random", "teacher-encoder"],
        help="a student's first weights: random, or the embeddings and encoder of the first of --teachers "
        "(its encoder must have the student's sizes and options)",
    )
    parser.add_argument(
        "--teachers", type=Path, nargs="+", default=[], help="trained teachers (folders or .npz)"
    )
    parser.add_argument("--marian-args", default="{}", help="JSON mapping of extra Marian options")
    parser.add_argument(
        "--max-skipped-fraction",
        type=float,
        default=0.0,
        help="fail when the curriculum's modifiers skip more than this fraction of the lines (default 0)",
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def load_yaml(path: Path, what: str) -> dict:
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yml"))
        raise StepError(f"no {what} {path.name}; known: {', '.join(known)}")
    return yaml.safe_load(path.read_text()) or {}


def load_preset(model_type: str, architecture: str) -> dict:
    return load_yaml(PRESETS / f"{model_type}.{architecture}.yml", "Marian preset")


def require_file(path: Path) -> Path:
    if not path.exists():
        raise StepError(f"input file {path} does not exist")
    return path


def tsv_stats_file(destination: Path) -> Path:
    return destination.with_name(destination.stem + ".stats.json")


def write_tsv(
    destination: Path, src: Path, trg: Path, alignments: Path | None = None, drop_empty: bool = False
) -> int:
    """Pastes a corpus (and its alignments) into one TSV for OpusTrainer; kept for resumes. Returns its pairs.

    With `drop_empty`, pairs with an empty side (a weak backward model translates some lines into nothing) are
    left out and counted in `<name>.stats.json`: OpusTrainer would skip them with one warning for the first,
    and the training would silently see less data than the corpus holds."""
    stats_file = tsv_stats_file(destination)
    if destination.exists():
        if stats_file.exists():
            return json.loads(stats_file.read_text(encoding="utf-8"))["pairs"]
        return sum(1 for _ in open(destination, "rb"))
    columns = [read_lines(require_file(src)), read_lines(require_file(trg))]
    names = [src, trg]
    if alignments:
        columns.append(read_lines(require_file(alignments)))
        names.append(alignments)
    count, dropped, first_dropped = 0, 0, []
    with atomic_path(destination) as tmp, open(tmp, "w", encoding="utf-8") as out:
        while True:
            row = [next(column, None) for column in columns]
            if all(field is None for field in row):
                break
            if any(field is None for field in row):
                raise StepError(
                    f"line counts differ after line {count + dropped}: {', '.join(map(str, names))}"
                )
            if drop_empty and not (row[0].strip() and row[1].strip()):
                dropped += 1
                if len(first_dropped) < 5:
                    first_dropped.append(f"line {count + dropped}: {row[0]!r} -> {row[1]!r}")
                continue
            count += 1
            if any("\t" in field for field in row):
                row = [field.replace("\t", " ") for field in row]
            out.write("\t".join(row) + "\n")
        if count == 0:
            raise StepError(
                f"the corpus {src} is empty" + (f" ({dropped} pairs with an empty side)" if dropped else "")
            )
        # Before the TSV is in place: a resume that finds the TSV finds its counts too.
        write_json(
            stats_file, {"pairs": count, "empty_pairs_dropped": dropped, "first_dropped": first_dropped}
        )
    if dropped:
        logger.warning(
            "%s: left out %d pairs with an empty side of %d (first: %s)", destination.stem, dropped,
            count + dropped, "; ".join(first_dropped),
        )  # fmt: skip
    return count


def has_letter_case(tsv: Path, lines: int = 1000) -> bool:
    """True if the source side's script distinguishes upper and lower case (Latin, Cyrillic, Greek, ...)."""
    with open(tsv, encoding="utf-8") as corpus:
        for _, line in zip(range(lines), corpus, strict=False):
            source = line.split("\t", 1)[0]
            if any(c.isalpha() and c.lower() != c.upper() for c in source):
                return True
    return False


def training_caps(options: dict) -> tuple[int | None, float | None]:
    """Takes the caps that Marian cannot apply out of `after` (and `after-epochs`): (epochs, seconds).

    `after` holds one or more comma-separated caps, the first reached ending the training: `Ne` epochs, `Nu`
    updates, `Nt` target labels, `Ns`/`Nm`/`Nh` of wall time. Marian reads the curriculum's stream from stdin,
    one endless epoch to it, so only the curriculum can count epochs: they become the last stage's `until
    original N`. Wall time is counted by the feeder, which stops Marian through its own save-and-exit. Updates
    and labels stay Marian's `after`.
    """
    epochs = options.pop("after-epochs", None)
    seconds = None
    after = options.pop("after", None)
    kept = []
    for cap in [] if after in (None, 0, "0") else str(after).split(","):
        cap = cap.strip()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([eutsmh])", cap)
        if not match or float(match[1]) <= 0:
            raise StepError(
                f"after: {after!r}: each cap is a positive number with a unit: e (epochs), u (updates), "
                "t (target labels), s, m or h (wall time), e.g. `after: 6e,40m`"
            )
        number, unit = match.groups()
        if unit == "e":
            if not number.isdigit():
                raise StepError(f"after: {after!r}: epochs are a whole number")
            epochs = int(number)
        elif unit in TIME_UNITS:
            seconds = float(number) * TIME_UNITS[unit]
        else:
            kept.append(cap)
    if len(kept) > 1:
        raise StepError(f"after: {after!r}: give at most one of updates (u) and labels (t)")
    if kept:
        options["after"] = kept[0]
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise StepError(f"after-epochs: {epochs!r} is not a positive number of epochs")
    return epochs, seconds


def take_cooldown(options: dict, wall_time: float | None) -> dict | None:
    """Takes `lr-cooldown` (a share of the wall-time cap) and `lr-cooldown-decays` out of the options:
    {"share", "decays", "factor"}, or None without a cooldown."""
    if problems := cooldown_problems(options, wall_time is not None):
        raise StepError("; ".join(f"{option}: {problem}" for option, problem in problems))
    share = options.pop("lr-cooldown", None)
    decays = options.pop("lr-cooldown-decays", None)
    if share is None:
        return None
    decays = DEFAULT_DECAYS if decays is None else decays
    return {"share": share, "decays": decays, "factor": float(options.get("lr-decay") or 0.5)}


def plan_cooldown(cooldown: dict, updates: int, seconds: float, wall_time: float) -> dict:
    """The cooldown's decays in updates, from the speed so far (`updates` in `seconds` of training): the first at
    the next update, then every `every` updates, so that the last `decays` fall within the time left."""
    expected = updates / seconds * max(0.0, wall_time - seconds) if seconds > 0 else 0.0
    every = max(1, math.floor(expected / cooldown["decays"]))
    return {
        "from_update": updates,
        "seconds": round(seconds, 1),
        "expected_updates": round(expected),
        "every": every,
        "marian": {
            "lr-decay-strategy": "batches",
            "lr-decay-start": [updates + 1],
            "lr-decay-freq": every,
            "lr-decay": cooldown["factor"],
        },
    }


def planned_updates(options: dict, epochs: int | None, pairs: int) -> int | None:
    """About how many updates the run will make, where the options say: `after: Nu`, or epochs of a corpus
    in fixed-size batches; None when Marian fits its batches to memory and no update limit is set."""
    after = options.get("after")
    if isinstance(after, str) and re.fullmatch(r"\d+u", after.strip()):
        return int(after.strip()[:-1])
    if epochs and not options.get("mini-batch-fit") and options.get("mini-batch"):
        return epochs * pairs // int(options["mini-batch"])
    return None


def check_smoothing(options: dict, updates: int | None) -> str | None:
    """Exponential smoothing with factor f averages the weights over ~1/f updates; a much shorter run saves
    and validates weights still close to their random start. Returns the warning, if any."""
    factor = options.get("exponential-smoothing")
    if factor is True:
        factor = 1e-4  # Marian's value for the bare flag
    if not factor or not updates or updates * float(factor) >= 1:
        return None
    return (
        f"exponential-smoothing {factor} averages over ~{round(1 / float(factor)):,} updates but this run "
        f"makes about {updates:,}: the saved model would stay close to its initialization; set "
        f"exponential-smoothing: 0 (or a factor of at least {1 / updates:.0e}) in this stage's marian-args"
    )


def build_curriculum(
    model_type: str,
    teacher_mode: str,
    datasets: dict[str, Path],
    aligned: bool,
    vocab: Path | tuple[Path, Path],
    seed: int,
    cased: bool,
    epochs: int | None = None,
) -> dict:
    """The OpusTrainer config: the curriculum template with its datasets, modifiers and seed filled in.

    With `epochs`, the last stage ends after that many passes over its dataset instead of running until
    Marian stops (early stopping or an update limit).
    """
    name = f"{model_type}.{teacher_mode}.yml" if model_type == "teacher" else f"{model_type}.yml"
    template = load_yaml(CONFIGS / "opustrainer" / name, "OpusTrainer curriculum")
    stages = []
    for stage in template["stages"]:
        mix = [
            entry for entry in template[stage] if entry.split()[0] in datasets or entry.startswith("until")
        ]
        until = mix[-1].split()[1]
        if until not in datasets:
            logger.info("curriculum stage %s dropped: no %s dataset", stage, until)
            continue
        stages.append((stage, mix))
    if epochs is not None:
        stage, mix = stages[-1]
        until_dataset = mix[-1].split()[1]
        stages[-1] = (stage, [*mix[:-1], f"until {until_dataset} {epochs}"])
    modifiers = []
    for entry in template.get("modifiers") or []:
        (kind,) = [key for key in entry if key in MODIFIER_ORDER]
        if kind in CASE_MODIFIERS and not cased:
            continue
        if kind == "Tags":
            if not aligned:
                continue
            if model_type == "student":
                # Re-map the word alignments onto SentencePiece pieces and keep them for guided alignment.
                src_vocab, trg_vocab = vocab if isinstance(vocab, tuple) else (vocab, vocab)
                entry = {**entry, "spm_vocab_src": str(src_vocab), "spm_vocab_trg": str(trg_vocab)}
        modifiers.append(entry)
    modifiers.sort(key=lambda entry: MODIFIER_ORDER.index(next(k for k in entry if k in MODIFIER_ORDER)))
    curriculum = {
        "datasets": {name: str(path) for name, path in datasets.items()},
        "stages": [stage for stage, _ in stages],
        **{stage: mix for stage, mix in stages},
        "seed": seed,
        "num_fields": 3 if aligned else 2,
    }
    if modifiers:
        curriculum["modifiers"] = modifiers
    return curriculum


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


def pretrained_checkpoint(path: Path) -> Path:
    path = path / "final.model.npz" if path.is_dir() else path
    return require_file(path)


def checkpoint_architecture(checkpoint: Path) -> dict:
    """The architecture options Marian saved inside a model (its `special:model.yml`)."""
    import numpy as np

    try:
        with np.load(checkpoint) as model:
            saved = yaml.safe_load(bytes(model["special:model.yml"]).decode("utf-8").rstrip(" \x00"))
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        raise StepError(f"{checkpoint} is not a Marian model with its options ({error!r})") from None
    return saved if isinstance(saved, dict) else {}


def fine_tuning_architecture(options: dict, explicit: dict, checkpoint: Path) -> dict:
    """The preset's architecture options replaced by the pretrained model's own, so that a student trained with
    other sizes than its preset's (`marian-args.training-student`) fine-tunes as the model it is. An explicit
    fine-tuning option that contradicts the model is refused."""
    saved = checkpoint_architecture(checkpoint)
    for key, value in explicit.items():
        if key in saved and saved[key] != value:
            raise StepError(
                f"--marian-args {key}: {value!r} contradicts the pretrained model {checkpoint} ({key}: {saved[key]!r})"
            )
    return {key: saved[key] for key in options if key in saved and saved[key] != options[key]}


def is_encoder_weight(name: str, tied_all: bool) -> bool:
    """The shared embeddings, every encoder weight, and with all embeddings tied the output bias that goes with
    them (the output layer is the embedding matrix)."""
    return name == "Wemb" or name.startswith("encoder_") or (tied_all and name == "decoder_ff_logit_out_b")


def check_encoder_init(teacher: Path, teacher_options: dict, options: dict) -> None:
    """A student can start from the teacher's encoder only if both encoders compute the same function: an option
    that differs is refused, naming it."""
    differ = encoder_differences(options, teacher_options)
    if differ:
        raise StepError(
            f"--student-init teacher-encoder: the student's encoder differs from the teacher's {teacher}: "
            + "; ".join(differ)
            + ". Give marian-args.training-student the teacher's values, or set experiment.student-init: random"
        )


def write_encoder_init(teacher: Path, teacher_options: dict, destination: Path) -> int:
    """Writes the teacher's embeddings and encoder to `destination`, an .npz that Marian's --pretrained-model
    loads: the student starts with the teacher's representation of the source and learns its own decoder
    (initialized as usual, since the file has no decoder weights). Returns the number of weights written."""
    import numpy as np

    tied_all = bool(teacher_options.get("tied-embeddings-all", False))
    with np.load(teacher) as model:
        weights = {name: model[name] for name in model.files if is_encoder_weight(name, tied_all)}
    if not any(name.startswith("encoder_") for name in weights):
        raise StepError(f"{teacher} holds no encoder weights (encoder_*): not a transformer teacher")
    with atomic_path(destination) as tmp, open(tmp, "wb") as file:
        np.savez(file, **weights)
    return len(weights)


def run_until_done_or_terminated(command: list[str]) -> subprocess.CompletedProcess:
    """Runs the feeder (and its Marian). A SIGTERM to this process alone (the whole process group gets one from
    Slurm at its time limit) is passed on to the feeder, which has Marian save its checkpoint; this process waits
    for them instead of dying first and leaving Marian killed mid-save."""
    # From the repository root, where `python -m pipeline...` finds the project also where it is not installed
    # (the Taskcluster images hold the locked environment only).
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2])

    def pass_on(*_):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return subprocess.CompletedProcess(command, process.returncode)


def run_training(
    out: Path, work: Path, opustrainer_config: Path, options: dict, args, wall_time, run_seconds
) -> tuple[subprocess.CompletedProcess, dict]:
    """Marian fed by the curriculum until it stops (the feeder's report is the second value)."""
    feed_report = work / "feed.json"
    feed_report.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "pipeline.train.curriculum_feed",
        "--config", str(opustrainer_config),
        "--report", str(feed_report),
        "--log-file", str(out / "opustrainer.log"),
        "--workers", "1",
        "--batch-size", str(128 * threads()),
        "--chunk-size", "128",
        "--temporary-directory", str(work),
        "--max-skipped-fraction", str(args.max_skipped_fraction),
        "--clock", str(out / "training-clock.json"),
        *(["--wall-time", str(wall_time)] if wall_time else []),
        # The engine's limit on this run (a Slurm job's runtime, less the time to save): stop, save, resume later.
        *(["--run-seconds", str(run_seconds)] if run_seconds else []),
        "--",
        *marian_command("train"),
        *to_args(options),
    ]  # fmt: skip
    logger.info("running: %s", " ".join(command))
    result = run_until_done_or_terminated(command)
    return result, json.loads(feed_report.read_text()) if feed_report.exists() else {}


def progress_updates(out: Path):
    progress = out / "model.npz.progress.yml"
    return (yaml.safe_load(progress.read_text()) or {}).get("batches", 0) if progress.exists() else 0


def best_validation(out: Path, metric: str) -> dict | None:
    """The best `metric` validation in train.log ({"epoch", "update", "value"}; the earliest of equal ones)."""
    points = training_curve(out / "train.log")["valid"].get(metric)
    return max(points, key=lambda p: (p["value"], -p["update"])) if points else None


def validate_last_weights(
    out: Path, options: dict, source: list[str], references: list[str], log: Path
) -> float:
    """After a wall-time stop: Marian saved the weights of its last update (model.npz) without validating them,
    and its best checkpoint is from its last validation, up to `valid-freq` updates earlier. Decodes the devset
    with the last weights as Marian validates (its beam, normalization, length factor) and scores them with
    sacrebleu's chrF (Marian's own validator computes the same statistic); returns the score."""
    from sacrebleu.metrics import CHRF

    decode = {
        "models": [str(out / "model.npz")],
        "vocabs": options["vocabs"],
        **{key: options[key] for key in DECODING_KEYS if key in options},
        "mini-batch": options.get("valid-mini-batch", 8),
        "maxi-batch": 100,
        "maxi-batch-sort": "src",
        "log": str(log),
        "quiet": True,
        "quiet-translation": True,
        **{key: options[key] for key in ("cpu-threads", "devices") if key in options},
    }
    text = "".join(line + "\n" for line in source)
    result = run_marian("decode", decode, log_path=log, input=text, stdout=subprocess.PIPE, text=True)
    hypotheses = result.stdout.splitlines()
    if len(hypotheses) != len(source):
        raise StepError(f"decoding the devset gave {len(hypotheses)} lines for {len(source)}")
    return CHRF().corpus_score(hypotheses, [references]).score


def validate_on_devset(out: Path, options: dict, args, log: Path) -> float:
    """validate_last_weights on the step's devset (--devset-dir)."""
    source = list(read_lines(args.devset_dir / f"corpus.{args.src}.zst"))
    references = list(read_lines(args.devset_dir / f"corpus.{args.trg}.zst"))
    return validate_last_weights(out, options, source, references, log)


# Marian's verdict on a validation, as it logs it: a new best, or stalled N times since the best.
VALIDATION_VERDICT = re.compile(
    r"\[valid\] Ep\. [\d.]+ : Up\. (\d+) : ([\w-]+) : ([0-9.eE+-]+|nan|-?inf) : "
    r"(?:(new best)|stalled (\d+) times \(last best: ([0-9.eE+-]+)\))"
)

LOWER_IS_BETTER = {"cross-entropy", "ce-mean", "ce-mean-words", "ce-sum", "perplexity"}


def logged_best(text: str, metric: str) -> float:
    """A best score as Marian logs it (6 significant digits), taken at the far end of its rounding (just inside,
    so that Marian logs it alike): a later score that Marian logs alike then counts as no improvement, as it did
    in the unkilled run."""
    value = float(text)
    half_digit = 0.499 * 10 ** (math.floor(math.log10(abs(value))) - 5) if value else 5e-7
    return value - half_digit if metric in LOWER_IS_BETTER else value + half_digit


def logged_validations(log: Path, update: int, before: bool = False) -> dict:
    """{metric: {"last-best", "stalled"}} after the validations logged at `update` (the last line of each wins),
    or with `before`, as they stood before it (each metric's last validation at an earlier update)."""
    states = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = VALIDATION_VERDICT.search(line)
            if match and (int(match[1]) < update if before else int(match[1]) == update):
                metric = match[2]
                best, stalled = (match[3], 0) if match[4] else (match[6], int(match[5]))
                if not math.isfinite(float(best)):
                    continue
                states[metric] = {"last-best": logged_best(best, metric), "stalled": stalled}
    return states


INTERRUPTED = "Training interrupted (via signal)"


def validation_update(line: str) -> int | None:
    """The update of a validation line as Marian logs it (VALIDATION_VERDICT), or None for another line."""
    match = VALIDATION_VERDICT.search(line)
    return int(match[1]) if match else None


def interrupted_validation(log: Path, update: int) -> bool:
    """Whether Marian's validation at `update` ran into a SIGTERM (a wall-time stop, the cooldown's restart, a
    Slurm time limit): the validation's data stops coming, and Marian logs the score of an empty translation
    (chrF 0, cross-entropy nan) as a stalled validation and saves it in the checkpoint. In train.log its lines are
    followed by the interruption, before any later update."""
    if not log.exists():
        return False
    validated = False
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if validation_update(line) == update:
            validated = True
        elif validated and INTERRUPTED in line:
            return True
        elif (later := re.search(r" : Up\. (\d+) : Sen\. ", line)) and int(later[1]) > update:
            validated = False
    return False


def drop_validation_lines(out: Path, update: int) -> None:
    """Removes the validation lines of `update` from train.log and valid.log."""
    for log in (out / "train.log", out / "valid.log"):
        if log.exists():
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if validation_update(line) != update]
            with atomic_path(log) as tmp:
                tmp.write_text("".join(kept), encoding="utf-8")


def restore_checkpoint_validation(out: Path, work: Path, options: dict, args) -> None:
    """Marian writes a checkpoint before it validates at the same update, so the checkpoint's progress file lacks
    that validation, and a run resumed from it would not count it: early stopping one validation late, the next
    score judged against an older best. This puts the validation into the progress file before Marian resumes:
    as the killed run logged it in valid.log, or, where the kill came before Marian logged it, by validating the
    checkpoint's weights (chrF, the first metric, as after a wall-time stop; logged as Marian logs it)."""
    progress_file = out / "model.npz.progress.yml"
    state = yaml.safe_load(progress_file.read_text()) or {}
    update, frequency = int(state.get("batches") or 0), str(options.get("valid-freq", "")).strip()
    if not update or not re.fullmatch(r"\d+u?", frequency) or update % int(frequency.rstrip("u")):
        return
    metrics, validators = options["valid-metrics"], state.setdefault("validators", {})
    if interrupted_validation(out / "train.log", update):
        # Back to the validators' state before that update; the first metric is validated again below.
        earlier = logged_validations(out / "valid.log", update, before=True)
        for metric in metrics:
            if metric in earlier:
                validators[metric] = earlier[metric]
            else:
                validators.pop(metric, None)
        drop_validation_lines(out, update)
        logger.warning(
            "the validation at update %d ran into the stop (SIGTERM) and scored an empty translation: its lines "
            "are dropped and its stall undone", update,
        )  # fmt: skip
    # The first metric decides early stopping: logged (by Marian, or by this function on an earlier resume), the
    # logged metrics are restored; else it is validated here.
    restored, first = logged_validations(out / "valid.log", update), metrics[0]
    if first not in restored and first != "chrf":
        logger.warning(
            "the checkpoint's validation at update %d was not logged: %s not restored", update, first
        )
    elif first not in restored:
        score = validate_on_devset(out, options, args, work / "checkpoint-validation.log")
        epsilon = options.get("early-stopping-epsilon", 0)
        epsilon = float(epsilon[0] if isinstance(epsilon, list) else epsilon)
        last = validators.get(first) or {"last-best": float("-inf"), "stalled": 0}
        # As Marian judges it: a better score is the new best, and an improvement of at most epsilon still stalls.
        best = max(score, float(last["last-best"]))
        stalled = 0 if score - float(last["last-best"]) > epsilon else int(last["stalled"]) + 1
        restored = {first: {"last-best": best, "stalled": stalled}}
        if score > float(last["last-best"]):
            with atomic_path(out / f"model.npz.best-{first}.npz") as tmp:
                shutil.copyfile(out / "model.npz", tmp)
        verdict = f"stalled {stalled} times (last best: {best:g})" if stalled else "new best"
        line = (
            f"[{datetime.now():%Y-%m-%d %H:%M:%S}] [valid] Ep. {state.get('epochs', 1)} : Up. {update} : {first} : "
            f"{score:.5f} : {verdict} (train.py, the checkpoint's validation)\n"
        )
        for log in (out / "valid.log", out / "train.log"):
            with open(log, "a", encoding="utf-8") as file:
                file.write(line)
    validators.update(restored)
    if state.get("validator") in validators:
        state["stalled"] = validators[state["validator"]]["stalled"]
        state["stalled-max"] = max(int(state.get("stalled-max") or 0), state["stalled"])
    with atomic_path(progress_file) as tmp:
        tmp.write_text(yaml.safe_dump(state, sort_keys=False))
    logger.info("the checkpoint's validation at update %d restored: %s", update, restored)


def final_validation(out: Path, work: Path, options: dict, args, summary: dict) -> Path | None:
    """The checkpoint to keep after a wall-time stop: the last weights when they validate better than the best
    validated checkpoint, which is then logged in train.log the way Marian logs a validation (so that the report's
    convergence verdict sees it). Returns the path, or None to keep Marian's best checkpoint."""
    metric, last_update = args.best_metric, summary["updates"]
    if interrupted_validation(out / "train.log", last_update):
        drop_validation_lines(out, last_update)  # the score of an empty translation: validated below
    best = best_validation(out, metric)
    if metric != "chrf" or best is None:
        return None
    if last_update <= best["update"]:
        # The stop came right after Marian validated the last weights, and they were its best.
        summary["final_validation"] = {
            "update": last_update,
            "best_validated": {"update": best["update"], metric: best["value"]},
            "kept": "best validated checkpoint",
            "validated_by": "marian",
        }
        return None
    score = validate_on_devset(out, options, args, work / "final-validation.log")
    better = score > best["value"]
    logger.info(
        "wall-time stop: the last weights (update %d) validate at %s %.4f, the best checkpoint (update %d) at %.4f%s",
        last_update, metric, score, best["update"], best["value"], ": keeping the last weights" if better else "",
    )  # fmt: skip
    with open(out / "train.log", "a", encoding="utf-8") as log:
        verdict = "new best" if better else f"not better than update {best['update']}"
        log.write(
            f"[{datetime.now():%Y-%m-%d %H:%M:%S}] [valid] Ep. {best['epoch']} : Up. {last_update} : {metric} : "
            f"{score:.5f} : {verdict} (train.py, after the wall-time stop)\n"
        )
    summary["final_validation"] = {
        "update": last_update,
        metric: round(score, 4),
        "best_validated": {"update": best["update"], metric: best["value"]},
        "kept": "last weights" if better else "best validated checkpoint",
    }
    return out / "model.npz" if better else None


def training_summary(out: Path, options: dict, epochs: int | None, feed: dict) -> dict:
    """Why and where the training stopped, from Marian's last progress file and the feeder's report."""
    progress = yaml.safe_load((out / "model.npz.progress.yml").read_text()) or {}
    patience = options.get("early-stopping")
    stalled = int(progress.get("stalled") or 0)
    ended_by = feed.get("ended_by")
    if ended_by == "wall-time":
        reason = "wall-time"
    elif patience and stalled >= int(patience):
        reason = "early-stopping"
    elif ended_by == "end-of-data":
        reason = "after-epochs" if epochs else "end-of-data"
    elif ended_by == "marian-stopped" and options.get("after"):
        reason = "after-" + {"u": "updates", "t": "labels"}[str(options["after"]).strip()[-1]]
    else:
        reason = "unknown"
    return {
        "updates": int(progress.get("batches") or 0),
        "epochs_cap": epochs,
        "stop_reason": reason,
        "stalled_validations": stalled,
        "early_stopping": patience,
        "lines_fed": feed.get("lines_fed"),
        "skipped_lines": feed.get("skipped_lines"),
        "first_skipped": feed.get("first_skipped"),
        "wall_seconds": feed.get("wall_seconds"),
        "samples_trained": progress.get("samples"),
        "labels_trained": progress.get("labels-total"),
    }


def main(args):
    out = args.output_dir
    if args.vocab.exists():
        vocab_files = vocab_names(vocab_pair(args.vocab, args.src, args.trg), args.src, args.trg)
        if already_done(out, [*OUTPUTS, *dict.fromkeys(vocab_files)]):
            return
    # A retried Taskcluster run (RUN_ID > 0) continues from the checkpoint an earlier run uploaded.
    fetch_previous_run(out, CHECKPOINT_FILES)
    if args.init_model and args.pretrained_model:
        raise StepError("give --pretrained-model (fine-tune) or --init-model (initialize), not both")
    options = load_preset(args.model_type, args.architecture)
    explicit = parse_marian_args(args.marian_args)
    if args.pretrained_model:
        options.update(load_yaml(CONFIGS / "finetune" / f"{args.model_type}.yml", "fine-tuning preset"))
        options.update(
            fine_tuning_architecture(options, explicit, pretrained_checkpoint(args.pretrained_model))
        )
    if args.init_model:
        options.update(fine_tuning_architecture(options, explicit, pretrained_checkpoint(args.init_model)))
    options.update(explicit)
    epochs, wall_time = training_caps(options)
    cooldown = take_cooldown(options, wall_time)
    devices = device_options()
    input_vocabs = vocab_pair(args.vocab, args.src, args.trg)
    vocab_files = vocab_names(input_vocabs, args.src, args.trg)
    if args.model_type == "student" and not args.alignments:
        raise StepError("a student trains with guided alignment: give its corpus's --alignments")
    if bool(args.alignments) and args.backtranslations_dir and not args.backtranslations_alignments:
        raise StepError("--alignments given for the corpus but not for the back-translations")
    if args.student_init != "random" and (
        args.model_type != "student" or args.pretrained_model or args.init_model
    ):
        raise StepError("--student-init teacher-encoder starts a student's training: not with another model type, "
                        "--pretrained-model or --init-model")  # fmt: skip
    if args.student_init == "teacher-encoder":
        if not args.teachers:
            raise StepError("--student-init teacher-encoder needs the trained teacher: give --teachers")
        teacher = pretrained_checkpoint(args.teachers[0])
        teacher_options = checkpoint_architecture(teacher)
        check_encoder_init(teacher, teacher_options, options)
    initial_weights = args.pretrained_model or args.init_model
    pretrained = pretrained_checkpoint(initial_weights) if initial_weights else None

    work = out / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    datasets = {}
    sources = {"original": (args.train_dir, args.alignments)}
    if args.backtranslations_dir:
        sources["backtranslated"] = (args.backtranslations_dir, args.backtranslations_alignments)
    for name, (folder, alignments) in sources.items():
        datasets[name] = work / f"{name}.tsv"
        src, trg = folder / f"corpus.{args.src}.zst", folder / f"corpus.{args.trg}.zst"
        lines = write_tsv(datasets[name], src, trg, alignments, drop_empty=True)
        logger.info("%s: %d pairs", name, lines)
        if name == "original" and (
            warning := check_smoothing(options, planned_updates(options, epochs, lines))
        ):
            logger.warning(warning)
    devset = work / "devset.tsv"
    write_tsv(devset, args.devset_dir / f"corpus.{args.src}.zst", args.devset_dir / f"corpus.{args.trg}.zst")
    vocabs = (out / vocab_files[0], out / vocab_files[1])
    for source, vocab in zip(input_vocabs, vocabs, strict=True):
        if not vocab.exists():
            with atomic_path(vocab) as tmp:
                shutil.copyfile(source, tmp)

    aligned = bool(args.alignments)
    if not aligned:
        options.pop("guided-alignment", None)
    curriculum = build_curriculum(
        args.model_type,
        args.teacher_mode,
        datasets,
        aligned,
        (vocabs[0].resolve(), vocabs[1].resolve()),
        args.seed,
        has_letter_case(datasets["original"]),
        epochs,
    )
    opustrainer_config = out / "config.opustrainer.yml"
    with atomic_path(opustrainer_config) as tmp:
        tmp.write_text(yaml.safe_dump(curriculum, sort_keys=False, allow_unicode=True))

    # With Tags re-mapping, OpusTrainer emits src, trg and piece alignments; otherwise src and trg.
    fields = 3 if args.model_type == "student" else 2
    best = args.best_metric
    options.update(
        {
            "model": str(out / "model.npz"),
            "train-sets": "stdin",
            "tsv": True,
            "tsv-fields": fields,
            "shuffle": "batches",
            "vocabs": [str(vocabs[0]), str(vocabs[1])],
            "valid-sets": str(devset),
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
    if pretrained:
        options["pretrained-model"] = str(pretrained)
    if args.student_init == "teacher-encoder":
        encoder = work / "encoder-init.npz"
        count = write_encoder_init(teacher, teacher_options, encoder)
        logger.info("the student starts from the embeddings and encoder of %s (%d weights)", teacher, count)
        # Marian reads it only for a fresh start; a resumed run restores its checkpoint.
        options["pretrained-model"] = str(encoder)
    if not checkpoint_is_readable(out):
        logger.warning("the checkpoint in %s is damaged (killed while saving?): training from scratch", out)
        for path in out.glob("model.npz*"):
            path.unlink()
    cooldown_file = out / "lr-cooldown.json"
    if (out / "model.npz.progress.yml").exists():
        logger.info("resuming the training from the checkpoint in %s", out)
        restore_checkpoint_validation(out, work, options, args)
    else:
        (out / "training-clock.json").unlink(missing_ok=True)
        cooldown_file.unlink(missing_ok=True)
    plan = json.loads(cooldown_file.read_text()) if cooldown and cooldown_file.exists() else None
    run_seconds = float(os.environ["TASK_RUN_SECONDS"]) if os.environ.get("TASK_RUN_SECONDS") else None
    with CheckpointPublisher(out, CHECKPOINT_FILES):
        while True:
            if plan:
                options.update(plan["marian"])
            cooldown_pending = cooldown is not None and plan is None
            stop_at = wall_time * (1 - cooldown["share"]) if cooldown_pending else wall_time
            result, feed = run_training(out, work, opustrainer_config, options, args, stop_at, run_seconds)
            if not (cooldown_pending and feed.get("ended_by") == "wall-time" and result.returncode == 0):
                break
            # The cooldown starts: Marian saved its checkpoint; it resumes from there with the decays planned.
            plan = plan_cooldown(cooldown, progress_updates(out), feed["wall_seconds"], wall_time)
            write_json(cooldown_file, plan)
            logger.info(
                "learning-rate cooldown from update %d (%.0f s of %.0f): times %s every %d updates, about %d "
                "updates left", plan["from_update"], plan["seconds"], wall_time, cooldown["factor"],
                plan["every"], plan["expected_updates"],
            )  # fmt: skip
            restore_checkpoint_validation(out, work, options, args)
            if run_seconds is not None:
                run_seconds = max(1.0, run_seconds - feed["run_seconds"])
    if feed.get("ended_by") == "terminated" or result.returncode == 128 + signal.SIGTERM:
        logger.warning(
            "stopped before its end (a SIGTERM, or this run's time limit) after %s updates, the checkpoint "
            "saved: run the task again to resume from it",
            progress_updates(out),
        )
        sys.exit(EXIT_TERMINATED)
    if feed.get("ended_by") == "too-many-skipped":
        quoted = "\n  ".join(feed["first_skipped"])
        raise StepError(
            f"the curriculum's modifiers could not handle {feed['skipped_lines']} of "
            f"{feed['lines_fed'] + feed['skipped_lines']} lines (more than --max-skipped-fraction "
            f"{args.max_skipped_fraction}); the first (error, then the line):\n  {quoted}"
        )
    if result.returncode != 0:
        raise StepError(
            f"training failed with exit status {result.returncode}; see {out / 'train.log'} "
            f"and {out / 'opustrainer.log'}"
        )
    summary = training_summary(out, options, epochs, feed)
    if plan:
        summary["lr_cooldown"] = {
            key: plan[key] for key in ("from_update", "seconds", "expected_updates", "every")
        }
    if args.student_init == "teacher-encoder":
        summary["initialized_from"] = {"embeddings and encoder": str(args.teachers[0])}
    summary["empty_pairs_dropped"] = {
        name: json.loads(tsv_stats_file(tsv).read_text(encoding="utf-8"))["empty_pairs_dropped"]
        for name, tsv in datasets.items()
        if tsv_stats_file(tsv).exists()
    }
    logger.info(
        "stopped by %s after %s updates (%s lines fed, %s skipped, %.0f s)",
        summary["stop_reason"], summary["updates"], summary["lines_fed"], summary["skipped_lines"],
        summary["wall_seconds"],
    )  # fmt: skip

    best_checkpoint = out / f"model.npz.best-{best}.npz"
    if (
        not best_checkpoint.exists()
        and summary["stop_reason"] == "wall-time"
        and (out / "model.npz").exists()
    ):
        # The wall-time cap came before the first validation: the weights at the stop are all there is.
        logger.warning(
            "stopped by its wall-time cap after %s updates, before its first validation (valid-freq %s): "
            "the last weights become the model; raise the cap or validate more often to choose by %s",
            summary["updates"], options.get("valid-freq"), best,
        )  # fmt: skip
        summary["model_chosen_by"] = "last weights (no validation before the wall-time cap)"
        best_checkpoint = out / "model.npz"
    if not best_checkpoint.exists():
        raise StepError(
            f"Marian finished without a best checkpoint {best_checkpoint.name}: did it validate at all?"
        )
    if summary["stop_reason"] == "wall-time" and best_checkpoint != out / "model.npz":
        best_checkpoint = final_validation(out, work, options, args, summary) or best_checkpoint
    decoder = {
        "relative-paths": True,
        "models": ["final.model.npz"],
        "vocabs": vocab_files,
        **{key: options[key] for key in DECODING_KEYS if key in options},
    }
    with atomic_path(out / "final.model.npz.decoder.yml") as tmp:
        tmp.write_text(yaml.safe_dump(decoder, sort_keys=False))
    with atomic_path(out / "final.model.npz") as tmp:
        shutil.copyfile(best_checkpoint, tmp)
    write_json(out / "training.json", summary)
    shutil.rmtree(work)
    logger.info("best checkpoint by %s copied to %s", best, out / "final.model.npz")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
