"""Reading and writing corpora: one sentence a line, plain, gzip or zstd, always strict UTF-8.

Every output is written to a temporary file next to its destination and renamed into place only once
complete, so a killed step never leaves a file that a retry would trust.
"""

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import zstandard

from pipeline.common.step import StepError


class TruncatedError(OSError):
    """A compressed file ends in the middle of a frame: it was cut short (an interrupted download or copy)."""


class _ZstdReader(io.RawIOBase):
    """Decompresses every frame of a zstd file and raises TruncatedError if the last frame is incomplete.

    zstandard's stream_reader returns what it has at the end of a cut file without complaint, which would make a
    truncated corpus look like a shorter one."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")  # noqa: SIM115 (closed in close())
        self._decompressor = None
        self._pending = b""
        self._offset = 0  # how much of _pending was returned (slicing it per read would copy it each time)

    def readable(self):
        return True

    def _fill(self) -> bool:
        if self._offset >= len(self._pending):
            self._pending, self._offset = b"", 0
        while not self._pending:
            chunk = self._file.read(1 << 20)
            if not chunk:
                if self._decompressor is not None and not self._decompressor.eof:
                    raise TruncatedError(
                        "the zstd stream ends in the middle of a frame: the file is truncated"
                    )
                return False
            while chunk:
                if self._decompressor is None or self._decompressor.eof:
                    self._decompressor = zstandard.ZstdDecompressor().decompressobj()
                self._pending += self._decompressor.decompress(chunk)
                chunk = self._decompressor.unused_data if self._decompressor.eof else b""
        return True

    def readinto(self, buffer) -> int:
        if not self._fill():
            return 0
        size = min(len(buffer), len(self._pending) - self._offset)
        buffer[:size] = memoryview(self._pending)[self._offset : self._offset + size]
        self._offset += size
        return size

    def close(self):
        self._file.close()
        super().close()


def _open_binary_read(path: Path):
    if path.suffix == ".zst":
        return _ZstdReader(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _raw_line_chunks(path: Path, size: int) -> Iterator[list[bytes]]:
    """The lines of a corpus file `size` at a time, undecoded, each ending in a line break; a cut or unreadable
    file fails clearly, naming the last line read."""
    if not path.exists():
        raise StepError(f"input file {path} does not exist")
    lines_read = 0
    try:
        with _open_binary_read(path) as raw:
            reader = io.BufferedReader(raw)
            while chunk := list(islice(reader, size)):
                if not chunk[-1].endswith(b"\n"):
                    chunk[-1] += b"\n"
                lines_read += len(chunk)
                yield chunk
    except (OSError, EOFError, zstandard.ZstdError) as error:
        if isinstance(error, TruncatedError | EOFError):
            raise StepError(
                f"{path}: truncated after line {lines_read} ({error}); the file is incomplete, "
                "fetch or write it again"
            ) from None
        raise StepError(f"{path}: cannot be read after line {lines_read}: {error}") from None


def checked_text(block: bytes, path: str | Path, first_line: int) -> str:
    """`block` (undecoded lines, each ending in a line break, the first being line `first_line` of `path`)
    decoded; fails clearly on invalid UTF-8 or a NUL byte, naming the line."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + block.count(b"\n", 0, error.start)
        raise StepError(f"{path}: line {line} is not valid UTF-8 ({error.reason})") from None
    if "\x00" in text:
        line = first_line + text.count("\n", 0, text.index("\x00"))
        raise StepError(f"{path}: line {line} holds a NUL byte: the file is binary or corrupt, not text")
    return text


def decode_lines(block: bytes, path: str | Path, first_line: int) -> list[str]:
    """The lines of `block` (as checked_text takes it) without their line ends; fails clearly on invalid UTF-8
    or a NUL byte, naming the line."""
    text = checked_text(block, path, first_line)
    lines = text.split("\n")
    lines.pop()  # after the last line break
    if "\r" in text:
        lines = [line.rstrip("\r") for line in lines]
    return lines


def read_lines(path: str | Path) -> Iterator[str]:
    """Yields the lines of a corpus file without their line ends; fails clearly on invalid UTF-8."""
    path = Path(path)
    first_line = 1
    for chunk in _raw_line_chunks(path, 1000):
        yield from decode_lines(b"".join(chunk), path, first_line)
        first_line += len(chunk)


