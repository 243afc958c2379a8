"""Fetch the bicleaner-ai model pack of a language pair into `<output-dir>/bicleaner-pack.tar.zst` + `pack.json`.

Tries, in order, the pack of <src>-<trg>, of <trg>-<src> (bicleaner-ai scores either direction once told the
columns) and the multilingual en-xx pack; a 404 moves on to the next. Packs are the `full-<l1>-<l2>.tgz`
tarballs of bicleaner-ai's release page (BICLEANER_MIRROR replaces the server). The pack must hold a
`metadata.yaml`; it is stored re-compressed with zstd, and `pack.json` says which pair it is for and whether
the columns must be swapped.
"""

import argparse
import gzip
import io
import logging
import os
import tarfile
from pathlib import Path

import zstandard

from pipeline.common.download import DownloadError, download
from pipeline.common.io import atomic_path, write_json
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("bicleaner-pack")

SERVER = "https://github.com/bitextor/bicleaner-ai-data/releases/latest/download"
MIRROR_VARIABLE = "BICLEANER_MIRROR"


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--output-dir", required=True, type=Path)


def candidates(src: str, trg: str) -> list[tuple[str, bool]]:
    """(pack name, columns swapped) in the order tried."""
    multilingual = ("full-large-en-xx", src != "en")
    return [(f"full-{src}-{trg}", False), (f"full-{trg}-{src}", True), multilingual]


def base_url() -> str:
    return os.environ.get(MIRROR_VARIABLE, SERVER).rstrip("/")


def metadata_of(archive: Path) -> str:
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).name == "metadata.yaml":
                    return tar.extractfile(member).read().decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise StepError(f"the bicleaner-ai pack {archive.name} is not a valid tarball: {error}") from None
    raise StepError(
        f"the bicleaner-ai pack {archive.name} has no metadata.yaml: it is not a bicleaner-ai model"
    )


def main(args):
    outputs = ["bicleaner-pack.tar.zst", "pack.json"]
    if already_done(args.output_dir, outputs):
        return
    work = args.output_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    tried = []
    for candidate in candidates(args.src, args.trg):
        name, swapped = candidate
        url = f"{base_url()}/{name}.tgz"
        try:
            archive = download(url, work / f"{name}.tgz")
            break
        except DownloadError as error:
            if "HTTP 404" not in str(error):
                raise
            tried.append(url)
            logger.info("no pack at %s", url)
    else:
        raise StepError(f"no bicleaner-ai pack for {args.src}-{args.trg}: tried {', '.join(tried)}")
    metadata = metadata_of(archive)
    with (
        atomic_path(args.output_dir / outputs[0]) as tmp,
        open(tmp, "wb") as out,
        gzip.open(archive) as tar_stream,
        zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as zst,
    ):
        while block := tar_stream.read(1 << 20):
            zst.write(block)
    write_json(
        args.output_dir / outputs[1],
        {"pack": name, "url": url, "swapped": swapped, "src": args.src, "trg": args.trg,
         "metadata": metadata.splitlines()[:20]},
    )  # fmt: skip
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    logger.info("bicleaner-ai pack %s (columns swapped: %s)", name, swapped)


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


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
