"""Collect the translated chunks of a corpus back into one corpus, in order, with line counts checked.

Reads `<original-dir>/corpus.<original-lang>.zst` (the corpus that was translated) and the chunk folders
written by pipeline/translate/translate.py (`translation.zst`, `chunk.json`), in any order. Writes
`<output-dir>/corpus.<original-lang>.zst` (the original, unchanged) and `corpus.<translated-lang>.zst` (the
translations, line for line), so the result is a parallel corpus like any other, plus `stats.json`.
Fails if a chunk is missing, repeated, or does not hold exactly its share of the lines.
"""

import argparse
import logging
import shutil
from pathlib import Path

from pipeline.common.io import atomic_path, read_json, read_lines, write_json, write_lines
from pipeline.common.step import StepError, already_done, run_step
from pipeline.translate.translate import chunk_bounds

logger = logging.getLogger("collect")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--original-dir", required=True, type=Path)
    parser.add_argument("--original-lang", required=True, help="language of the corpus that was translated")
    parser.add_argument("--translated-lang", required=True, help="language of the translations")
    parser.add_argument("--chunk-dirs", required=True, type=Path, nargs="+")
    parser.add_argument("--output-dir", required=True, type=Path)


def ordered_chunks(chunk_dirs: list[Path]) -> list[Path]:
    chunks = {}
    expected = None
    for folder in chunk_dirs:
        info = read_json(folder / "chunk.json")
        if expected is None:
            expected = info["chunks"]
        elif info["chunks"] != expected:
            raise StepError(
                f"{folder} is chunk {info['chunk']} of {info['chunks']}, the others of {expected}"
            )
        if info["chunk"] in chunks:
            raise StepError(f"chunk {info['chunk']} is given twice: {chunks[info['chunk']]} and {folder}")
        chunks[info["chunk"]] = folder
    missing = sorted(set(range(1, expected + 1)) - set(chunks))
    if missing:
        raise StepError(f"chunk(s) {', '.join(map(str, missing))} of {expected} are missing")
    return [chunks[number] for number in range(1, expected + 1)]


def main(args):
    original = args.original_dir / f"corpus.{args.original_lang}.zst"
    outputs = [f"corpus.{args.original_lang}.zst", f"corpus.{args.translated_lang}.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    if not original.exists():
        raise StepError(f"input file {original} does not exist")
    chunks = ordered_chunks(args.chunk_dirs)
    total = sum(1 for _ in read_lines(original))
    with write_lines(args.output_dir / outputs[1]) as out:
        for number, folder in enumerate(chunks, start=1):
            start, end = chunk_bounds(total, number, len(chunks))
            before = out.count
            for line in read_lines(folder / "translation.zst"):
                out.write(line)
            if out.count - before != end - start:
                raise StepError(
                    f"chunk {number} ({folder}) holds {out.count - before} translations, "
                    f"expected {end - start} (lines {start + 1}-{end} of {total})"
                )
    with atomic_path(args.output_dir / outputs[0]) as tmp:
        shutil.copyfile(original, tmp)
    write_json(args.output_dir / "stats.json", {"chunks": len(chunks), "lines": total})
    logger.info("collected %d chunks, %d lines", len(chunks), total)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
