"""The streaming merge shared by corpus-merge-parallel, corpus-merge-devset and corpus-merge-mono.

Memory stays bounded whatever the corpus size: one pass writes every row to one of K bucket files on disk, chosen
by a seeded hash of the row's normalized text (so duplicates meet in the same bucket, and bucket membership is
random); then each bucket is read alone, deduplicated, shuffled with a fixed seed and appended to the output.
Concatenating randomly assigned, internally shuffled buckets is a uniform shuffle, so `--max-sentences` keeps a
random sample. K grows with the input so that a bucket holds about BUCKET_ROWS rows.

Deduplication is exact (the same text) and normalized (the same after case folding and removing punctuation
and whitespace); the first copy in input order is kept. Decontamination removes a row any side of which, once
normalized, is a sentence of a devtest/test set (their hashes are held in memory: test sets are small). Rows to
exclude (the parallel corpus, for monolingual data) go through the same buckets as key-only records. The first
pass (checking, normalizing, hashing) and the second (a bucket each) run over THREADS forked workers; the output
is the same for any number of them. The per-row work is compiled (pipeline/clean/merge_kernels.py) and works on
the lines' bytes; sentences are never decoded to Python strings.
"""

import contextlib
import functools
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zstandard

from pipeline.clean import merge_kernels as kernels
from pipeline.common.io import LineBlock, checked_text, compress_lines, read_line_blocks, write_lines
from pipeline.common.pool import forked_map

SEED = 1111
BATCH = 5000  # rows a worker checks, normalizes and hashes at once
BUCKET_ROWS = 20_000
MIN_BUCKETS, MAX_BUCKETS = 16, 4096
BYTES_PER_COMPRESSED_LINE = 40  # to estimate line counts from zstd file sizes before reading
_WORD = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """The form two sentences share when they differ only in case, punctuation or whitespace: case folded, every
    run of characters other than letters and digits one space, none at the ends. (The merge computes it from the
    bytes, merge_kernels.hash_lines; this is the rule, and the path for text beyond the BMP.)"""
    return " ".join(_WORD.findall(text.casefold()))


