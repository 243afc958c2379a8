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
pass normalizes and hashes over THREADS forked workers; its output is the same for any number of them.
"""

import contextlib
import hashlib
import os
import random
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.common.io import read_lines, read_pairs, write_lines
from pipeline.common.pool import batches, forked_map

SEED = 1111
BATCH = 5000  # rows a worker normalizes and hashes at once
BUCKET_ROWS = 20_000
MIN_BUCKETS, MAX_BUCKETS = 16, 4096
BYTES_PER_COMPRESSED_LINE = 40  # to estimate line counts from zstd file sizes before reading
_NOT_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """The form two sentences share when they differ only in case, punctuation or whitespace: case folded, every
    run of characters other than letters and digits one space, none at the ends."""
    return _NOT_WORD.sub(" ", text.casefold()).strip(" ")


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


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
            open(self.workdir / f"{i:04d}", "w", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed in rows())
            for i in range(self.buckets)
        ]
        self._salt = str(self.seed).encode()

    def _bucket(self, key: bytes) -> int:
        return (
            int.from_bytes(hashlib.blake2b(key, digest_size=4, key=self._salt).digest(), "little")
            % self.buckets
        )

    def exclude(self, rows: Iterator[tuple[str, ...]]) -> None:
        """Rows that must not appear in the output (marked 'x' in the buckets; their text is not kept)."""
        self._to_buckets("x", rows, DatasetCounts(""))

    def add_dataset(self, name: str, rows: Iterator[tuple[str, ...]]) -> None:
        counts = DatasetCounts(name)
        self.datasets.append(counts)
        self._to_buckets(str(len(self.datasets) - 1), rows, counts)

    def _to_buckets(self, tag: str, rows: Iterator[tuple[str, ...]], counts: DatasetCounts) -> None:
        """Normalizing and hashing run in `cores` forked workers, batch by batch; the buckets are written
        here in input order, so the output does not depend on `cores`."""
        global _worker_merger
        _worker_merger = self
        for file in self._files:
            file.flush()  # nothing buffered before the fork that a worker could write too
        tasks = ((tag, batch) for batch in batches(rows, BATCH))
        with forked_map(_bucket_lines, tasks, self.cores) as results:
            for lines, decontaminated, chunks in results:
                counts.lines += lines
                counts.decontaminated += decontaminated
                for bucket, text in chunks.items():
                    self._files[bucket].write(text)

    def bucket_lines(self, tag: str, batch: list[tuple[str, ...]]) -> tuple[int, int, dict[int, str]]:
        """(rows, rows decontaminated, {bucket: its lines}) for one batch of rows of the dataset `tag`."""
        tests = self.test_sentences
        chunks, decontaminated = defaultdict(list), 0
        for row in batch:
            normalized = [normalize(sentence) for sentence in row]
            key = digest("\t".join(normalized))
            if tag == "x":
                chunks[self._bucket(key)].append(f"x\t{key.hex()}\n")
                continue
            if tests and any(n in tests[i] for i, n in enumerate(normalized) if i < len(tests)):
                decontaminated += 1
                continue
            exact = digest("\t".join(row)).hex()
            text = "\t".join(s.replace("\t", " ") for s in row)
            chunks[self._bucket(key)].append(f"{tag}\t{key.hex()}\t{exact}\t{text}\n")
        return len(batch), decontaminated, {bucket: "".join(lines) for bucket, lines in chunks.items()}

    def rows(self, max_rows: int | None) -> Iterator[tuple[str, ...]]:
        """The merged rows: deduplicated, shuffled, capped. Fills in the per-dataset counts."""
        for file in self._files:
            file.close()
        emitted = 0
        for number in range(self.buckets):
            path = self.workdir / f"{number:04d}"
            excluded, seen_keys, seen_exact, kept = set(), set(), set(), []
            with open(path, encoding="utf-8", newline="\n") as bucket:
                for line in bucket:
                    if line.startswith("x\t"):
                        excluded.add(line[2:-1])
                        continue
                    index, key, exact, text = line[:-1].split("\t", 3)
                    counts = self.datasets[int(index)]
                    if key in excluded:
                        counts.in_parallel_corpus += 1
                    elif exact in seen_exact:
                        counts.duplicates_exact += 1
                    elif key in seen_keys:
                        counts.duplicates_normalized += 1
                    else:
                        seen_keys.add(key)
                        seen_exact.add(exact)
                        kept.append((int(index), text))
            os.unlink(path)
            random.Random(f"{self.seed}-{number}").shuffle(kept)
            for index, text in kept:
                if max_rows is not None and emitted >= max_rows:
                    self.datasets[index].capped += 1
                    continue
                emitted += 1
                self.datasets[index].kept += 1
                yield tuple(text.split("\t"))
        with contextlib.suppress(OSError):
            self.workdir.rmdir()

    def totals(self) -> dict:
        keys = [k for k in DatasetCounts("").as_dict() if k != "dataset"]
        return {k: sum(getattr(d, k) for d in self.datasets) for k in keys}


_worker_merger: Merger | None = None  # the Merger a forked worker inherited


def _bucket_lines(task):
    return _worker_merger.bucket_lines(*task)


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


def write_rows(paths: list[Path], rows: Iterator[tuple[str, ...]]) -> int:
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(write_lines(p)) for p in paths]
        for row in rows:
            for out, text in zip(outs, row, strict=True):
                out.write(text)
        return outs[0].count


def pairs_of(folder: Path, src: str, trg: str) -> Iterator[tuple[str, str]]:
    return read_pairs(folder / f"corpus.{src}.zst", folder / f"corpus.{trg}.zst")


def lines_of(path: Path) -> Iterator[tuple[str]]:
    return ((line,) for line in read_lines(path))
