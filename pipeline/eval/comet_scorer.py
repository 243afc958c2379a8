"""Score translations with COMET, in COMET's own environment.

unbabel-comet pins numpy < 2 (and needs PyTorch) against the project lock's numpy 2, so it lives in an
environment of its own, `.venv-comet/` (`TRANSLATIONS_EXTRAS=comet scripts/setup.sh`). `pipeline/eval/evaluate.py`
runs this file by path with that environment's Python; it imports nothing from the project.

--input is JSON lines of {"src", "mt", "ref"}; --output gets {"system_score", "segments", "scores"} (written
to a temporary name, then renamed). Nothing is downloaded: the checkpoint is a local file, and its encoder
(the `pretrained_model` of its hparams, e.g. xlm-roberta-large, whose config and tokenizer COMET needs) is
read with `local_files_only` from --encoder, a local folder, or else from the Hugging Face cache.
"""

import argparse
import json
import os
import sys
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="a COMET checkpoint, .../checkpoints/model.ckpt"
    )
    parser.add_argument(
        "--encoder",
        type=Path,
        help="a local folder with the encoder's config and tokenizer (default: its hub name, from the cache)",
    )
    parser.add_argument("--input", required=True, type=Path, help="JSON lines of src, mt, ref")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpus", type=int, default=0, help="how many GPUs to score on (0: the CPU)")
    return parser.parse_args(argv)


def load_model(checkpoint: Path, encoder: Path | None):
    import torch
    import yaml
    from comet.models import str2model

    hparams_file = checkpoint.parents[1] / "hparams.yaml"
    if not hparams_file.is_file():
        raise SystemExit(
            f"comet_scorer: {hparams_file} does not exist (a COMET model folder has hparams.yaml beside checkpoints/)"
        )
    hparams = yaml.safe_load(hparams_file.read_text(encoding="utf-8"))
    model_class = str2model[hparams["class_identifier"]]
    overrides = {"pretrained_model": str(encoder)} if encoder else {}
    return model_class.load_from_checkpoint(
        checkpoint,
        load_pretrained_weights=False,
        map_location=torch.device("cpu"),
        strict=False,
        local_files_only=True,
        **overrides,
    )


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with args.input.open(encoding="utf-8") as lines:
        data = [json.loads(line) for line in lines if line.strip()]
    if not data:
        raise SystemExit(f"comet_scorer: {args.input} holds no segment")
    model = load_model(args.checkpoint, args.encoder)
    prediction = model.predict(data, batch_size=args.batch_size, gpus=args.gpus, progress_bar=False)
    result = {
        "system_score": float(prediction.system_score),
        "segments": len(data),
        "scores": [float(s) for s in prediction.scores],
    }
    partial = args.output.with_name(f".{args.output.name}.partial")
    partial.write_text(json.dumps(result) + "\n", encoding="utf-8")
    partial.replace(args.output)


if __name__ == "__main__":
    sys.exit(main())
