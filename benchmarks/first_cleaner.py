"""The project's first cleaning step (pipeline/clean/clean_parallel.py at d8e2a6d^), kept as the yardstick of
`task bench-data`: issue 9 asks for language ID, cleaning and merge together at 10x its speed on one core.

Clean one parallel dataset with rule-based filters and language identification.

Reads `<input-dir>/corpus.<src|trg>.zst`, writes the kept pairs to `<output-dir>/corpus.<src|trg>.zst` and
`stats.json` with how many pairs each filter removed (the data funnel of the run report).

Filters, in order (a pair is dropped by the first that rejects it):
  empty         a side is empty after collapsing whitespace
  identical     both sides are the same text (untranslated copies)
  length        a side has fewer than --min-words or more than --max-words words
  ratio         one side is more than --max-length-ratio times longer (characters) than the other
  language      py3langid is confident (probability >= --lid-threshold) that a side is in another language
"""

import argparse
import logging
import re
from collections import Counter
from pathlib import Path

from pipeline.common.io import read_json, read_pairs, write_json, write_lines
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("clean")

WHITESPACE = re.compile(r"\s+")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--input-dir", required=True, type=Path)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--min-words", type=int, default=1)
    parser.add_argument("--max-words", type=int, default=150)
    parser.add_argument("--max-length-ratio", type=float, default=3.0)
    parser.add_argument("--language-id", choices=["true", "false"], default="true")
    parser.add_argument("--lid-threshold", type=float, default=0.5)
    parser.add_argument("--output-dir", required=True, type=Path)


class LanguageFilter:
    def __init__(self, src: str, trg: str, threshold: float):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        known = set(self.identifier.nb_classes)
        for lang in (src, trg):
            if lang not in known:
                raise StepError(
                    f"language identification has no model for {lang!r}; set cleaning.language-id: false"
                )
        self.src, self.trg, self.threshold = src, trg, threshold

    def _other_language(self, text: str, expected: str) -> bool:
        lang, probability = self.identifier.classify(text)
        return lang != expected and probability >= self.threshold

    def rejects(self, src: str, trg: str) -> bool:
        return self._other_language(src, self.src) or self._other_language(trg, self.trg)


def filter_pair(src: str, trg: str, args, language_filter) -> str | None:
    """Returns the name of the filter that rejects the pair, or None to keep it."""
    if not src or not trg:
        return "empty"
    if src == trg:
        return "identical"
    src_words, trg_words = src.count(" ") + 1, trg.count(" ") + 1
    if min(src_words, trg_words) < args.min_words or max(src_words, trg_words) > args.max_words:
        return "length"
    if max(len(src), len(trg)) > args.max_length_ratio * min(len(src), len(trg)):
        return "ratio"
    if language_filter and language_filter.rejects(src, trg):
        return "language"
    return None


def main(args):
    outputs = [f"corpus.{args.src}.zst", f"corpus.{args.trg}.zst", "stats.json"]
    if already_done(args.output_dir, outputs):
        return
    language_filter = (
        LanguageFilter(args.src, args.trg, args.lid_threshold) if args.language_id == "true" else None
    )
    removed = Counter()
    seen = 0
    with (
        write_lines(args.output_dir / outputs[0]) as src_out,
        write_lines(args.output_dir / outputs[1]) as trg_out,
    ):
        for src, trg in read_pairs(args.input_dir / outputs[0], args.input_dir / outputs[1]):
            seen += 1
            src, trg = WHITESPACE.sub(" ", src).strip(), WHITESPACE.sub(" ", trg).strip()
            rejected_by = filter_pair(src, trg, args, language_filter)
            if rejected_by:
                removed[rejected_by] += 1
                continue
            src_out.write(src)
            trg_out.write(trg)
        if src_out.count == 0:
            raise StepError(
                f"no pair of {seen} survived cleaning (removed: {dict(removed)}); check the dataset and filters"
            )
    imported = args.input_dir / "stats.json"
    dataset = read_json(imported).get("dataset") if imported.exists() else None
    stats = {"dataset": dataset, "lines_in": seen, "lines_out": src_out.count, "removed": dict(removed)}
    write_json(args.output_dir / "stats.json", stats)
    logger.info("kept %d of %d pairs; removed %s", src_out.count, seen, dict(removed))


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
