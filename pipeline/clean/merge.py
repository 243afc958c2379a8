"""The streaming merge shared by corpus-merge-parallel, corpus-merge-devset and corpus-merge-mono.

Memory stays bounded whatever the corpus size: one pass writes every row to one of K bucket files on disk, chosen
by a seeded hash of the row's normalized text (so duplicates meet in the same bucket, and bucket membership is
random); then each bucket is read alone, deduplicated, shuffled with a fixed seed and appended to the output.
Concatenating randomly assigned, internally shuffled buckets is a uniform shuffle, so `--max-sentences` keeps a
random sample. K grows with the input so that a bucket holds about BUCKET_ROWS rows.

Deduplication is exact (the same text) and normalized (the same after case folding and removing punctuation
and whitespace); the first copy in input order is kept. Decontamination removes a row any side of which, once
normalized, is a sentence of a devtest/test set (held in memory: test sets are small). Rows to exclude
(the parallel corpus, for monolingual data) go through the same buckets as hash-only markers. The first
pass (decoding, normalizing, hashing) and the second (a bucket each) run over THREADS forked workers; the output
is the same for any number of them.
"""

import contextlib
import hashlib
import os
import random
import re
import shutil
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.common.io import LineBlock, encode_lines, read_lines, write_lines
from pipeline.common.pool import forked_map

SEED = 1111
BATCH = 5000  # rows a worker decodes, normalizes and hashes at once
BUCKET_ROWS = 20_000
MIN_BUCKETS, MAX_BUCKETS = 16, 4096
BYTES_PER_COMPRESSED_LINE = 40  # to estimate line counts from zstd file sizes before reading
_WORD = re.compile(r"[^\W_]+")
# Byte tables for text that is ASCII, or Latin-1 once case folded (most lines of Latin-script languages): a
# letter or digit stays (an ASCII capital becomes small), anything else becomes a space.
_LATIN1_TABLE = bytes(i if _WORD.fullmatch(chr(i)) else 32 for i in range(256))
_ASCII_TABLE = bytes(ord(chr(i).lower()) if _WORD.fullmatch(chr(i)) else 32 for i in range(128)) + bytes(128)


def normalize(text: str) -> str:
    """The form two sentences share when they differ only in case, punctuation or whitespace: case folded, every
    run of characters other than letters and digits one space, none at the ends. Latin-1 text goes through a
    byte table (2.4x faster than the regular expression, which the rest goes through)."""
    if text.isascii():
        return b" ".join(text.encode("ascii").translate(_ASCII_TABLE).split()).decode("ascii")
    folded = text.casefold()
    try:
        data = folded.encode("latin-1")
    except UnicodeEncodeError:
        return " ".join(_WORD.findall(folded))
    return b" ".join(data.translate(_LATIN1_TABLE).split()).decode("latin-1")


