"""Train the SentencePiece vocabulary shared by both languages, or one per language (--split true).

Reads `<corpus-dir>/corpus.<src|trg>.zst`, samples up to --sample-size lines (both sides together, fixed
seed), trains a unigram model with Marian's special ids (</s> = 0, <unk> = 1, no <s>) and writes
`<output-dir>/vocab.spm` and its readable piece list `vocab.vocab`. With --split true (the config's
`spm-vocab-split`), samples up to --sample-size pairs and trains one model per side, each of --vocab-size
pieces: `vocab.<src>.spm`, `vocab.<trg>.spm` and their `vocab.<lang>.vocab` lists. Uses THREADS threads.
"""

import argparse
import contextlib
import io
import logging
import random
import tempfile
from pathlib import Path

from pipeline.common.io import atomic_path, read_pairs
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.train.normalization import rule_table

TABLE_RULES = ("nfc",)

logger = logging.getLogger("vocab")

SEED = 1111


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--corpus-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--vocab-size", required=True, type=int)
    parser.add_argument("--sample-size", type=int, default=1_000_000, help="lines sampled from both sides")
    parser.add_argument(
        "--norm-rule",
        default="nmt_nfkc",
        help="SentencePiece's normalization rule (normalization_rule_name), or nfc (a rule table, "
        "pipeline.train.normalization)",
    )
    parser.add_argument(
        "--split",
        default="false",
        choices=["true", "false"],
        help="one vocabulary per language (spm-vocab-split)",
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def reservoir_sample(items, sample_size: int) -> list:
    """A fixed-seed uniform sample of at most `sample_size` items, in bounded memory."""
    rng = random.Random(SEED)
    reservoir: list = []
    for seen, item in enumerate(items, start=1):
        if len(reservoir) < sample_size:
            reservoir.append(item)
        else:
            index = rng.randrange(seen)
            if index < sample_size:
                reservoir[index] = item
    return reservoir


def sample_lines(corpus_dir: Path, src: str, trg: str, sample_size: int) -> list[str]:
    """Sampled lines of both sides together."""
    pairs = read_pairs(corpus_dir / f"corpus.{src}.zst", corpus_dir / f"corpus.{trg}.zst")
    return reservoir_sample((line for pair in pairs for line in pair), sample_size)


def sample_pairs(corpus_dir: Path, src: str, trg: str, sample_size: int) -> list[tuple[str, str]]:
    return reservoir_sample(
        read_pairs(corpus_dir / f"corpus.{src}.zst", corpus_dir / f"corpus.{trg}.zst"), sample_size
    )


def train_model(lines: list[str], vocab_size: int, norm_rule: str, thread_count: int) -> bytes:
    if norm_rule in TABLE_RULES:
        # The table's path is kept in the model: a fixed relative name in a temporary folder keeps the model
        # byte-identical from run to run.
        with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
            Path(f"{norm_rule}.tsv").write_text(rule_table(norm_rule), encoding="utf-8")
            return _train(lines, vocab_size, {"normalization_rule_tsv": f"{norm_rule}.tsv"}, thread_count)
    return _train(lines, vocab_size, {"normalization_rule_name": norm_rule}, thread_count)


def _train(lines: list[str], vocab_size: int, normalization: dict, thread_count: int) -> bytes:
    import sentencepiece

    # Lines in and the model out through Python objects: no temporary file names end up in the model, so the
    # same corpus always gives a byte-identical vocabulary.
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            **normalization,
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
    return model.getvalue()


def write_vocab(model: bytes, output_dir: Path, stem: str) -> None:
    """`<stem>.vocab` (the readable piece list), then `<stem>.spm`, the output that marks it done."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=model)
    with atomic_path(output_dir / f"{stem}.vocab") as tmp:
        tmp.write_text(
            "".join(
                f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
                for i in range(processor.get_piece_size())
            ),
            encoding="utf-8",
        )
    with atomic_path(output_dir / f"{stem}.spm") as tmp:
        tmp.write_bytes(model)


def main(args):
    split = args.split == "true"
    stems = [f"vocab.{args.src}", f"vocab.{args.trg}"] if split else ["vocab"]
    if already_done(args.output_dir, [f"{stem}.{ext}" for stem in stems for ext in ("spm", "vocab")]):
        return
    if args.vocab_size % 8:
        raise StepError(f"--vocab-size must be a multiple of 8, got {args.vocab_size}")
    thread_count = threads()
    if split:
        pairs = sample_pairs(args.corpus_dir, args.src, args.trg, args.sample_size)
        sides = {stems[0]: [src for src, _ in pairs], stems[1]: [trg for _, trg in pairs]}
    else:
        sides = {"vocab": sample_lines(args.corpus_dir, args.src, args.trg, args.sample_size)}
    if not any(sides.values()):
        raise StepError(f"the corpus in {args.corpus_dir} is empty")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for stem, lines in sides.items():
        if (args.output_dir / f"{stem}.spm").exists():
            continue  # a rerun after an interruption between the two
        write_vocab(train_model(lines, args.vocab_size, args.norm_rule, thread_count), args.output_dir, stem)
        logger.info("trained %s.spm: %d pieces on %d lines", stem, args.vocab_size, len(lines))


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
