"""Model packs (bicleaner-ai, monocleaner): tarballs with a `metadata.yaml`, downloaded once by a fetch task,
stored re-compressed with zstd and unpacked by the scoring tasks."""

import gzip
import io
import tarfile
from pathlib import Path

import zstandard

from pipeline.common.io import atomic_path
from pipeline.common.step import StepError


def pack_metadata(archive: Path, tool: str) -> str:
    """The text of the pack's metadata.yaml; refuses a file that is no tarball or holds none."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).name == "metadata.yaml":
                    return tar.extractfile(member).read().decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise StepError(f"the {tool} pack {archive.name} is not a valid tarball: {error}") from None
    raise StepError(f"the {tool} pack {archive.name} has no metadata.yaml: it is not a {tool} model")


def store_pack(archive: Path, destination: Path) -> None:
    """A downloaded .tgz pack, re-compressed with zstd into `destination` (atomically)."""
    with (
        atomic_path(destination) as tmp,
        open(tmp, "wb") as out,
        gzip.open(archive) as tar_stream,
        zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as zst,
    ):
        while block := tar_stream.read(1 << 20):
            zst.write(block)


def extract_pack(pack: Path, destination: Path) -> Path:
    """Unpacks a stored pack; returns the folder holding metadata.yaml."""
    with open(pack, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        data = io.BytesIO(stream.read())
    with tarfile.open(fileobj=data, mode="r:") as tar:
        tar.extractall(destination, filter="data")
    found = sorted(destination.rglob("metadata.yaml"))
    if not found:
        raise StepError(f"{pack} holds no metadata.yaml")
    return found[0].parent
