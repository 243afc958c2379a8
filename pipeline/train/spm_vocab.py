"""Train the SentencePiece vocabulary shared by both languages.

Reads `<corpus-dir>/corpus.<src|trg>.zst`, samples up to --sample-size lines (both sides together, fixed
seed), trains a unigram model with Marian's special ids (</s> = 0, <unk> = 1, no <s>) and writes
`<output-dir>/vocab.spm` and its readable piece list `vocab.vocab`. Uses THREADS threads.
"""

import argparse
import io
import logging
import random
from pathlib import Path

from pipeline.common.io import atomic_path, read_pairs
from pipeline.common.step import StepError, already_done, run_step, threads

logger = logging.getLogger("vocab")

SEED = 1111


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--corpus-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--vocab-size", required=True, type=int)
    parser.add_argument("--sample-size", type=int, default=1_000_000, help="lines sampled from both sides")
    parser.add_argument(
        "--norm-rule", default="nmt_nfkc", help="SentencePiece's normalization rule (normalization_rule_name)"
    )
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
    # Lines in and the model out through Python objects: no temporary file names end up in the model, so the
    # same corpus always gives a byte-identical vocabulary.
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=args.vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            normalization_rule_name=args.norm_rule,
            bos_id=-1,
            eos_id=0,
            unk_id=1,
            num_threads=thread_count,
            # The sample above is drawn with a fixed seed; SentencePiece's own sampling and shuffling would make
            # each run's vocabulary differ (0.1.99, which opustrainer pins, takes no seed).
            input_sentence_size=0,
            shuffle_input_sentence=False,
            minloglevel=1,
        )
    except RuntimeError as error:
        raise StepError(f"SentencePiece failed: {error}") from None
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    with atomic_path(args.output_dir / "vocab.vocab") as tmp:
        tmp.write_text(
            "".join(
                f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
                for i in range(processor.get_piece_size())
            ),
            encoding="utf-8",
        )
    with atomic_path(args.output_dir / "vocab.spm") as tmp:
        tmp.write_bytes(model.getvalue())
    logger.info("trained a %d-piece vocabulary on %d lines", args.vocab_size, len(lines))


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
