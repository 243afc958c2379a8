"""Translate one chunk of a corpus with a model or an ensemble (back-translation and distillation).

Takes chunk K of N of `--input` (chunk k holds lines [(k-1)*ceil(L/N), k*ceil(L/N)) of the L lines), decodes
it with Marian using every model of --model-dirs (an ensemble when several; each folder holds
`final.model.npz` and `final.model.npz.decoder.yml`), and writes `<output-dir>/translation.zst` (one line per
input line of the chunk) and `chunk.json` (chunk number, count, input and output line counts).

With --references (the parallel corpus's target side), Marian returns the n-best list (as many
hypotheses as the beam size) and the hypothesis with the best sentence-level chrF against the reference is kept (sequence-level
distillation of the parallel corpus).

The chunk is decoded in parts of --part-lines lines, each written atomically under `<output-dir>/parts/`:
a killed task resumes from its first missing part, and the result is the same as an uninterrupted run.
Uses THREADS CPU threads (or the GPUS listed) and WORKSPACE MB.
"""

import argparse
import logging
import math
import shutil
from pathlib import Path

from pipeline.common.io import atomic_path, read_lines, write_json, write_lines
from pipeline.common.marian import decoding_batch_options, device_options, parse_marian_args, run_marian
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("translate")

OUTPUTS = ["translation.zst", "chunk.json"]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input", required=True, type=Path, help="the corpus to translate (one side)")
    parser.add_argument("--chunk", required=True, type=int, help="which chunk, from 1")
    parser.add_argument("--chunks", required=True, type=int, help="how many chunks the corpus is split into")
    parser.add_argument("--model-dirs", required=True, type=Path, nargs="+", help="one folder per model")
    parser.add_argument(
        "--references",
        type=Path,
        help="reference translations of --input: decode an n-best list and keep the best by chrF",
    )
    parser.add_argument("--part-lines", type=int, default=2000, help="lines decoded per resumable part")
    parser.add_argument("--marian-args", default="{}", help="JSON mapping of extra Marian decoding options")
    parser.add_argument("--output-dir", required=True, type=Path)


def chunk_bounds(total: int, chunk: int, chunks: int) -> tuple[int, int]:
    """[start, end) of chunk `chunk` (1-based) of `chunks` over `total` lines; the last chunks may be empty."""
    size = math.ceil(total / chunks) if total else 0
    start = min(total, (chunk - 1) * size)
    return start, min(total, start + size)


def read_chunk(path: Path, chunk: int, chunks: int) -> tuple[list[str], int]:
    lines = list(read_lines(path))
    start, end = chunk_bounds(len(lines), chunk, chunks)
    return lines[start:end], len(lines)


def parse_nbest(lines, count: int) -> list[list[str]]:
    """Marian's n-best lines `i ||| hypothesis ||| features ||| score` -> the hypotheses of each sentence."""
    hypotheses = [[] for _ in range(count)]
    for line in lines:
        fields = line.split(" ||| ")
        try:
            index = int(fields[0])
        except ValueError:
            raise StepError(f"not a Marian n-best line: {line[:200]!r}") from None
        if not 0 <= index < count or len(fields) < 2:
            raise StepError(f"n-best line for sentence {index} out of range 0..{count - 1}: {line[:200]!r}")
        hypotheses[index].append(fields[1])
    missing = [i for i, options in enumerate(hypotheses) if not options]
    if missing:
        raise StepError(f"Marian returned no hypothesis for {len(missing)} sentence(s), first {missing[0]}")
    return hypotheses


def best_by_chrf(hypotheses: list[str], reference: str) -> str:
    """The hypothesis with the highest sentence chrF against the reference (the model's order breaks ties)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    scores = [chrf.sentence_score(hypothesis, [reference]).score for hypothesis in hypotheses]
    return hypotheses[max(range(len(hypotheses)), key=lambda i: (scores[i], -i))]


def decode_part(sources: list[str], references, models, options, nbest, work: Path, name: str) -> list[str]:
    source_file = work / f"{name}.src"
    with atomic_path(source_file) as tmp:
        tmp.write_text("".join(line + "\n" for line in sources), encoding="utf-8")
    raw = work / f"{name}.marian"
    decode = {
        **options,
        "models": [str(m / "final.model.npz") for m in models],
        "input": str(source_file),
        "output": str(raw),
        "log": str(work / f"{name}.log"),
        "quiet-translation": True,
        **device_options(),
    }
    if nbest:
        decode["n-best"] = True
    run_marian("decode", decode, log_path=work / f"{name}.log")
    output = list(read_lines(raw))
    raw.unlink()
    source_file.unlink()
    if nbest:
        return [
            best_by_chrf(options_, reference)
            for options_, reference in zip(parse_nbest(output, len(sources)), references, strict=True)
        ]
    if len(output) != len(sources):
        raise StepError(f"Marian returned {len(output)} lines for {len(sources)} in part {name}")
    return output


def main(args):
    out = args.output_dir
    if already_done(out, OUTPUTS):
        return
    if args.chunks < 1 or not 1 <= args.chunk <= args.chunks:
        raise StepError(f"--chunk must be between 1 and --chunks ({args.chunks}), got {args.chunk}")
    if args.part_lines < 1:
        raise StepError("--part-lines must be at least 1")
    for folder in args.model_dirs:
        if not (folder / "final.model.npz").exists() or not (folder / "final.model.npz.decoder.yml").exists():
            raise StepError(f"no trained model in {folder} (final.model.npz and its decoder.yml)")
    extra = parse_marian_args(args.marian_args)
    sources, total = read_chunk(args.input, args.chunk, args.chunks)
    references = None
    if args.references:
        references, reference_total = read_chunk(args.references, args.chunk, args.chunks)
        if reference_total != total:
            raise StepError(f"{args.references} has {reference_total} lines, {args.input} has {total}")
    logger.info("chunk %d/%d: %d of %d lines", args.chunk, args.chunks, len(sources), total)

    # The first model's decoder config (beam size, normalization) applies to the ensemble.
    options = {
        "config": str((args.model_dirs[0] / "final.model.npz.decoder.yml").resolve()),
        **decoding_batch_options(extra),
        **extra,
    }
    work = out / "parts"
    work.mkdir(parents=True, exist_ok=True)
    translations = []
    for number, start in enumerate(range(0, len(sources), args.part_lines)):
        part = work / f"part.{number:05d}.zst"
        end = start + args.part_lines
        if not part.exists():
            lines = decode_part(
                sources[start:end],
                references[start:end] if references else None,
                [m.resolve() for m in args.model_dirs],
                options,
                references is not None,
                work,
                f"part.{number:05d}",
            )
            with write_lines(part) as writer:
                for line in lines:
                    writer.write(line)
        else:
            logger.info("part %d already translated", number)
        translations.extend(read_lines(part))
    if len(translations) != len(sources):
        raise StepError(f"{len(translations)} translations for {len(sources)} lines: a part is damaged")
    with write_lines(out / "translation.zst") as writer:
        for line in translations:
            writer.write(line)
    write_json(
        out / "chunk.json",
        {"chunk": args.chunk, "chunks": args.chunks, "input_lines": total, "lines": len(translations)},
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
