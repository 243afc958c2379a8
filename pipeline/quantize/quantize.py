"""Quantize a trained model to 8-bit integers with the CPU Marian (`marian-conv --gemm-type intgemm8`).

Reads `<model-dir>/final.model.npz` with its `final.model.npz.decoder.yml` and `vocab.spm`, and the
binary lexical shortlist (`lex.<first>.<best>.s2t.bin` of pipeline.alignments.shortlist). Writes to
<output-dir> a model folder that decodes on its own: `final.model.intgemm8.bin` (Marian's binary format,
int8 matrices as upstream Marian tags them; pipeline.export retags them for Firefox),
`final.model.intgemm8.bin.decoder.yml` (the float model's decoding options plus the shortlist),
`vocab.spm` and the shortlist. Uses THREADS CPU threads and WORKSPACE MB.
"""

import argparse
import logging
import os
import shutil
from pathlib import Path

import yaml

from pipeline.common.io import atomic_path, remove_stale_temporaries
from pipeline.common.marian import run_marian
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.export.marian_binary import read_items

logger = logging.getLogger("quantize")

MODEL = "final.model.intgemm8.bin"
DECODER = f"{MODEL}.decoder.yml"


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model-dir", required=True, type=Path, help="folder of the trained (float) model")
    parser.add_argument("--shortlist", required=True, type=Path, help="binary lexical shortlist")
    parser.add_argument("--output-dir", required=True, type=Path)


def copy(source: Path, destination: Path):
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)


def main(args):
    out = args.output_dir
    outputs = [MODEL, DECODER, "vocab.spm", args.shortlist.name]
    if already_done(out, outputs):
        return
    remove_stale_temporaries(out)
    threads()
    float_config_path = args.model_dir / "final.model.npz.decoder.yml"
    for path in (
        args.model_dir / "final.model.npz",
        float_config_path,
        args.model_dir / "vocab.spm",
        args.shortlist,
    ):
        if not path.exists():
            raise StepError(f"input file {path} does not exist")
    float_config = yaml.safe_load(float_config_path.read_text(encoding="utf-8")) or {}

    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    converted = work / MODEL  # marian-conv picks the format from the `.bin` ending
    converted.unlink(missing_ok=True)
    run_marian(
        "convert",
        {"from": str(args.model_dir / "final.model.npz"), "to": str(converted), "gemm-type": "intgemm8"},
    )
    items = read_items(converted.read_bytes(), str(converted))
    quantized = sum(1 for item in items if item.type_id in (0x10001, 0x4101))
    if quantized == 0:
        raise StepError(f"marian-conv left no int8 matrices in {converted}")
    logger.info("%d of %d matrices quantized to int8", quantized, len(items))

    copy(args.model_dir / "vocab.spm", out / "vocab.spm")
    copy(args.shortlist, out / args.shortlist.name)
    decoder = {
        "relative-paths": True,
        "models": [MODEL],
        "vocabs": ["vocab.spm", "vocab.spm"],
        "shortlist": [args.shortlist.name, False],
        **{
            k: v
            for k, v in float_config.items()
            if k not in ("relative-paths", "models", "vocabs", "shortlist")
        },
    }
    with atomic_path(out / DECODER) as tmp:
        tmp.write_text(yaml.safe_dump(decoder, sort_keys=False), encoding="utf-8")
    os.replace(converted, out / MODEL)
    shutil.rmtree(work)
    logger.info("quantized model: %s (%d bytes)", out / MODEL, (out / MODEL).stat().st_size)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
