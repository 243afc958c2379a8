"""Translate one chunk of a corpus with a model or an ensemble (back-translation and distillation).

Takes chunk K of N of `--input` (chunk k holds lines [(k-1)*ceil(L/N), k*ceil(L/N)) of the L lines), decodes
it with Marian using every model of --model-dirs (an ensemble when several; each folder holds
`final.model.npz` and `final.model.npz.decoder.yml`), and writes `<output-dir>/translation.zst` (one line per
input line of the chunk) and `chunk.json` (chunk number, count, input and output line counts). With
--input-holds chunk, `--input` is that chunk already (the chunk kinds' split.py wrote it): a translate task
fetches its own lines only.

With --references (the parallel corpus's target side), Marian returns the n-best list (as many
hypotheses as the beam size) and the hypothesis with the best sentence-level chrF against the reference is kept (sequence-level
distillation of the parallel corpus).

The chunk streams through one Marian process (the models are loaded once): the input is read lazily, and
the translations are written in parts of --part-lines lines, each atomically under `<output-dir>/parts/` as soon as it is complete. Each part is one of Marian's
maxi-batches, so a killed task resumes at its first missing part and its result is byte for byte that of an
uninterrupted run. Memory does not grow with the corpus. Uses THREADS CPU threads (or the GPUS listed) and
WORKSPACE MB.
"""

import argparse
import contextlib
import itertools
import logging
import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from pipeline.common.io import count_lines, read_lines, write_json, write_lines
from pipeline.common.marian import (
    decoding_batch_options,
    device_options,
    marian_command,
    parse_marian_args,
    to_args,
)
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("translate")

