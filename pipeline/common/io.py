"""Reading and writing corpora: one sentence a line, plain, gzip or zstd, always strict UTF-8.

Every output is written to a temporary file next to its destination and renamed into place only once
complete, so a killed step never leaves a file that a retry would trust.
"""

import contextlib
import errno
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from pipeline.common.step import StepError


class TruncatedError(OSError):
    """A compressed file ends in the middle of a frame: it was cut short (an interrupted download or copy)."""


PIECE = 1 << 22  # bytes of decompressed text read at once
COMPRESSED_PIECE = 1 << 17  # bytes of a zstd file decompressed at once


def _zstd_pieces(file) -> Iterator[bytes]:
    """The decompressed text of every frame of a zstd file; raises TruncatedError if the last frame is
    incomplete (zstandard's stream_reader returns what it has at the end of a cut file without complaint, which
    would make a truncated corpus look like a shorter one)."""
    decompressor = None
    # Small compressed reads: a 1 MB read of very repetitive text decompresses to tens of MB at once.
    while chunk := file.read(COMPRESSED_PIECE):
        while chunk:
            if decompressor is None or decompressor.eof:
                decompressor = zstandard.ZstdDecompressor().decompressobj()
            if piece := decompressor.decompress(chunk):
                yield piece
            chunk = decompressor.unused_data if decompressor.eof else b""
    if decompressor is not None and not decompressor.eof:
        raise TruncatedError("the zstd stream ends in the middle of a frame: the file is truncated")


def _decompressed_pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as file:
        if path.suffix == ".zst":
            yield from _zstd_pieces(file)
            return
        stream = gzip.GzipFile(fileobj=file, mode="rb") if path.suffix == ".gz" else file
        while piece := stream.read(PIECE):
            yield piece


UTF8_BOM = b"\xef\xbb\xbf"


def _checked_start(piece: bytes, path: Path) -> bytes:
    """The first piece of a file without a UTF-8 byte-order mark (Windows editors write one; kept, it would
    stick to the first sentence). A file whose lines end in a lone carriage return (classic Mac OS) is refused:
    read as one line, it would pair its whole text with line 1 of the other side."""
    if piece.startswith(UTF8_BOM):
        piece = piece[len(UTF8_BOM) :]
    lone_returns = piece.count(b"\r") - piece.count(b"\r\n")
    if lone_returns > piece.count(b"\n"):
        raise StepError(
            f"{path}: lines end in a carriage return alone (classic Mac OS line ends), which would be read "
            "as one line; convert them to newlines first, e.g. `tr '\\r' '\\n' < FILE > FILE.unix`"
        )
    return piece


def _raw_line_blocks(path: Path, size: int) -> Iterator[tuple[bytes, int]]:
    """The lines of a corpus file `size` at a time (the last block may hold fewer) as (undecoded lines, each
    ending in a line break, how many); a last line without a line break gets one. A cut or unreadable file fails
    clearly, naming the last line read."""
    import numpy as np  # here: most steps that read a corpus do not need it otherwise

    if not path.exists():
        raise StepError(f"input file {path} does not exist")
    lines_read = 0
    try:
        tail, tail_ends = b"", np.zeros(0, dtype=np.int64)  # lines not handed out yet, where they end
        for number, piece in enumerate(_decompressed_pieces(path)):
            if number == 0:
                piece = _checked_start(piece, path)
            ends = np.concatenate(
                [tail_ends, np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10) + len(tail)]
            )
            data, start, handed = tail + piece, 0, 0
            while len(ends) - handed >= size:
                end = int(ends[handed + size - 1]) + 1
                yield data[start:end], size
                lines_read += size
                start, handed = end, handed + size
            tail, tail_ends = data[start:], ends[handed:] - start
        if tail:
            yield (
                (tail if tail.endswith(b"\n") else tail + b"\n"),
                len(tail_ends) + (not tail.endswith(b"\n")),
            )
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
    for block, count in _raw_line_blocks(path, 1000):
        yield from decode_lines(block, path, first_line)
        first_line += count


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
    readers = [_raw_line_blocks(p, size) for p in paths]
    first_line = 1
    while True:
        chunks = [next(r, (b"", 0)) for r in readers]
        counts = [count for _, count in chunks]
        if max(counts) == 0:
            return
        if min(counts) != max(counts):
            shorter, longer = paths[counts.index(min(counts))], paths[counts.index(max(counts))]
            raise StepError(
                f"line counts differ: {shorter} has {first_line - 1 + min(counts)} lines, {longer} has more; "
                "the corpus is not aligned"
            )
        yield LineBlock(first_line, counts[0], paths, [block for block, _ in chunks])
        first_line += counts[0]


def read_pairs(src_path: str | Path, trg_path: str | Path) -> Iterator[tuple[str, str]]:
    """Yields aligned (source, target) lines; fails if the two files differ in length."""
    for block in read_line_blocks([src_path, trg_path], 1000):
        yield from zip(*block.decoded(), strict=True)


def count_lines(path: str | Path) -> int:
    """The number of lines of a corpus file (streamed)."""
    return sum(block.count for block in read_line_blocks([path], 10_000))


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
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            # For step.storage_error_message: which output filled the disk, and how far it got.
            error.filename = error.filename or str(path)
            with contextlib.suppress(OSError):
                error.partial_bytes = os.stat(tmp).st_size
        raise
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


def compress_lines(block: bytes) -> bytes:
    """Encoded lines (as encode_lines gives them) as one zstd frame, for Writer.write_frame: a step's workers
    compress their own output, so that the one process writing the file does not compress for all of them."""
    return zstandard.ZstdCompressor(level=3).compress(block)


@contextlib.contextmanager
def write_lines(path: str | Path):
    """Opens a corpus for writing (zstd if it ends in .zst); call `.write(line)` per line, no newline."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:

        class Writer:
            count = 0
            _compressor = None
            _frames = False

            def _stream(self):
                """The compressor, opened on first use (a file of frames only needs none), or the file."""
                if self._compressor is None and path.suffix == ".zst":
                    # 1 MB jobs: the multi-threaded compressor's buffers stay small (its default grows them
                    # to ~30 MB).
                    params = zstandard.ZstdCompressionParameters.from_level(3, threads=-1, job_size=1 << 20)
                    compressor = zstandard.ZstdCompressor(compression_params=params)
                    self._compressor = compressor.stream_writer(raw, closefd=False)
                elif self._compressor is None and path.suffix == ".gz":
                    self._compressor = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
                return self._compressor or raw

            def write(self, line: str):
                if "\n" in line:
                    line = line.replace("\n", " ")
                self._stream().write(line.encode("utf-8") + b"\n")
                self.count += 1

            def write_encoded(self, block: bytes, count: int):
                """`count` lines at once, as encode_lines gives them."""
                self._stream().write(block)
                self.count += count

            def write_frame(self, frame: bytes, count: int):
                """`count` lines at once as compress_lines gives them (a .zst file is a series of frames)."""
                if path.suffix != ".zst":
                    raise ValueError(f"{path}: compressed frames go to .zst files only")
                if self._compressor is not None:
                    self._compressor.flush(zstandard.FLUSH_FRAME)
                raw.write(frame)
                self._frames = True
                self.count += count

            def close(self):
                if self._compressor is None and not self._frames and path.suffix in (".zst", ".gz"):
                    self._stream()  # an empty file is still a valid (empty) compressed stream
                if self._compressor is not None:
                    self._compressor.close()

        writer = Writer()
        yield writer
        writer.close()


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