def bucket_count(paths: Iterable[Path]) -> int:
    total = sum(p.stat().st_size for p in paths if p.exists())
    return max(MIN_BUCKETS, min(MAX_BUCKETS, total // BYTES_PER_COMPRESSED_LINE // BUCKET_ROWS + 1))


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
    """Rows are tuples of one (mono) or two (parallel) sentences."""

    workdir: Path
    buckets: int
    seed: int = SEED
    test_sentences: list[set] = field(default_factory=list)  # per side: normalized sentences to remove
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
        self._salt = str(self.seed).encode()

    def exclude(self, blocks: Iterable[LineBlock]) -> None:
        """Rows that must not appear in the output (marked 'x' in the buckets; their text is not kept)."""
        self._to_buckets("x", blocks, DatasetCounts(""))

    def add_dataset(self, name: str, blocks: Iterable[LineBlock], skip_blank: bool = False) -> None:
        """The rows of a dataset (a block holds one file per side); `skip_blank`: rows whose first side is blank
        are not rows at all (not counted)."""
        counts = DatasetCounts(name)
        self.datasets.append(counts)
        self._to_buckets(str(len(self.datasets) - 1), blocks, counts, skip_blank)

    def _to_buckets(
        self, tag: str, blocks: Iterable[LineBlock], counts: DatasetCounts, skip_blank: bool = False
    ) -> None:
        """Decoding, normalizing and hashing run in `cores` forked workers, block by block; the buckets are
        written here in input order, so the output does not depend on `cores`."""
        global _worker_merger
        _worker_merger = self
        for file in self._files:
            file.flush()  # nothing buffered before the fork that a worker could write too
        tasks = ((tag, block, skip_blank) for block in blocks)
        with forked_map(_bucket_lines, tasks, self.cores) as results:
            for lines, decontaminated, chunks in results:
                counts.lines += lines
                counts.decontaminated += decontaminated
                for bucket, text in chunks.items():
                    self._files[bucket].write(text)

    def bucket_lines(self, tag: str, block: LineBlock, skip_blank: bool) -> tuple[int, int, dict[int, bytes]]:
        """(rows, rows decontaminated, {bucket: its lines, encoded}) for one block of rows of the dataset `tag`."""
        rows = list(zip(*block.decoded(), strict=True))
        if skip_blank:
            rows = [row for row in rows if row[0].strip()]
        width = len(block.paths)
        tested = [
            (side, sentences) for side, sentences in enumerate(self.test_sentences[:width]) if sentences
        ]
        salt, buckets, blake2b = self._salt, self.buckets, hashlib.blake2b
        chunks, decontaminated = defaultdict(list), 0
        for row in rows:
            normalized = tuple(map(normalize, row))
            key = blake2b("\t".join(normalized).encode("utf-8", "surrogatepass"), digest_size=8).digest()
            bucket = int.from_bytes(blake2b(key, digest_size=4, key=salt).digest(), "little") % buckets
            if tag == "x":
                chunks[bucket].append(f"x\t{key.hex()}\n")
                continue
            contaminated = False
            for side, sentences in tested:
                if normalized[side] in sentences:
                    contaminated = True
                    break
            if contaminated:
                decontaminated += 1
                continue
            text = "\t".join(row)
            if text.count("\t") != width - 1:  # a tab inside a sentence: a space in the merged corpus
                text = "\t".join(s.replace("\t", " ") for s in row)
            chunks[bucket].append(f"{tag}\t{key.hex()}\t{text}\n")
        return (
            len(rows),
            decontaminated,
            {bucket: "".join(lines).encode() for bucket, lines in chunks.items()},
        )

    def merged_bucket(self, number: int) -> tuple[dict[int, list[int]], array, list[bytes]]:
        """One bucket deduplicated and shuffled: ({dataset: [in the parallel corpus, exact duplicates,
        normalized duplicates, kept]}, the dataset of each kept row, the kept rows' lines per side, encoded)."""
        path = self.workdir / f"{number:04d}"
        excluded, seen_keys, seen_exact, kept = set(), set(), set(), []
        counts = defaultdict(lambda: [0, 0, 0, 0])
        with open(path, encoding="utf-8", newline="\n") as bucket:
            for line in bucket:
                if line.startswith("x\t"):
                    excluded.add(line[2:-1])
                    continue
                index, key, text = line[:-1].split("\t", 2)
                if key in excluded:
                    counts[int(index)][0] += 1
                elif text in seen_exact:
                    counts[int(index)][1] += 1
                elif key in seen_keys:
                    counts[int(index)][2] += 1
                else:
                    seen_keys.add(key)
                    seen_exact.add(text)
                    kept.append((int(index), text))
        os.unlink(path)
        random.Random(f"{self.seed}-{number}").shuffle(kept)
        indices = array("I", [index for index, _ in kept])
        for index in indices:
            counts[index][3] += 1
        sides = zip(*(text.split("\t") for _, text in kept), strict=True)
        return dict(counts), indices, [encode_lines(list(side)) for side in sides]

    def merged(self, max_rows: int | None) -> Iterator[tuple[int, list[bytes]]]:
        """The merged rows, a bucket at a time as (rows, lines per side encoded): deduplicated, shuffled, capped.
        The buckets are merged in `cores` forked workers and come back in order. Fills in the per-dataset
        counts."""
        global _worker_merger
        _worker_merger = self
        for file in self._files:
            file.close()
        emitted = 0
        with forked_map(_merged_bucket, range(self.buckets), self.cores) as results:
            for counts, indices, sides in results:
                for index, (in_parallel, exact, normalized, kept) in counts.items():
                    dataset = self.datasets[index]
                    dataset.in_parallel_corpus += in_parallel
                    dataset.duplicates_exact += exact
                    dataset.duplicates_normalized += normalized
                    dataset.kept += kept
                take = len(indices) if max_rows is None else max(0, min(len(indices), max_rows - emitted))
                if take < len(indices):  # the cap falls in this bucket
                    for index in indices[take:]:
                        self.datasets[index].kept -= 1
                        self.datasets[index].capped += 1
                    sides = [first_lines(side, take) for side in sides]
                emitted += take
                if take:
                    yield take, sides
        with contextlib.suppress(OSError):
            self.workdir.rmdir()

    def totals(self) -> dict:
        keys = [k for k in DatasetCounts("").as_dict() if k != "dataset"]
        return {k: sum(getattr(d, k) for d in self.datasets) for k in keys}


_worker_merger: Merger | None = None  # the Merger a forked worker inherited


def _bucket_lines(task):
    return _worker_merger.bucket_lines(*task)


def _merged_bucket(number):
    return _worker_merger.merged_bucket(number)


def test_set_sentences(folders: list[Path], langs: list[str]) -> list[set]:
    """Per language: every sentence of the test sets in `folders`, normalized (test sets are small)."""
    sides = [set() for _ in langs]
    for folder in folders:
        for side, lang in enumerate(langs):
            path = folder / f"corpus.{lang}.zst"
            if path.exists():
                for line in read_lines(path):
                    normalized = normalize(line)
                    if normalized:
                        sides[side].add(normalized)
    return sides


def first_lines(block: bytes, count: int) -> bytes:
    """The first `count` lines of encoded lines (a line may hold a carriage return: only \\n ends one)."""
    end = -1
    for _ in range(count):
        end = block.index(b"\n", end + 1)
    return block[: end + 1]


def write_merged(paths: list[Path], merged: Iterator[tuple[int, list[bytes]]]) -> int:
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(write_lines(p)) for p in paths]
        for rows, sides in merged:
            for out, lines in zip(outs, sides, strict=True):
                out.write_encoded(lines, rows)
        return outs[0].count
