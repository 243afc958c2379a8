"""Keep the records a model scores above a threshold (bicleaner-ai on pairs, monocleaner on sentences).

Records are scored in blocks; every score (0 to 1) is written, one per input record, so a user can tune the
threshold from `scores.zst` without scoring again."""

import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from pipeline.common.packs import extract_pack
from pipeline.common.step import StepError


def check_threshold(threshold: float) -> None:
    if not 0 <= threshold <= 1:
        raise StepError(f"--threshold must be between 0 and 1, got {threshold}")


def unpack_model(
    tool: str, threshold: float, pack: Path | None, archive: str, work: Path, dataset
) -> Path | None:
    """The model pack extracted into `work`, or None for a threshold of 0 (the data is copied through)."""
    if threshold == 0:
        return None
    if pack is None:
        raise StepError(f"dataset {dataset}: a {tool} threshold of {threshold} needs --pack (the model)")
    shutil.rmtree(work, ignore_errors=True)
    return extract_pack(pack / archive, work)


@dataclass
class ScoreCounts:
    lines_in: int = 0
    lines_out: int = 0
    histogram: Counter = field(default_factory=Counter)

    def as_stats(self) -> dict:
        return {
            "lines_in": self.lines_in,
            "removed": self.lines_in - self.lines_out,
            "lines_out": self.lines_out,
            "score_histogram": {
                f"{b / 10:.1f}-{(b + 1) / 10:.1f}": self.histogram[b] for b in range(10) if self.histogram[b]
            },
        }


def filter_by_score(
    records: Iterable,
    score_block: Callable[[list], list[float]] | None,
    threshold: float,
    block_size: int,
    keep: Callable[[object], None],
    write_score: Callable[[str], None],
) -> ScoreCounts:
    """Calls keep(record) for each record scoring above `threshold`; with no scorer, keeps all at score 1."""
    counts = ScoreCounts()
    records = iter(records)
    while block := list(islice(records, block_size)):
        scores = score_block(block) if score_block else [1.0] * len(block)
        if len(scores) != len(block):
            raise StepError(f"the scorer returned {len(scores)} scores for {len(block)} lines")
        for record, score in zip(block, scores, strict=True):
            if not 0 <= score <= 1:
                raise StepError(
                    f"the scorer returned {score} for line {counts.lines_in + 1}: scores are between 0 and 1"
                )
            counts.lines_in += 1
            write_score(f"{score:.3f}")
            counts.histogram[min(int(score * 10), 9)] += 1
            if score_block is None or score > threshold:
                keep(record)
                counts.lines_out += 1
    return counts


def load_class(spec: str):
    """`module:Class` -> the class (a scorer that a worker image may replace)."""
    import importlib

    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise StepError(f"scorer {spec!r} cannot be loaded: {error}") from None
