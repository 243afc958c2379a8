"""Builds a tiny COMET model in COMET's own format, offline, for the tests of the real scoring path.

Run with COMET's environment: `.venv-comet/bin/python tests/comet_tiny_model.py --text FILE --output DIR`.
DIR gets `encoder/` (an XLM-RoBERTa config of 2 layers of width 32 and its tokenizer, a SentencePiece model
trained on --text: what COMET loads with `local_files_only`), `hparams.yaml` and `checkpoints/model.ckpt` (a
Lightning checkpoint of a randomly initialised RegressionMetric, the class of wmt22-comet-da). Its scores mean
nothing; the path that loads and runs it is the one a real checkpoint takes.
"""

import argparse
from pathlib import Path

import sentencepiece
import torch
import yaml
from comet.models import RegressionMetric
from transformers import XLMRobertaConfig, XLMRobertaTokenizer


def build(text: Path, output: Path) -> Path:
    encoder = output / "encoder"
    encoder.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(encoder / "sentencepiece.bpe"),
        vocab_size=120,
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    tokenizer = XLMRobertaTokenizer(vocab_file=str(encoder / "sentencepiece.bpe.model"))
    tokenizer.save_pretrained(encoder)
    XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=258,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ).save_pretrained(encoder)

    torch.manual_seed(1)
    model = RegressionMetric(
        pretrained_model=str(encoder),
        encoder_model="XLM-RoBERTa",
        load_pretrained_weights=False,
        local_files_only=True,
        layer="mix",
        pool="avg",
        hidden_sizes=[16],
        layer_transformation="softmax",
    )
    hparams = dict(model.hparams)
    (output / "hparams.yaml").write_text(
        yaml.safe_dump({"class_identifier": "regression_metric", **hparams}), encoding="utf-8"
    )
    checkpoint = output / "checkpoints" / "model.ckpt"
    checkpoint.parent.mkdir(exist_ok=True)
    import pytorch_lightning

    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": pytorch_lightning.__version__,
        },
        checkpoint,
    )
    return checkpoint


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", required=True, type=Path, help="sentences to train the tokenizer on")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args()
    print(build(args.text, args.output))