@dataclass
class LineBlock:
    """`count` lines of each of several aligned corpus files, undecoded (decode_lines decodes them), starting at
    line `first_line`: what a step hands to its worker processes, which decode and check them in parallel."""

    first_line: int
    count: int
    paths: list[Path]
    blocks: list[bytes]

    def decoded(self) -> list[list[str]]:
        return [decode_lines(b, p, self.first_line) for b, p in zip(self.blocks, self.paths, strict=True)]


def read_line_blocks(paths: list[str | Path], size: int) -> Iterator[LineBlock]:
    """Blocks of `size` aligned lines of every file in `paths`; fails if the files differ in length."""
    paths = [Path(p) for p in paths]
    readers = [_raw_line_chunks(p, size) for p in paths]
    first_line = 1
    while True:
        chunks = [next(r, []) for r in readers]
        counts = [len(c) for c in chunks]
        if max(counts) == 0:
            return
        if min(counts) != max(counts):
            shorter, longer = paths[counts.index(min(counts))], paths[counts.index(max(counts))]
            raise StepError(
                f"line counts differ: {shorter} has {first_line - 1 + min(counts)} lines, {longer} has more; "
                "the corpus is not aligned"
            )
        yield LineBlock(first_line, counts[0], paths, [b"".join(c) for c in chunks])
        first_line += counts[0]


def read_pairs(src_path: str | Path, trg_path: str | Path) -> Iterator[tuple[str, str]]:
    """Yields aligned (source, target) lines; fails if the two files differ in length."""
    for block in read_line_blocks([src_path, trg_path], 1000):
        yield from zip(*block.decoded(), strict=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path in the destination's folder; renames it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file private (0600); outputs get the mode any new file gets under the umask.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def encode_lines(lines: list[str]) -> bytes:
    """Lines as write_lines writes them, each with its line break (a line break inside a line becomes a space)."""
    if not lines:
        return b""
    block = "\n".join(lines)
    if block.count("\n") != len(lines) - 1:
        block = "\n".join(line.replace("\n", " ") for line in lines)
    return block.encode("utf-8") + b"\n"


@contextlib.contextmanager
def write_lines(path: str | Path):
    """Opens a corpus for writing (zstd if it ends in .zst); call `.write(line)` per line, no newline."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if path.suffix == ".zst":
            # 1 MB jobs: the multi-threaded compressor's buffers stay small (its default grows them to ~30 MB).
            params = zstandard.ZstdCompressionParameters.from_level(3, threads=-1, job_size=1 << 20)
            compressor = zstandard.ZstdCompressor(compression_params=params).stream_writer(raw, closefd=False)
        elif path.suffix == ".gz":
            compressor = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        else:
            compressor = None
        stream = compressor or raw

        class Writer:
            count = 0

            def write(self, line: str):
                if "\n" in line:
                    line = line.replace("\n", " ")
                stream.write(line.encode("utf-8") + b"\n")
                self.count += 1

            def write_encoded(self, block: bytes, count: int):
                """`count` lines at once, as encode_lines gives them."""
                stream.write(block)
                self.count += count

        writer = Writer()
        yield writer
        if compressor:
            compressor.close()


def write_pairs(src_path: str | Path, trg_path: str | Path, pairs) -> int:
    """Writes (source, target) pairs to two aligned corpus files; returns how many."""
    with write_lines(src_path) as src_out, write_lines(trg_path) as trg_out:
        for src, trg in pairs:
            src_out.write(src)
            trg_out.write(trg)
    return src_out.count


def write_json(path: str | Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )


def dataset_of(folder: str | Path) -> str | None:
    """The dataset a step's output folder holds, as its stats.json names it (None without one)."""
    stats = Path(folder) / "stats.json"
    return read_json(stats).get("dataset") if stats.exists() else None


def read_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StepError(f"input file {path} does not exist") from None


def remove_stale_temporaries(folder: str | Path) -> None:
    """Deletes the temporary files that `atomic_path` leaves behind when a step is killed (`kill -9`
    skips its clean-up), so that a retry's outputs are exactly those of an uninterrupted run."""
    folder = Path(folder)
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def task_name(folder: str | Path) -> str:
    """The task that made an artifacts folder: `runs/<experiment>/<task>/artifacts` locally,
    `$MOZ_FETCHES_DIR/<task>` on Taskcluster."""
    folder = Path(folder)
    return folder.parent.name if folder.name == "artifacts" else folder.name


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
