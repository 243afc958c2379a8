"""Translate a test set with a trained model and score it with sacrebleu (BLEU and chrF).

Reads `<model-dir>/final.model.npz.decoder.yml` (with the model and vocabulary beside it; several
--model-dir folders decode as an ensemble, with the first one's decoding options) and the test set
`<dataset-dir>/corpus.<src|trg>.zst`. Writes `<output-dir>/translation.<trg>.zst` and `metrics.json`:
BLEU and chrF of the model, and, as a floor any model must beat, of copying the source unchanged.
Uses THREADS CPU threads (or the GPUS listed) and WORKSPACE MB.
"""

import argparse
import logging
import tempfile
from pathlib import Path

from pipeline.common.io import atomic_path, read_lines, read_pairs, write_json, write_lines
from pipeline.common.marian import device_options, parse_marian_args, run_marian
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("evaluate")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model-dir", required=True, type=Path, nargs="+", help="several: an ensemble")
    parser.add_argument("--dataset-dir", required=True, type=Path)
    parser.add_argument("--dataset", required=True, help="the test set's name, recorded in metrics.json")
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--marian-args", default="{}", help="JSON mapping of extra Marian decoding options")
    parser.add_argument("--output-dir", required=True, type=Path)


def score(hypotheses: list[str], references: list[str]) -> dict:
    import sacrebleu

    bleu = sacrebleu.BLEU()
    chrf = sacrebleu.CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "signatures": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }


def main(args):
    outputs = [f"translation.{args.trg}.zst", "metrics.json"]
    if already_done(args.output_dir, outputs):
        return
    for model_dir in args.model_dir:
        if not (model_dir / "final.model.npz.decoder.yml").exists():
            raise StepError(f"no trained model in {model_dir} (missing final.model.npz.decoder.yml)")
    config = args.model_dir[0] / "final.model.npz.decoder.yml"
    extra = parse_marian_args(args.marian_args)
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
                "config": str(config.resolve()),
                **extra,
                "models": [str((d / "final.model.npz").resolve()) for d in args.model_dir],
                "input": str(source_file),
                "output": str(hypotheses_file),
                "log": str(args.output_dir / "decode.log"),
                "quiet-translation": True,
                **device_options(),
            }
            run_marian("decode", options, log_path=args.output_dir / "decode.log")
            hypotheses = list(read_lines(hypotheses_file))
    if len(hypotheses) != len(sources):
        raise StepError(f"Marian returned {len(hypotheses)} translations for {len(sources)} sentences")

    with write_lines(args.output_dir / outputs[0]) as out:
        for line in hypotheses:
            out.write(line)
    metrics = {
        "dataset": args.dataset,
        "model_dir": ", ".join(map(str, args.model_dir)),
        "sentences": len(sources),
        **score(hypotheses, references),
        "copy_source": {k: v for k, v in score(sources, references).items() if k != "signatures"},
    }
    write_json(args.output_dir / "metrics.json", metrics)
    logger.info("%s: BLEU %.2f chrF %.2f", args.dataset, metrics["bleu"], metrics["chrf"])


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
