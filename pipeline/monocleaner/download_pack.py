"""Fetch the monocleaner model pack of a language into `<output-dir>/monocleaner-pack.tar.zst` + `pack.json`.

Packs are the `<lang>.tgz` tarballs of monocleaner's data release (what `monocleaner-download` fetches);
MONOCLEANER_MIRROR replaces the server. The pack must hold a `metadata.yaml`; it is stored re-compressed
with zstd, and `pack.json` says which language and release it is. A language with no pack (404) fails with
the language named: set its monocleaner thresholds to 0.
"""

import argparse
import logging
import os
import shutil
from pathlib import Path

from pipeline.common.download import DownloadError, download
from pipeline.common.io import write_json
from pipeline.common.packs import pack_metadata, store_pack
from pipeline.common.step import StepError, already_done, run_step
from pipeline.data.langs import source_code

logger = logging.getLogger("monocleaner-pack")

SERVER = "https://github.com/bitextor/monocleaner-data/releases/download/v2.0"
MIRROR_VARIABLE = "MONOCLEANER_MIRROR"


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--lang", required=True)
    parser.add_argument("--output-dir", required=True, type=Path)


def main(args):
    outputs = ["monocleaner-pack.tar.zst", "pack.json"]
    if already_done(args.output_dir, outputs):
        return
    code = source_code("monocleaner", args.lang)
    url = f"{os.environ.get(MIRROR_VARIABLE, SERVER).rstrip('/')}/{code}.tgz"
    work = args.output_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        archive = download(url, work / f"{code}.tgz")
    except DownloadError as error:
        if "HTTP 404" in str(error):
            raise StepError(
                f"no monocleaner pack for language {args.lang} at {url}: set its monocleaner thresholds to 0"
            ) from None
        raise
    metadata = pack_metadata(archive, "monocleaner")
    store_pack(archive, args.output_dir / outputs[0])
    write_json(
        args.output_dir / outputs[1],
        {"lang": args.lang, "pack": code, "url": url, "metadata": metadata.splitlines()[:20]},
    )
    shutil.rmtree(work)
    logger.info("monocleaner pack for %s from %s", args.lang, url)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
