"""Export a quantized student in the files Firefox's translation engine (bergamot-translator) loads.

Reads the folder of pipeline.quantize.quantize (`final.model.intgemm8.bin`, its decoder config, the vocabularies
it names, the binary shortlist) and the metrics.json of its evaluations. Writes to <output-dir>, with the names
Firefox's model registry uses, each file plain and gzipped (`.gz`, as the registry stores them):
`model.<src><trg>.intgemm8.bin` (int8 matrices retagged with the browsermt type ids, which Firefox loads
under `gemm-precision: int8shiftAll`), `lex.<first>.<best>.<src><trg>.s2t.bin`, `vocab.<src><trg>.spm` (or
`srcvocab.<src><trg>.spm` and `trgvocab.<src><trg>.spm`, one vocabulary per language);
and `metadata.json`: languages, architecture, precision, parameter counts, each file's size and sha256,
the metrics, the digest of the training config (--config-* sections) and the source commit.
"""

import argparse
import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from pipeline.common.io import atomic_path, read_json, remove_stale_temporaries, sha256_file, write_json
from pipeline.common.step import StepError, already_done, run_step
from pipeline.common.vocab import model_vocabs
from pipeline.export.marian_binary import (
    UPSTREAM_TO_BROWSERMT,
    embedded_config,
    parameter_statistics,
    read_items,
    retag_for_browsermt,
)

logger = logging.getLogger("export")

MODEL = "final.model.intgemm8.bin"
REPO_ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ["experiment", "datasets", "marian-args"]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model-dir", required=True, type=Path, help="folder of the quantized model")
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--architecture", required=True, help="the student preset, e.g. tiny, base")
    parser.add_argument("--metrics", nargs="*", type=Path, default=[], help="metrics.json of its evaluations")
    # The training config's sections as JSON (the engines pass them from the config); metadata.json
    # records their digest, so that a model can be traced to the settings that made it.
    for section in SECTIONS:
        parser.add_argument(f"--config-{section}", default="{}", help=f"JSON of the config's `{section}`")
    parser.add_argument("--output-dir", required=True, type=Path)


