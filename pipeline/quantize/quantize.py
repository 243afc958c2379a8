"""Quantize a trained model to 8-bit integers with the CPU Marian (`marian-conv --gemm-type intgemm8`).

Reads `<model-dir>/final.model.npz` with its `final.model.npz.decoder.yml` and the vocabularies it names, and the
binary lexical shortlist (`lex.<first>.<best>.s2t.bin` of pipeline.alignments.shortlist). Writes to
<output-dir> a model folder that decodes on its own: `final.model.intgemm8.bin` (Marian's binary format,
int8 matrices as upstream Marian tags them; pipeline.export retags them for Firefox),
`final.model.intgemm8.bin.decoder.yml` (the float model's decoding options plus the shortlist),
`vocab.spm` and the shortlist. Uses THREADS CPU threads and WORKSPACE MB.
"""

import argparse
import contextlib
import logging
import os
import shutil
from pathlib import Path

import yaml

from pipeline.common.io import atomic_path, remove_stale_temporaries
from pipeline.common.marian import run_marian
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.common.vocab import model_vocabs
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


def convert(model: Path, converted: Path) -> list:
    """marian-conv to intgemm8; returns the converted model's items once they are known to load."""
    converted.unlink(missing_ok=True)
    run_marian("convert", {"from": str(model), "to": str(converted), "gemm-type": "intgemm8"})
    items = read_items(converted.read_bytes(), str(converted))
    quantized = [item for item in items if item.type_id in (0x10001, 0x4101)]
    if not quantized:
        raise StepError(f"marian-conv left no int8 matrices in {converted}")
    # Marian converts any shape but then crashes loading it (intgemm's tiles): refuse such a model here.
    misfits = [i for i in quantized if len(i.shape) != 2 or i.shape[0] % 64 or i.shape[1] % 8]
    if misfits:
        shapes = ", ".join(f"{i.name} {'x'.join(map(str, i.shape))}" for i in misfits[:4])
        raise StepError(
            f"the model cannot run in int8: Marian's intgemm needs matrices of (multiple of 64) x (multiple "
            f"of 8), but {len(misfits)} are not ({shapes}); train the student with dim-emb and "
            "transformer-dim-ffn multiples of 64"
        )
    return items


def main(args):
    out = args.output_dir
    float_config_path = args.model_dir / "final.model.npz.decoder.yml"
    for path in (args.model_dir / "final.model.npz", float_config_path, args.shortlist):
        if not path.exists():
            raise StepError(f"input file {path} does not exist")
    vocabs = model_vocabs(args.model_dir)  # vocab.spm, or one per language
    vocab_files = [vocab.name for vocab in vocabs]
    if already_done(out, [MODEL, DECODER, *dict.fromkeys(vocab_files), args.shortlist.name]):
        return
    remove_stale_temporaries(out)
    threads()
    float_config = yaml.safe_load(float_config_path.read_text(encoding="utf-8")) or {}

    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    converted = work / MODEL  # marian-conv picks the format from the `.bin` ending
    try:
        items = convert(args.model_dir / "final.model.npz", converted)
    except StepError:
        shutil.rmtree(work)  # a model that cannot be quantized: leave nothing behind
        with contextlib.suppress(OSError):
            out.rmdir()
        raise
    logger.info("%d of %d matrices quantized to int8", sum(i.type_id == 0x10001 for i in items), len(items))

    for vocab in dict.fromkeys(vocabs):
        copy(vocab, out / vocab.name)
    copy(args.shortlist, out / args.shortlist.name)
    decoder = {
        "relative-paths": True,
        "models": [MODEL],
        "vocabs": vocab_files,
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
