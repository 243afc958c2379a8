"""Train the SentencePiece vocabulary shared by both languages.

Reads `<corpus-dir>/corpus.<src|trg>.zst`, samples up to --sample-size lines (both sides together, fixed
seed), trains a unigram model with Marian's special ids (</s> = 0, <unk> = 1, no <s>) and writes
`<output-dir>/vocab.spm` and its readable piece list `vocab.vocab`. Uses THREADS threads.
"""

import argparse
import logging
import os
import random
import tempfile
from pathlib import Path

from pipeline.common.io import read_pairs
from pipeline.common.step import StepError, already_done, run_step, threads

logger = logging.getLogger("vocab")

SEED = 1111


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--corpus-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--vocab-size", required=True, type=int)
    parser.add_argument("--sample-size", type=int, default=1_000_000, help="lines sampled from both sides")
    parser.add_argument("--output-dir", required=True, type=Path)


def sample_lines(corpus_dir: Path, src: str, trg: str, sample_size: int) -> list[str]:
    """Reservoir sample over the lines of both sides, so memory stays bounded for large corpora."""
    rng = random.Random(SEED)
    reservoir: list[str] = []
    seen = 0
    for pair in read_pairs(corpus_dir / f"corpus.{src}.zst", corpus_dir / f"corpus.{trg}.zst"):
        for line in pair:
            seen += 1
            if len(reservoir) < sample_size:
                reservoir.append(line)
            else:
                index = rng.randrange(seen)
                if index < sample_size:
                    reservoir[index] = line
    return reservoir


def main(args):
    if already_done(args.output_dir, ["vocab.spm", "vocab.vocab"]):
        return
    if args.vocab_size % 8:
        raise StepError(f"--vocab-size must be a multiple of 8, got {args.vocab_size}")
    thread_count = threads()
    lines = sample_lines(args.corpus_dir, args.src, args.trg, args.sample_size)
    if not lines:
        raise StepError(f"the corpus in {args.corpus_dir} is empty")
    import sentencepiece

    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output_dir, prefix=".spm-") as tmp:
        sample = Path(tmp) / "sample.txt"
        sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
        prefix = Path(tmp) / "vocab"
        try:
            sentencepiece.SentencePieceTrainer.train(
                input=str(sample),
                model_prefix=str(prefix),
                vocab_size=args.vocab_size,
                model_type="unigram",
                character_coverage=1.0,
                bos_id=-1,
                eos_id=0,
                unk_id=1,
                num_threads=thread_count,
                input_sentence_size=len(lines),
                minloglevel=1,
            )
        except RuntimeError as error:
            raise StepError(f"SentencePiece failed: {error}") from None
        os.replace(f"{prefix}.vocab", args.output_dir / "vocab.vocab")
        os.replace(f"{prefix}.model", args.output_dir / "vocab.spm")
    logger.info("trained a %d-piece vocabulary on %d lines", args.vocab_size, len(lines))


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