def source_commit() -> dict:
    """The commit of the pipeline that made the model: the checkout's, or VCS_HEAD_REV on a worker."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return {"commit": commit, "uncommitted_changes": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": os.environ.get("VCS_HEAD_REV", "unknown"), "uncommitted_changes": None}


def gzip_copy(source: Path, destination: Path):
    with (
        atomic_path(destination) as tmp,
        open(source, "rb") as f_in,
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename=source.name) as f_out,
    ):
        shutil.copyfileobj(f_in, f_out, 1 << 20)


def refuse_pre_norm(config: dict, model: Path):
    """bergamot-translator 0.4.9 loads a pre-norm transformer without error but translates it into unrelated
    text (measured: chrF 8 against pymarian's output of the same int8 model, 70 to 95 for post-norm ones)."""
    pre_norm = {
        key: config[key]
        for key in ("transformer-preprocess", "transformer-postprocess-top")
        if "n" in str(config.get(key) or "")
    }
    if pre_norm:
        options = ", ".join(f"{key}: {value}" for key, value in pre_norm.items())
        raise StepError(
            f"{model}: a pre-norm transformer ({options}), which Firefox's engine translates into garbage; "
            "train the student post-norm (transformer-depth-scaling: true makes its 6-layer encoder train "
            "with small batches)"
        )


def main(args):
    out = args.output_dir
    pair = f"{args.src}{args.trg}"
    decoder_path = args.model_dir / f"{MODEL}.decoder.yml"
    if not decoder_path.exists():
        raise StepError(f"no quantized model in {args.model_dir} (missing {decoder_path.name})")
    decoder = yaml.safe_load(decoder_path.read_text(encoding="utf-8")) or {}
    shortlist = decoder.get("shortlist") or []
    if not shortlist:
        raise StepError(f"{decoder_path} names no lexical shortlist")
    shortlist_name = Path(shortlist[0]).name  # lex.50.50.s2t.bin
    if not shortlist_name.endswith(".s2t.bin"):
        raise StepError(f"the shortlist {shortlist_name} is not a binary shortlist (*.s2t.bin)")
    src_vocab, trg_vocab = model_vocabs(args.model_dir, decoder_path.name)
    names = {
        "model": f"model.{pair}.intgemm8.bin",
        "lex": shortlist_name.removesuffix("s2t.bin") + f"{pair}.s2t.bin",
    }
    sources = {"model": args.model_dir / MODEL, "lex": args.model_dir / shortlist_name}
    if src_vocab == trg_vocab:
        names["vocab"], sources["vocab"] = f"vocab.{pair}.spm", src_vocab
    else:
        # One vocabulary per language: Firefox's model registry names them srcvocab and trgvocab.
        names["srcvocab"], sources["srcvocab"] = f"srcvocab.{pair}.spm", src_vocab
        names["trgvocab"], sources["trgvocab"] = f"trgvocab.{pair}.spm", trg_vocab
    outputs = [*names.values(), *(n + ".gz" for n in names.values()), "metadata.json"]
    if already_done(out, outputs):
        return
    remove_stale_temporaries(out)
    for path in sources.values():
        if not path.exists():
            raise StepError(f"input file {path} does not exist")
    training_config = {}
    for section in SECTIONS:
        text = getattr(args, f"config_{section.replace('-', '_')}")
        try:
            training_config[section] = json.loads(text)
        except json.JSONDecodeError as error:
            raise StepError(f"--config-{section} is not valid JSON: {error}") from None
    metrics = {}
    for path in args.metrics:
        data = read_json(path)
        if "dataset" not in data or "chrf" not in data:
            raise StepError(f"{path} is not the metrics.json of an evaluation")
        metrics[data["dataset"]] = {k: data.get(k) for k in ("bleu", "chrf", "comet", "sentences")}

    model_bytes = sources["model"].read_bytes()
    items = read_items(model_bytes, str(sources["model"]))
    if not any(item.type_id in UPSTREAM_TO_BROWSERMT for item in items):
        raise StepError(f"{sources['model']}: no intgemm matrices to retag: is it an int8-quantized model?")
    refuse_pre_norm(embedded_config(model_bytes, items, str(sources["model"])), sources["model"])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / names["model"]) as tmp:
        retagged = retag_for_browsermt(sources["model"], tmp)
    logger.info("retagged %d int8 matrices with the browsermt type ids", retagged)
    for key in [key for key in names if key != "model"]:
        with atomic_path(out / names[key]) as tmp:
            shutil.copyfile(sources[key], tmp)
    files = {}
    for name in names.values():
        gzip_copy(out / name, out / f"{name}.gz")
        files[name] = {
            "bytes": (out / name).stat().st_size,
            "sha256": sha256_file(out / name),
            "gzip": {"name": f"{name}.gz", "bytes": (out / f"{name}.gz").stat().st_size},
        }
        files[name]["gzip"]["sha256"] = sha256_file(out / f"{name}.gz")
    canonical = json.dumps(training_config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    metadata = {
        "sourceLanguage": args.src,
        "targetLanguage": args.trg,
        "architecture": args.architecture,
        "precision": "int8shiftAll",
        "files": files,
        # The reference's names for the model's size and hash.
        "byteSize": files[names["model"]]["bytes"],
        "hash": files[names["model"]]["sha256"],
        "modelStatistics": parameter_statistics(items),
        "decoder": {
            k: v for k, v in decoder.items() if k not in ("models", "vocabs", "shortlist", "relative-paths")
        },
        "metrics": metrics,
        # sha256 of the sections' canonical JSON (sorted keys, no spaces).
        "trainingConfigDigest": "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        "experiment": training_config["experiment"].get("name"),
        "source": source_commit(),
    }
    write_json(out / "metadata.json", metadata)
    logger.info("exported %s", ", ".join(outputs))


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
