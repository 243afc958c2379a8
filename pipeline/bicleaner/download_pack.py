"""Fetch the bicleaner-ai model pack of a language pair into `<output-dir>/bicleaner-pack.tar.zst` + `pack.json`.

Tries, in order, the pack of <src>-<trg>, of <trg>-<src> (bicleaner-ai scores either direction once told the
columns) and the multilingual en-xx pack; a 404 moves on to the next. Packs are the `full-<l1>-<l2>.tgz`
tarballs of bicleaner-ai's release page (BICLEANER_MIRROR replaces the server). The pack must hold a
`metadata.yaml`; it is stored re-compressed with zstd, and `pack.json` says which pair it is for and whether
the columns must be swapped.
"""

import argparse
import logging
import os
from pathlib import Path

from pipeline.common.download import DownloadError, download
from pipeline.common.io import write_json
from pipeline.common.packs import pack_metadata, store_pack
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


def main(args):
    outputs = ["bicleaner-pack.tar.zst", "pack.json"]
    if already_done(args.output_dir, outputs):
        return
    work = args.output_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    tried = []
    # Packs are named by language, without a script (zh_hant -> zh).
    for candidate in candidates(args.src.partition("_")[0], args.trg.partition("_")[0]):
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
    metadata = pack_metadata(archive, "bicleaner-ai")
    store_pack(archive, args.output_dir / outputs[0])
    write_json(
        args.output_dir / outputs[1],
        {"pack": name, "url": url, "swapped": swapped, "src": args.src, "trg": args.trg,
         "metadata": metadata.splitlines()[:20]},
    )  # fmt: skip
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    logger.info("bicleaner-ai pack %s (columns swapped: %s)", name, swapped)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
