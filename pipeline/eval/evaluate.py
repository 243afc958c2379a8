"""Translate a test set with a trained model (or an ensemble) and score it: BLEU, chrF, COMET, speed, size.

Each --model-dir holds a model with its decoding config: `final.model.npz.decoder.yml` (a trained model)
or `final.model.intgemm8.bin.decoder.yml` (an int8-quantized one, which decodes with its lexical
shortlist). Several --model-dir decode as an ensemble of equal weights with the first one's options.
Reads the test set `<dataset-dir>/corpus.<src|trg>.zst`. Writes `<output-dir>/translation.<trg>.zst` and
`metrics.json`: BLEU, chrF and chrF++ (sacrebleu), spBLEU when the FLORES-200 SentencePiece model is at hand
(--spbleu-model or SPBLEU_MODEL, else sacrebleu's cache; otherwise `spbleu` is null and `spbleu_skipped` says
why), COMET when a COMET model is given (--comet-model or COMET_MODEL, scored in COMET's own environment by
comet_scorer.py, nothing downloaded; without one `comet` is null and `comet_skipped` says why), model size in bytes, and, as a floor
any model must beat, the scores of copying the source unchanged; and `speed.json`: translation speed in
source words per second at the THREADS granted (wall clock and CPU time, model loading included), apart
because timings differ from run to run.
Uses THREADS CPU threads (or the GPUS listed) and WORKSPACE MB.
"""

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.common.io import atomic_path, read_lines, read_pairs, task_name, write_json, write_lines
from pipeline.common.marian import decoding_batch_options, device_options, parse_marian_args, run_marian
from pipeline.common.step import StepError, add_config_boolean, already_done, run_step
from pipeline.common.vocab import model_vocabs

logger = logging.getLogger("evaluate")

