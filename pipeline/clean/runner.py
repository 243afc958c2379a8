"""What the parallel and the monolingual cleaning steps share: the filter configs' folder, batching, the pool
of forked workers (each inherits the filters built once in the parent) and the length histograms."""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.clean import filters as filtering
from pipeline.common.io import LineBlock, atomic_path, compress_lines, encode_lines, write_json
from pipeline.common.pool import forked_map
from pipeline.common.slug import dataset_slug  # noqa: F401 (the steps call runner.dataset_slug)

logger = logging.getLogger("clean")

BATCH = 5000  # lines a worker cleans at once
DEFAULT_FILTERS_DIR = Path(__file__).resolve().parent / "opuscleaner" / "configs"
LENGTH_BINS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]  # words; the last bin holds everything longer


_BIN_OF = [next((b for b in LENGTH_BINS if n <= b), LENGTH_BINS[-1] + 1) for n in range(LENGTH_BINS[-1] + 2)]


_worker_filters = None


def init_filters(steps, src, trg, overrides):
    """Builds the filters in this process; workers forked afterwards use them."""
    global _worker_filters
    _worker_filters = filtering.build(steps, src, trg, overrides)


def clean_block(block: LineBlock):
    """The kept lines of a block of one (monolingual) or two (parallel) aligned files, each side a zstd frame
    (compress_lines), with how many each filter removed and the length histogram of the kept lines."""
    sides = block.decoded()
    pairs = list(zip(*sides, strict=True)) if len(sides) == 2 else [(line, line) for line in sides[0]]
    kept, removed = filtering.run_batch(_worker_filters, pairs)
    encoded = [encode_lines([pair[side] for pair in kept]) for side in range(len(sides))]
    lengths = Counter()
    sides_encoded = encoded if len(encoded) == 2 else encoded * 2  # monolingual: the line is both sides
    for side, block_of_side in zip(("src", "trg"), sides_encoded, strict=True):
        for length, count in length_counts(block_of_side).items():
            lengths[(side, length)] = count
    return [compress_lines(side) for side in encoded], len(kept), removed, lengths


def length_counts(block: bytes) -> dict[int, int]:
    """{length bin: lines} of encoded lines, a line's length being its spaces + 1 (whitespace is normalized by
    then): counted with numpy, as a Python loop over the lines cost more than the rules."""
    data = np.frombuffer(block, dtype=np.uint8)
    line_ends = np.flatnonzero(data == 10)
    spaces_before = np.searchsorted(np.flatnonzero(data == 32), line_ends)
    words = np.diff(spaces_before, prepend=0) + 1
    bins = np.asarray(_BIN_OF)[np.minimum(words, len(_BIN_OF) - 1)]
    values, counts = np.unique(bins, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


@contextmanager
def cleaned_blocks(blocks: Iterable[LineBlock], cores: int) -> Iterator[Iterator]:
    """clean_block of each block, in order: from `cores` forked workers (which inherit the filters init_filters
    built), or in this process for one core."""
    with forked_map(clean_block, blocks, cores) as results:
        yield results


@dataclass
class CleaningCounts:
    seen: int = 0
    removed: Counter = field(default_factory=Counter)  # by filter
    lengths: Counter = field(default_factory=Counter)  # by (side, length bin) of the kept pairs


def counted(results: Iterable, counts: CleaningCounts) -> Iterator[tuple[list[bytes], int]]:
    """The kept lines (a zstd frame per side) and their number for each cleaned block, adding its counts to
    `counts`."""
    for frames, kept, removed, lengths in results:
        counts.seen += kept + sum(removed.values())
        counts.removed.update(removed)
        counts.lengths.update(lengths)
        yield frames, kept


def length_histogram(lengths: Counter, side: str) -> dict[str, int]:
    return {str(b): lengths[(side, b)] for b in [*LENGTH_BINS, LENGTH_BINS[-1] + 1] if lengths[(side, b)]}


def write_results(output_dir: Path, config_path: Path, filters_dir: Path, stats: dict, unit: str):
    """The filter config used (filters.json) and the counts (stats.json), with a warning when cleaning left
    nothing: the merge accounts for an empty dataset, later stages never see it silently."""
    with atomic_path(output_dir / "filters.json") as tmp:
        tmp.write_text(config_path.read_text(encoding="utf-8"), encoding="utf-8")
    filters = config_path.relative_to(filters_dir) if config_path.is_relative_to(filters_dir) else config_path
    stats = {"dataset": stats.pop("dataset"), "filters": str(filters), **stats}
    seen, removed = stats["lines_in"], stats["removed"]
    if stats["lines_out"] == 0:
        stats["warning"] = f"no {unit} of {seen} survived cleaning"
        logger.warning(
            "dataset %s: no %s of %d survived cleaning (removed: %s)", stats["dataset"], unit, seen, removed
        )
    write_json(output_dir / "stats.json", stats)
    logger.info("kept %d of %d %ss; removed %s", stats["lines_out"], seen, unit, removed)
