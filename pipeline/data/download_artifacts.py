"""Download the outputs of an earlier run (continuation): a vocabulary or a trained model.

--source is either the address of a folder (`https://.../teacher1`, each file fetched as `<source>/<name>`)
or a Taskcluster task id (the files are that task's artifacts `public/build/<name>`, through
TASKCLUSTER_PROXY_URL or TASKCLUSTER_ROOT_URL). Writes each of --files into <output-dir>, atomically; a
rerun after success does nothing, and a rerun after an interruption fetches only what is missing.
A Taskcluster request that still fails after retries exits with status 17 (the task is retried).

A model folder of the reference system names its best model `final.model.npz.best-chrf.npz` (and its decoder
config after it): where `final.model.npz` is missing, those names are fetched instead, and the decoder config is
rewritten to name this project's files.
"""

import argparse
import logging
import re
import shutil
import sys
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


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--source", required=True, help="a folder address (http(s)://...) or a task id")
    parser.add_argument("--files", required=True, help="comma-separated file names to fetch")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--retry-seconds", type=float, default=1.0, help=argparse.SUPPRESS)


def file_urls(source: str, names: list[str]) -> tuple[dict[str, str], bool]:
    """{name: address}, and whether the source is a Taskcluster task."""
    if TASK_ID_RE.match(source):
        root = root_url()
        return {n: f"{root}/api/queue/v1/task/{source}/artifacts/public/build/{n}" for n in names}, True
    if re.match(r"^https?://[^\s]+$", source):
        return {n: f"{source.rstrip('/')}/{n}" for n in names}, False
    raise StepError(f"--source must be an http(s):// folder address or a Taskcluster task id, got {source!r}")


def main(args):
    names = [name.strip() for name in args.files.split(",") if name.strip()]
    bad = [name for name in names if not FILE_NAME_RE.match(name)]
    if not names or bad:
        raise StepError(f"--files must be plain file names, got {args.files!r}")
    out = args.output_dir
    if already_done(out, names):
        return
    urls, from_taskcluster = file_urls(args.source, names)
    for name, url in urls.items():
        if (out / name).exists():
            continue
        response = request(url, from_taskcluster, args.retry_seconds)
        reference_name = REFERENCE_NAMES.get(name)
        if response is None and reference_name:
            url = file_urls(args.source, [reference_name])[0][reference_name]
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
                as_our_decoder_config(tmp)
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


def as_our_decoder_config(path: Path):
    """The reference's decoder config names its own model and vocabulary files: name ours (beside it)."""
    import yaml

    try:
        decoder = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise StepError(f"the downloaded decoder config is not YAML: {error}") from None
    if not isinstance(decoder, dict):
        raise StepError("the downloaded decoder config is not a mapping")
    decoder.update({"relative-paths": True, "models": ["final.model.npz"], "vocabs": ["vocab.spm", "vocab.spm"]})
    path.write_text(yaml.safe_dump(decoder, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