DECODER_CONFIGS = ["final.model.npz.decoder.yml", "final.model.intgemm8.bin.decoder.yml"]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument(
        "--model-dir", required=True, type=Path, nargs="+", help="model folder(s); several = an ensemble"
    )
    parser.add_argument(
        "--model-name",
        help="the model's role, recorded in metrics.json for the report: teacher-1, teacher-ensemble, "
        "student, student-finetuned, quantized, backward (default: the task that made the model)",
    )
    parser.add_argument("--dataset-dir", required=True, type=Path)
    parser.add_argument("--dataset", required=True, help="the test set's name, recorded in metrics.json")
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--marian-args", default="{}", help="JSON mapping of extra Marian decoding options")
    parser.add_argument(
        "--comet-model",
        type=Path,
        default=os.environ.get("COMET_MODEL") or None,
        help="a local COMET checkpoint (model.ckpt) to score with; default: $COMET_MODEL",
    )
    parser.add_argument(
        "--comet-encoder",
        type=Path,
        default=os.environ.get("COMET_ENCODER") or None,
        help="a local folder with the COMET encoder's config and tokenizer (e.g. xlm-roberta-large); default: "
        "$COMET_ENCODER, else the checkpoint's pretrained_model from the Hugging Face cache",
    )
    add_config_boolean(
        parser,
        "--comet-optional",
        help="a COMET model that cannot score here is skipped (comet_skipped says why) instead of failing the "
        "evaluation (the training config's experiment.comet-optional)",
    )
    parser.add_argument(
        "--spbleu-model",
        type=Path,
        default=os.environ.get("SPBLEU_MODEL") or None,
        help="the FLORES-200 SentencePiece model for spBLEU (sacrebleu's flores200 tokenizer); default: "
        "$SPBLEU_MODEL, else sacrebleu's cache",
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def score(hypotheses: list[str], references: list[str]) -> dict:
    """BLEU, chrF and chrF++ (chrF with word bigrams), with sacrebleu's signatures."""
    import sacrebleu

    metrics = {"bleu": sacrebleu.BLEU(), "chrf": sacrebleu.CHRF(), "chrfpp": sacrebleu.CHRF(word_order=2)}
    scores = {
        name: round(metric.corpus_score(hypotheses, [references]).score, 2)
        for name, metric in metrics.items()
    }
    return {**scores, "signatures": {name: str(metric.get_signature()) for name, metric in metrics.items()}}


def spbleu_problem(model: Path | None) -> str | None:
    """Why spBLEU cannot be computed here, or None. sacrebleu's `flores200` tokenizer downloads its SentencePiece
    model on first use, which cannot happen offline: the model must be in sacrebleu's cache or at --spbleu-model."""
    from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS
    from sacrebleu.utils import SACREBLEU_DIR

    cached = Path(SACREBLEU_DIR) / "models" / Path(SPM_MODELS["flores200"]["url"]).name
    if cached.is_file():
        return None
    if model is None:
        return f"no FLORES-200 SentencePiece model in sacrebleu's cache ({cached}); give one with --spbleu-model or SPBLEU_MODEL"
    if not model.is_file():
        return (
            f"spBLEU model {model} does not exist (the FLORES-200 SentencePiece model, flores200sacrebleuspm)"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another evaluation linked it first
        cached.symlink_to(model.resolve())  # where sacrebleu looks for it, instead of downloading
    return None


def spbleu_score(
    model: Path | None, hypotheses: list[str], references: list[str]
) -> tuple[float | None, str | None, str | None]:
    """(spBLEU, its signature, None), or (None, None, why it was skipped)."""
    if problem := spbleu_problem(model):
        return None, None, problem
    import sacrebleu

    bleu = sacrebleu.BLEU(tokenize="flores200")
    return round(bleu.corpus_score(hypotheses, [references]).score, 2), str(bleu.get_signature()), None


COMET_SCORER = Path(__file__).with_name("comet_scorer.py")
# unbabel-comet pins numpy < 2 against the lock's numpy 2: its own environment (TRANSLATIONS_EXTRAS=comet).
COMET_ENVIRONMENT = Path(__file__).resolve().parents[2] / ".venv-comet"
COMET_INSTALL = (
    "run `TRANSLATIONS_EXTRAS=comet scripts/setup.sh` (its own environment, .venv-comet/), "
    "or set COMET_PYTHON to a Python that has it"
)


def comet_python(environ=os.environ) -> str | None:
    """The Python that scores COMET: COMET_PYTHON, else .venv-comet's, else this one if it has unbabel-comet."""
    if python := environ.get("COMET_PYTHON"):
        return python
    if (COMET_ENVIRONMENT / "bin" / "python").exists():
        return str(COMET_ENVIRONMENT / "bin" / "python")
    if importlib.util.find_spec("comet") is not None:
        return sys.executable
    return None


def huggingface_cache(environ=os.environ) -> Path:
    if cache := environ.get("HF_HUB_CACHE"):
        return Path(cache)
    return Path(environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"


def comet_problem(checkpoint: Path, encoder: Path | None = None, environ=os.environ) -> str | None:
    """Why COMET cannot score with this checkpoint here, or None. Nothing is downloaded: the checkpoint, the
    `hparams.yaml` beside its `checkpoints/` folder, and its encoder's config and tokenizer (--comet-encoder, or
    the hparams' `pretrained_model` as a folder or in the Hugging Face cache) must all be on disk."""
    if not checkpoint.is_file():
        return f"COMET model {checkpoint} does not exist (a COMET checkpoint file, model.ckpt)"
    hparams_file = checkpoint.parent.parent / "hparams.yaml"
    if not hparams_file.is_file():
        return f"COMET model {checkpoint} has no {hparams_file} (a COMET model folder holds hparams.yaml and checkpoints/model.ckpt)"
    python = comet_python(environ)
    if python is None:
        return f"the unbabel-comet package is not installed: {COMET_INSTALL}"
    try:
        found = subprocess.run(
            [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('comet') is None)"],
            capture_output=True,
        )
    except OSError as error:
        return f"COMET's Python {python} does not run ({error.strerror}): {COMET_INSTALL}"
    if found.returncode != 0:
        return f"{python} has no unbabel-comet package: {COMET_INSTALL}"
    if encoder is not None:
        if not (encoder / "config.json").is_file():
            return f"COMET encoder {encoder} is not a folder with the encoder's config.json and tokenizer"
        return None
    pretrained = (yaml.safe_load(hparams_file.read_text(encoding="utf-8")) or {}).get("pretrained_model")
    if not pretrained or Path(pretrained).is_dir():
        return None
    cache = huggingface_cache(environ) / f"models--{pretrained.replace('/', '--')}"
    if not cache.is_dir():
        return (
            f"COMET's encoder {pretrained} (pretrained_model in {hparams_file}) is not in the Hugging Face cache "
            f"({cache.parent}): set COMET_ENCODER to a folder with its config and tokenizer"
        )
    return None


def comet_score(
    checkpoint: Path | None,
    encoder: Path | None,
    optional: bool,
    sources,
    hypotheses,
    references,
    work_dir: Path,
    log_path: Path,
) -> tuple[float | None, str | None]:
    """(score, None), or (None, why it was skipped). A given model that cannot score here is the step's error,
    unless COMET is optional. Scored in COMET's own environment (comet_scorer.py)."""
    if checkpoint is None:
        return None, "no COMET model given (--comet-model or COMET_MODEL)"
    if problem := comet_problem(checkpoint, encoder):
        if optional:
            return None, problem
        raise StepError(f"{problem} (experiment.comet-optional: true skips COMET instead)")
    segments = work_dir / "comet-input.jsonl"
    with segments.open("w", encoding="utf-8") as out:
        for src, mt, ref in zip(sources, hypotheses, references, strict=True):
            out.write(json.dumps({"src": src, "mt": mt, "ref": ref}, ensure_ascii=False) + "\n")
    result_file = work_dir / "comet.json"
    command = [comet_python(), str(COMET_SCORER), "--checkpoint", str(checkpoint), "--input", str(segments)]
    command += ["--output", str(result_file), "--gpus", "1" if os.environ.get("GPUS") else "0"]
    if encoder is not None:
        command += ["--encoder", str(encoder)]
    with log_path.open("w", encoding="utf-8") as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise StepError(f"COMET scoring failed (exit {returncode}, log {log_path}):\n{tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    if result["segments"] != len(hypotheses):
        raise StepError(f"COMET scored {result['segments']} segments of {len(hypotheses)}")
    return round(float(result["system_score"]), 4), None


def model_files(model_dir: Path) -> tuple[Path, list[Path]]:
    """The decoding config of a model folder and the model files it names."""
    configs = [model_dir / name for name in DECODER_CONFIGS if (model_dir / name).exists()]
    if len(configs) != 1:
        raise StepError(
            f"no trained model in {model_dir} (expected one of {', '.join(DECODER_CONFIGS)})"
            if not configs
            else f"{model_dir} holds several models: {', '.join(p.name for p in configs)}"
        )
    config = yaml.safe_load(configs[0].read_text(encoding="utf-8")) or {}
    models = [model_dir / name for name in config.get("models", [])]
    missing = [str(p) for p in models if not p.exists()]
    if not models or missing:
        raise StepError(f"{configs[0]} names model files that do not exist: {missing or 'none'}")
    return configs[0], models


def decoding_options(model_dirs: list[Path]) -> tuple[dict, list[Path]]:
    configs, models = [], []
    for model_dir in model_dirs:
        config, files = model_files(model_dir)
        configs.append(config)
        models += files
    options = {"config": str(configs[0].resolve())}
    if len(model_dirs) > 1:
        vocabs = {
            tuple(v.read_bytes() for v in model_vocabs(d, config.name))
            for d, config in zip(model_dirs, configs, strict=True)
        }
        if len(vocabs) != 1:
            raise StepError("the models of an ensemble must share their vocabularies")
        options["models"] = [str(p.resolve()) for p in models]
        options["weights"] = [1] * len(models)
    return options, models


def main(args):
    outputs = [f"translation.{args.trg}.zst", "metrics.json", "speed.json"]
    if already_done(args.output_dir, outputs):
        return
    options, models = decoding_options(args.model_dir)
    extra = parse_marian_args(args.marian_args)
    device = device_options()
    pairs = list(
        read_pairs(args.dataset_dir / f"corpus.{args.src}.zst", args.dataset_dir / f"corpus.{args.trg}.zst")
    )
    if not pairs:
        raise StepError(f"the test set in {args.dataset_dir} is empty")
    sources = [src for src, _ in pairs]
    references = [trg for _, trg in pairs]

    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output_dir, prefix=".decode-") as tmp:
        source_file = Path(tmp) / f"source.{args.src}"
        source_file.write_text("\n".join(sources) + "\n", encoding="utf-8")
        with atomic_path(Path(tmp) / f"hypotheses.{args.trg}") as hypotheses_file:
            options = {
                **options,
                **decoding_batch_options(extra),
                **extra,
                "input": str(source_file),
                "output": str(hypotheses_file),
                "log": str(args.output_dir / "decode.log"),
                "quiet-translation": True,
                **device,
            }
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            try:
                run_marian("decode", options, log_path=args.output_dir / "decode.log")
            except StepError as error:
                log_file = args.output_dir / "decode.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise StepError(f"{error}:\n{log}") from None
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            hypotheses = list(read_lines(hypotheses_file))
    if len(hypotheses) != len(sources):
        raise StepError(f"Marian returned {len(hypotheses)} translations for {len(sources)} sentences")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    words = sum(len(s.split()) for s in sources)
    with tempfile.TemporaryDirectory(dir=args.output_dir, prefix=".comet-") as tmp:
        comet, comet_skipped = comet_score(
            args.comet_model, args.comet_encoder, args.comet_optional == "true", sources, hypotheses, references, Path(tmp),
            args.output_dir / "comet.log",
        )  # fmt: skip
    if comet_skipped:
        logger.info("COMET skipped: %s", comet_skipped)
    spbleu, spbleu_signature, spbleu_skipped = spbleu_score(args.spbleu_model, hypotheses, references)
    if spbleu_skipped:
        logger.info("spBLEU skipped: %s", spbleu_skipped)
    scores = score(hypotheses, references)
    if spbleu_signature:
        scores["signatures"]["spbleu"] = spbleu_signature

    with write_lines(args.output_dir / outputs[0]) as out:
        for line in hypotheses:
            out.write(line)
    metrics = {
        "dataset": args.dataset,
        "model_dir": ", ".join(map(str, args.model_dir)),
        "model": args.model_name or " + ".join(task_name(d) for d in args.model_dir),
        "models": [p.name for p in models],
        "sentences": len(sources),
        **scores,
        "spbleu": spbleu,
        "spbleu_skipped": spbleu_skipped,
        "comet": comet,
        "comet_skipped": comet_skipped,
        "model_bytes": sum(p.stat().st_size for p in models),
        "copy_source": {k: v for k, v in score(sources, references).items() if k != "signatures"},
    }
    write_json(args.output_dir / "metrics.json", metrics)
    # Timings differ from run to run: apart, so that metrics.json is reproducible.
    speed = {
        "source_words": words,
        "threads": device.get("cpu-threads"),
        "gpus": device.get("devices"),
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "words_per_second": round(words / wall, 1) if wall > 0 else None,
        "words_per_cpu_second": round(words / cpu, 1) if cpu > 0 else None,
    }
    write_json(args.output_dir / "speed.json", speed)
    logger.info(
        "%s: BLEU %.2f chrF %.2f, %.0f words/s on %s threads",
        args.dataset,
        metrics["bleu"],
        metrics["chrf"],
        speed["words_per_second"] or 0,
        speed["threads"],
    )


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
