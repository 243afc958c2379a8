"""Download the outputs of an earlier run (continuation): a vocabulary or a trained model.

--source is either the address of a folder (`https://.../teacher1`, each file fetched as `<source>/<name>`),
a Taskcluster task id (the files are that task's artifacts `public/build/<name>`, through
TASKCLUSTER_PROXY_URL or TASKCLUSTER_ROOT_URL), or the address of the one file (`.../vocab.en.spm`, as the
reference's configs give vocabularies). --file-sources gives each file its own source (the two vocabularies of
spm-vocab-split). Writes each of --files into <output-dir>, atomically; a
rerun after success does nothing, and a rerun after an interruption fetches only what is missing.
A Taskcluster request that still fails after retries exits with status 17 (the task is retried).

A model folder of the reference system names its best model `final.model.npz.best-chrf.npz` (and its decoder
config after it): where `final.model.npz` is missing, those names are fetched instead, and the decoder config is
rewritten to name this project's files.
"""

import argparse
import json
import logging
import re
import shutil
import sys
import urllib.parse
from pathlib import Path

from pipeline.common.io import atomic_path
from pipeline.common.step import StepError, already_done, run_step
from pipeline.common.taskcluster_resume import (
    EXIT_TASKCLUSTER_REQUEST_FAILED,
    RequestFailed,
    open_url,
    root_url,
)

logger = logging.getLogger("download")

TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
# Our name -> the reference's, tried when ours is not found (HTTP 404).
REFERENCE_NAMES = {
    "final.model.npz": "final.model.npz.best-chrf.npz",
    "final.model.npz.decoder.yml": "final.model.npz.best-chrf.npz.decoder.yml",
}
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FILE_SUFFIXES = (".spm", ".npz", ".yml", ".yaml", ".zst", ".gz", ".bin", ".json")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--source", help="a folder address (http(s)://...) or a task id")
    parser.add_argument("--files", help="comma-separated file names to fetch")
    parser.add_argument(
        "--file-sources",
        help="instead of --source and --files: JSON {file name: its source}, each source a folder address, a "
        "task id or the file's own address",
    )
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--retry-seconds", type=float, default=1.0, help=argparse.SUPPRESS)


def file_urls(source: str, names: list[str]) -> tuple[dict[str, str], bool]:
    """{name: address}, and whether the source is a Taskcluster task."""
    if TASK_ID_RE.match(source):
        root = root_url()
        return {n: f"{root}/api/queue/v1/task/{source}/artifacts/public/build/{n}" for n in names}, True
    if re.match(r"^https?://[^\s]+$", source):
        if is_file_address(source):
            if len(names) != 1:
                raise StepError(f"{source} is one file's address: it cannot give {', '.join(names)}")
            return {names[0]: source}, False
        return {n: f"{source.rstrip('/')}/{n}" for n in names}, False
    raise StepError(f"--source must be an http(s):// folder address or a Taskcluster task id, got {source!r}")


def is_file_address(address: str) -> bool:
    """`.../artifacts/public%2Fbuild%2Fvocab.en.spm` (as the reference's configs give a vocabulary) names a file;
    `.../teacher1` or `.../teacher1/` a folder."""
    last = urllib.parse.unquote(urllib.parse.urlsplit(address).path).rstrip("/").rsplit("/", 1)[-1]
    return not address.endswith("/") and last.endswith(FILE_SUFFIXES)


def sources_of(args) -> dict[str, str]:
    """{file name: its source} from --file-sources, or from --source and --files."""
    if args.file_sources:
        if args.source or args.files:
            raise StepError("give --file-sources, or --source with --files, not both")
        try:
            sources = json.loads(args.file_sources)
        except json.JSONDecodeError as error:
            raise StepError(f"--file-sources is not JSON: {error}") from None
        if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
            raise StepError("--file-sources must map file names to sources")
        names = list(sources)
    else:
        if not args.source or not args.files:
            raise StepError("give --source with --files (or --file-sources)")
        names = [name.strip() for name in args.files.split(",") if name.strip()]
        sources = dict.fromkeys(names, args.source)
    bad = [name for name in names if not FILE_NAME_RE.match(name)]
    if not names or bad:
        raise StepError(f"--files must be plain file names, got {', '.join(bad) or 'none'}")
    return sources


def main(args):
    sources = sources_of(args)
    names = list(sources)
    out = args.output_dir
    if already_done(out, names):
        return
    urls, from_taskcluster = {}, False
    for name, source in sources.items():
        url, from_task = file_urls(source, [name])
        urls.update(url)
        from_taskcluster |= from_task
    for name, url in urls.items():
        if (out / name).exists():
            continue
        response = request(url, from_taskcluster, args.retry_seconds)
        reference_name = REFERENCE_NAMES.get(name)
        if response is None and reference_name:
            url = file_urls(sources[name], [reference_name])[0][reference_name]
            response = request(url, from_taskcluster, args.retry_seconds)
        else:
            reference_name = None
        if response is None:
            raise StepError(f"{urls[name]} does not exist (HTTP 404): check the continuation source")
        with response, atomic_path(out / name) as tmp, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
            expected = response.headers.get("Content-Length")
            if expected is not None and f.tell() != int(expected):
                raise StepError(f"{url}: got {f.tell()} bytes of {expected} (connection cut)")
            f.close()
            if reference_name and name.endswith(".decoder.yml"):
                as_our_decoder_config(tmp, joint_vocab="vocab.spm" in names)
        logger.info("fetched %s%s", name, f" (the reference's {reference_name})" if reference_name else "")


def request(url: str, from_taskcluster: bool, retry_seconds: float):
    """The open response, or None for HTTP 404; a request that keeps failing exits 17 on Taskcluster."""
    try:
        return open_url(url, retry_seconds)
    except RequestFailed as error:
        if from_taskcluster:
            logger.error("a Taskcluster request failed: %s", error)
            sys.exit(EXIT_TASKCLUSTER_REQUEST_FAILED)
        raise StepError(f"cannot download {url}: {error}") from None


def as_our_decoder_config(path: Path, joint_vocab: bool):
    """The reference's decoder config names its own model and vocabulary files: name ours (beside it): the
    shared vocab.spm, or the reference's own per-language vocabularies by their file names."""
    import yaml

    try:
        decoder = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise StepError(f"the downloaded decoder config is not YAML: {error}") from None
    if not isinstance(decoder, dict):
        raise StepError("the downloaded decoder config is not a mapping")
    vocabs = decoder.get("vocabs")
    if joint_vocab:
        vocabs = ["vocab.spm", "vocab.spm"]
    elif isinstance(vocabs, list) and len(vocabs) == 2:
        vocabs = [Path(str(v)).name for v in vocabs]
    else:
        raise StepError("the downloaded decoder config names no source and target vocabularies")
    decoder.update({"relative-paths": True, "models": ["final.model.npz"], "vocabs": vocabs})
    path.write_text(yaml.safe_dump(decoder, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