def bucket_count(paths: Iterable[Path]) -> int:
    total = sum(p.stat().st_size for p in paths if p.exists())
    return max(MIN_BUCKETS, min(MAX_BUCKETS, total // BYTES_PER_COMPRESSED_LINE // BUCKET_ROWS + 1))


@functools.cache
def _normalization_table():
    return kernels.normalization_table()


@functools.cache
def _compile_kernels():
    """Every kernel run once on a line, with the argument types the merge gives them (numba compiles, or loads
    from its cache, a version per type)."""
    lines = hashed_lines(b"Warm up\n", Path("warm-up"), 1, SEED)
    kernels.hash_bytes(np.frombuffer(b"warm up", dtype=np.uint8), np.uint64(SEED))
    keys = kernels.combine(lines.hashes, lines.hashes)
    side = (lines.data, lines.starts, lines.ends)
    records, _ = kernels.bucket_records(0, keys, np.zeros(1, dtype=np.int64), *side, *side, 2, 1)
    data = records.copy()  # writable, as np.fromfile gives it
    dataset, keys, start0, length0, start1, length1 = kernels.parse_records(data)
    status = kernels.classify(
        np.argsort(keys, kind="stable"), dataset, keys, data, start0, length0, start1, length1
    )
    kernels.gather_lines(data, start0, length0, np.flatnonzero(status == kernels.KEPT))


@dataclass
class HashedLines:
    """The lines of a block of one corpus file as byte ranges of `data` (line breaks and trailing carriage
    returns left out, as decode_lines leaves them out), with the hash of each line's normalized form and its
    flags (merge_kernels: EMPTY, BLANK)."""

    data: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    hashes: np.ndarray
    flags: np.ndarray


def hashed_lines(block: bytes, path: Path, first_line: int, seed: int) -> HashedLines:
    """Checks the lines (valid UTF-8, no NUL: decode_lines' errors) and hashes them."""
    checked_text(block, path, first_line)
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    starts = np.zeros(len(ends), dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    while len(ends):
        carriage_return = (ends > starts) & (data[np.maximum(ends - 1, 0)] == 13)
        if not carriage_return.any():
            break
        ends[carriage_return] -= 1
    hashes, flags = np.empty(len(ends), dtype=np.uint64), np.empty(len(ends), dtype=np.uint8)
    seed = np.uint64(seed)
    kernels.hash_lines(data, starts, ends, *_normalization_table(), seed, hashes, flags)
    for i in np.flatnonzero(flags & kernels.BEYOND_BMP):  # rare: normalized in Python
        text = block[starts[i] : ends[i]].decode("utf-8")
        normalized = normalize(text).encode("utf-8")
        hashes[i] = kernels.hash_bytes(np.frombuffer(normalized, dtype=np.uint8), seed)
        flags[i] = (0 if normalized else kernels.EMPTY) | (0 if text.strip() else kernels.BLANK)
    return HashedLines(data, starts, ends, hashes, flags)


def _is_in(hashes: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not len(sorted_set):
        return np.zeros(len(hashes), dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_set, hashes), len(sorted_set) - 1)
    return sorted_set[at] == hashes


@dataclass
class DatasetCounts:
    dataset: str
    lines: int = 0
    duplicates_exact: int = 0
    duplicates_normalized: int = 0
    in_parallel_corpus: int = 0
    decontaminated: int = 0
    capped: int = 0
    kept: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Merger:
    """Rows of `sides` sentences: 1 (monolingual) or 2 (parallel)."""

    workdir: Path
    buckets: int
    sides: int = 2
    seed: int = SEED
    test_hashes: list[np.ndarray] = field(default_factory=list)  # per side: test_set_hashes
    cores: int = 1
    _files: list = field(default_factory=list)
    datasets: list[DatasetCounts] = field(default_factory=list)

    def __post_init__(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self._files = [
            open(self.workdir / f"{i:04d}", "wb")  # noqa: SIM115 (closed in merged())
            for i in range(self.buckets)
        ]
        _compile_kernels()  # once, here: workers forked later inherit them

    def exclude(self, blocks: Iterable[LineBlock]) -> None:
        """Rows that must not appear in the output (key-only records; their text is not kept)."""
        self._to_buckets(kernels.EXCLUDE, blocks, DatasetCounts(""))

    def add_dataset(self, name: str, blocks: Iterable[LineBlock], skip_blank: bool = False) -> None:
        """The rows of a dataset (a block holds one file per side); `skip_blank`: rows whose first side is blank
        are not rows at all (not counted)."""
        counts = DatasetCounts(name)
        self.datasets.append(counts)
        self._to_buckets(len(self.datasets) - 1, blocks, counts, skip_blank)

    def _to_buckets(
        self, dataset: int, blocks: Iterable[LineBlock], counts: DatasetCounts, skip_blank: bool = False
    ) -> None:
        """Checking, normalizing and hashing run in `cores` forked workers, block by block; the buckets are
        written here in input order, so the output does not depend on `cores`."""
        global _worker_merger
        _worker_merger = self
        for file in self._files:
            file.flush()  # nothing buffered before the fork that a worker could write too
        tasks = ((dataset, block, skip_blank) for block in blocks)
        with forked_map(_bucket_records, tasks, self.cores) as results:
            for lines, decontaminated, records, bounds in results:
                counts.lines += lines
                counts.decontaminated += decontaminated
                for bucket in np.flatnonzero(np.diff(bounds)):
                    self._files[bucket].write(records[bounds[bucket] : bounds[bucket + 1]])

    def bucket_records(
        self, dataset: int, block: LineBlock, skip_blank: bool
    ) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(rows, rows decontaminated, the records of the block's rows grouped by bucket, where each bucket's
        records start) for one block of rows of `dataset` (EXCLUDE: rows that only exclude their key)."""
        sides = [
            hashed_lines(raw, path, block.first_line, self.seed)
            for raw, path in zip(block.blocks, block.paths, strict=True)
        ]
        keys = sides[0].hashes if len(sides) == 1 else kernels.combine(sides[0].hashes, sides[1].hashes)
        keep = np.ones(len(keys), dtype=np.bool_)
        if skip_blank:
            keep &= (sides[0].flags & kernels.BLANK) == 0
        rows, decontaminated = int(keep.sum()), 0
        if dataset != kernels.EXCLUDE:
            contaminated = np.zeros(len(keys), dtype=np.bool_)
            for side, test_hashes in zip(sides, self.test_hashes, strict=False):
                contaminated |= _is_in(side.hashes, test_hashes)
            contaminated &= keep
            decontaminated = int(contaminated.sum())
            keep &= ~contaminated
        row_buckets = np.where(keep, ((keys >> np.uint64(32)) % np.uint64(self.buckets)).astype(np.int64), -1)
        second = sides[-1]
        records, bounds = kernels.bucket_records(
            dataset, keys, row_buckets, sides[0].data, sides[0].starts, sides[0].ends,
            second.data, second.starts, second.ends, 0 if dataset == kernels.EXCLUDE else len(sides), self.buckets,
        )  # fmt: skip
        return rows, decontaminated, records, bounds

    def merged_bucket(self, number: int) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """One bucket deduplicated and shuffled: (counts[status, dataset] for IN_PARALLEL, EXACT, NORMALIZED
        and KEPT, the dataset of each kept row, the kept rows' lines per side as a zstd frame)."""
        path = self.workdir / f"{number:04d}"
        data = np.fromfile(path, dtype=np.uint8)
        os.unlink(path)
        dataset, keys, start0, length0, start1, length1 = kernels.parse_records(data)
        status = kernels.classify(
            np.argsort(keys, kind="stable"), dataset, keys, data, start0, length0, start1, length1
        )
        counts = np.zeros((4, len(self.datasets)), dtype=np.int64)
        for row, kind in enumerate((kernels.IN_PARALLEL, kernels.EXACT, kernels.NORMALIZED, kernels.KEPT)):
            counts[row] = np.bincount(dataset[status == kind], minlength=len(self.datasets))
        kept = np.flatnonzero(status == kernels.KEPT)
        kept = kept[np.random.Generator(np.random.PCG64([self.seed, number])).permutation(len(kept))]
        sides = [(start0, length0), (start1, length1)][: self.sides]
        return (
            counts,
            dataset[kept],
            [compress_lines(kernels.gather_lines(data, s, n, kept)) for s, n in sides],
        )

    def merged(self, max_rows: int | None) -> Iterator[tuple[int, list[bytes]]]:
        """The merged rows, a bucket at a time as (rows, a zstd frame per side): deduplicated, shuffled, capped.
        The buckets are merged in `cores` forked workers and come back in order. Fills in the per-dataset
        counts."""
        global _worker_merger
        _worker_merger = self
        for file in self._files:
            file.close()
        emitted = 0
        with forked_map(_merged_bucket, range(self.buckets), self.cores) as results:
            for counts, indices, sides in results:
                for dataset, (in_parallel, exact, normalized, kept) in zip(
                    self.datasets, counts.T.tolist(), strict=True
                ):
                    dataset.in_parallel_corpus += in_parallel
                    dataset.duplicates_exact += exact
                    dataset.duplicates_normalized += normalized
                    dataset.kept += kept
                take = len(indices) if max_rows is None else max(0, min(len(indices), max_rows - emitted))
                if take < len(indices):  # the cap falls in this bucket
                    for index in indices[take:].tolist():
                        self.datasets[index].kept -= 1
                        self.datasets[index].capped += 1
                    sides = [compress_lines(first_lines(decompress(side), take)) for side in sides]
                emitted += take
                if take:
                    yield take, sides
        with contextlib.suppress(OSError):
            self.workdir.rmdir()

    def totals(self) -> dict:
        keys = [k for k in DatasetCounts("").as_dict() if k != "dataset"]
        return {k: sum(getattr(d, k) for d in self.datasets) for k in keys}


_worker_merger: Merger | None = None  # the Merger a forked worker inherited


def _bucket_records(task):
    return _worker_merger.bucket_records(*task)


def _merged_bucket(number):
    return _worker_merger.merged_bucket(number)


def test_set_hashes(folders: list[Path], langs: list[str], seed: int = SEED) -> list[np.ndarray]:
    """Per language: the hashes of the normalized sentences of the test sets in `folders` (sorted; sentences
    that normalize to nothing left out)."""
    sides = []
    for lang in langs:
        found = []
        for folder in folders:
            path = folder / f"corpus.{lang}.zst"
            if path.exists():
                for block in read_line_blocks([path], BATCH):
                    lines = hashed_lines(block.blocks[0], path, block.first_line, seed)
                    found.append(lines.hashes[(lines.flags & kernels.EMPTY) == 0])
        sides.append(np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64))
    return sides


def first_lines(block: bytes, count: int) -> bytes:
    """The first `count` lines of encoded lines (a line may hold a carriage return: only \\n ends one)."""
    end = -1
    for _ in range(count):
        end = block.index(b"\n", end + 1)
    return block[: end + 1]


def decompress(frame: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(frame)


def write_merged(paths: list[Path], merged: Iterator[tuple[int, list[bytes]]]) -> int:
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(write_lines(p)) for p in paths]
        for rows, frames in merged:
            for out, frame in zip(outs, frames, strict=True):
                out.write_frame(frame, rows)
        return outs[0].count