OUTPUTS = ["translation.zst", "chunk.json"]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input", required=True, type=Path, help="the corpus to translate (one side)")
    parser.add_argument("--chunk", required=True, type=int, help="which chunk, from 1")
    parser.add_argument("--chunks", required=True, type=int, help="how many chunks the corpus is split into")
    parser.add_argument(
        "--input-holds",
        choices=["corpus", "chunk"],
        default="corpus",
        help="`chunk`: --input (and --references) hold only this chunk's lines, as split.py writes them",
    )
    parser.add_argument("--model-dirs", required=True, type=Path, nargs="+", help="one folder per model")
    parser.add_argument(
        "--references",
        type=Path,
        help="reference translations of --input: decode an n-best list and keep the best by chrF",
    )
    parser.add_argument("--part-lines", type=int, default=2000, help="lines decoded per resumable part")
    parser.add_argument("--marian-args", default="{}", help="JSON mapping of extra Marian decoding options")
    parser.add_argument(
        "--decoder",
        choices=["marian", "ctranslate2"],
        default="marian",
        help="ctranslate2: convert the model and decode with CTranslate2 (one model; an ensemble uses Marian)",
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def chunk_bounds(total: int, chunk: int, chunks: int) -> tuple[int, int]:
    """[start, end) of chunk `chunk` (1-based) of `chunks` over `total` lines; the last chunks may be empty."""
    size = math.ceil(total / chunks) if total else 0
    start = min(total, (chunk - 1) * size)
    return start, min(total, start + size)


def chunk_lines(path: Path, start: int, end: int) -> Iterator[str]:
    return itertools.islice(read_lines(path), start, end)


def nbest_hypotheses(lines) -> Iterator[list[str]]:
    """Marian's n-best lines `i ||| hypothesis ||| features ||| score`, which come sentence by sentence from 0,
    as the hypotheses of each sentence in turn (streaming: one sentence's list in memory)."""
    expected, hypotheses = 0, []
    for line in lines:
        fields = line.split(" ||| ")
        try:
            index = int(fields[0])
        except ValueError:
            raise StepError(f"not a Marian n-best line: {line[:200]!r}") from None
        if index == expected + 1 and hypotheses:
            yield hypotheses
            expected, hypotheses = index, []
        if index != expected or len(fields) < 2:
            raise StepError(f"n-best line for sentence {index} where {expected} was expected: {line[:200]!r}")
        hypotheses.append(fields[1])
    if hypotheses:
        yield hypotheses


def parse_nbest(lines, count: int) -> list[list[str]]:
    """The hypotheses of each of `count` sentences from Marian's n-best lines (nbest_hypotheses, all at once)."""
    hypotheses = []
    for options in nbest_hypotheses(lines):
        if len(hypotheses) == count:
            raise StepError(f"n-best lines for more than the {count} sentences, from sentence {count} on")
        hypotheses.append(options)
    if len(hypotheses) < count:
        missing = count - len(hypotheses)
        raise StepError(f"Marian returned no hypothesis for {missing} sentence(s), first {len(hypotheses)}")
    return hypotheses


def best_by_chrf(hypotheses: list[str], reference: str) -> str:
    """The hypothesis with the highest sentence chrF against the reference (the model's order breaks ties)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    scores = [chrf.sentence_score(hypothesis, [reference]).score for hypothesis in hypotheses]
    return hypotheses[max(range(len(hypotheses)), key=lambda i: (scores[i], -i))]


def part_batching(options: dict, part_lines: int) -> dict:
    """The batch options that make every part of `part_lines` lines one of Marian's maxi-batches. Marian sorts
    by length within a maxi-batch (maxi-batch x mini-batch sentences), and its output can depend on the batch a
    sentence is in; with parts aligned to maxi-batches, a run resumed at a part decodes exactly what an
    uninterrupted run decodes (measured: 4 of 300 lines differed when a resumed stream started mid maxi-batch,
    0 aligned). The mini-batch becomes the largest divisor of `part_lines` not above the one asked for."""
    if "mini-batch" not in options:
        # Batches by words (the GPU defaults): a maxi-batch is maxi-batch x 1 sentences (measured on CPU).
        return {"maxi-batch": part_lines}
    wanted = int(options["mini-batch"])
    mini_batch = max(size for size in range(1, min(wanted, part_lines) + 1) if part_lines % size == 0)
    return {"mini-batch": mini_batch, "maxi-batch": part_lines // mini_batch}


def start_decoder(models: list[Path], options: dict, nbest: bool, log: Path) -> subprocess.Popen:
    """One Marian decoder for the whole chunk (the models are loaded once), reading stdin, writing stdout."""
    decode = {
        **options,
        "models": [str(m / "final.model.npz") for m in models],
        "log": str(log),
        "quiet": True,
        "quiet-translation": True,
        **device_options(),
    }
    if nbest:
        decode["n-best"] = True
    command = marian_command("decode") + to_args(decode)
    logger.info("running: %s", " ".join(command))
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def feed(process: subprocess.Popen, lines: Iterator[str], failure: list) -> None:
    try:
        for line in lines:
            process.stdin.write(line.replace("\n", " ").encode("utf-8") + b"\n")
    except BrokenPipeError:
        pass  # Marian ended early: its exit status says why
    except BaseException as error:  # a bad input line: fail the step, not just this thread
        failure.append(error)
        process.kill()
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()


def best_translations(output, references: Iterator[str] | None) -> Iterator[str]:
    """Marian's output lines as one translation per input line: as they are, or, for an n-best list, the
    hypothesis of each sentence closest to its reference by chrF."""
    if references is None:
        yield from output
        return
    for hypotheses, reference in zip(nbest_hypotheses(output), references, strict=False):
        yield best_by_chrf(hypotheses, reference)


def write_parts(translations, work: Path, start: int, end: int, offset: int, part_lines: int, first: int):
    """Writes the translations of lines [offset, end) as parts of `part_lines`, each atomically as soon as it
    is complete; returns (lines still missing, lines received)."""
    number, total, received = first, end - offset, 0
    while total > 0:
        size = min(part_lines, total)
        lines = list(itertools.islice(translations, size))
        received += len(lines)
        if len(lines) < size:
            break  # the decoder ended early: its exit status and log say why
        with write_lines(work / f"part.{number:05d}.zst") as writer:
            for line in lines:
                writer.write(line)
        done = offset - start + received
        logger.info("part %d translated (%d lines): %d of %d lines done", number, size, done, end - start)
        number, total = number + 1, total - size
    return total, received


def translate_parts_ctranslate2(args, options, work, start, end, part_lines, first) -> None:
    from pipeline.translate.ctranslate2_decoder import translate_lines

    offset = start + first * part_lines
    sources = chunk_lines(args.input, offset, end)
    references = chunk_lines(args.references, offset, end) if args.references else None
    output = translate_lines(args.model_dirs[0], work, sources, references is not None, options)
    total, received = write_parts(
        best_translations(output, references), work, start, end, offset, part_lines, first
    )
    if total > 0:
        raise StepError(f"CTranslate2 returned {received} translations for {end - offset} lines")


def translate_parts(args, options, work: Path, start: int, end: int, part_lines: int, first: int) -> None:
    """Decodes lines [start + first * part_lines, end) of the input in one Marian process, writing each
    part of `part_lines` translations atomically as soon as it is complete."""
    if args.decoder == "ctranslate2":
        return translate_parts_ctranslate2(args, options, work, start, end, part_lines, first)
    offset = start + first * part_lines
    sources = chunk_lines(args.input, offset, end)
    references = chunk_lines(args.references, offset, end) if args.references else None
    log = work / "decode.log"
    process = start_decoder([m.resolve() for m in args.model_dirs], options, references is not None, log)
    failure: list = []
    feeder = threading.Thread(target=feed, args=(process, sources, failure), daemon=True)
    feeder.start()
    try:
        output = (raw.decode("utf-8").rstrip("\n") for raw in process.stdout)
        translations = best_translations(output, references)
        total, received = write_parts(translations, work, start, end, offset, part_lines, first)
    except BaseException:
        process.kill()
        raise
    finally:
        process.stdout.close()
        returncode = process.wait()
        feeder.join()
    if failure:
        raise failure[0]
    if returncode != 0:
        raise StepError(f"Marian decode failed with exit status {returncode}; see {log}")
    if total > 0:
        raise StepError(f"Marian returned {received} translations for {end - offset} lines; see {log}")


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
    if args.decoder == "ctranslate2" and len(args.model_dirs) > 1:
        logger.warning(
            "CTranslate2 decodes one model, not an ensemble of %d: decoding with Marian", len(args.model_dirs)
        )
        args.decoder = "marian"
    total = count_lines(args.input)
    if args.references:
        reference_total = count_lines(args.references)
        if reference_total != total:
            raise StepError(f"{args.references} has {reference_total} lines, {args.input} has {total}")
    start, end = (0, total) if args.input_holds == "chunk" else chunk_bounds(total, args.chunk, args.chunks)
    logger.info("chunk %d/%d: %d of %d lines", args.chunk, args.chunks, end - start, total)

    # The first model's decoder config (beam size, normalization) applies to the ensemble.
    options = {
        "config": str((args.model_dirs[0] / "final.model.npz.decoder.yml").resolve()),
        **decoding_batch_options(extra),
        **extra,
    }
    part_lines = args.part_lines
    options.update(part_batching(options, part_lines))
    if args.decoder == "ctranslate2":
        from pipeline.translate.ctranslate2_decoder import decoder_options

        options = decoder_options(args.model_dirs[0] / "final.model.npz.decoder.yml", extra)
    work = out / "parts"
    work.mkdir(parents=True, exist_ok=True)
    parts = math.ceil((end - start) / part_lines)
    done = 0
    while done < parts and (work / f"part.{done:05d}.zst").exists():
        logger.info("part %d already translated", done)
        done += 1
    if done < parts:
        translate_parts(args, options, work, start, end, part_lines, done)
    with write_lines(out / "translation.zst") as writer:
        for number in range(parts):
            for line in read_lines(work / f"part.{number:05d}.zst"):
                writer.write(line)
        count = writer.count
    if count != end - start:
        raise StepError(f"{count} translations for {end - start} lines: a part is damaged")
    write_json(
        out / "chunk.json", {"chunk": args.chunk, "chunks": args.chunks, "input_lines": total, "lines": count}
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
