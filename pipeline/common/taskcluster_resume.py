"""Resume a task on Taskcluster from the artifacts of its previous run.

A spot worker that is preempted, or a run that fails with a retryable exit status, makes Taskcluster start a
new run of the same task (RUN_ID 1, 2, ...) on a fresh worker with an empty artifacts folder. A step that calls
`fetch_previous_run()` first downloads what an earlier run of the same task uploaded (for training: Marian's
last checkpoint, its optimizer state and logs) and then continues from it instead of starting over.

Environment (set by the Taskcluster worker): RUN_ID, TASK_ID, and TASKCLUSTER_PROXY_URL (in a task with the
proxy feature) or TASKCLUSTER_ROOT_URL. Without RUN_ID, or with RUN_ID 0, it does nothing (a first run, or
the local engine). A request that still fails after retries exits with EXIT_TASKCLUSTER_REQUEST_FAILED, a
status the task definitions retry on (taskcluster/translations_taskgraph/transforms/step.py).
"""

import fnmatch
import hashlib
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from pipeline.common.io import atomic_path
from pipeline.common.step import StepError
from pipeline.common.taskcluster_checkpoints import MANIFEST, PROGRESS_FILE, latest_checkpoint, updates_of

logger = logging.getLogger("resume")

EXIT_TASKCLUSTER_REQUEST_FAILED = 17
ARTIFACT_PREFIX = "public/build/"
RETRIES = 5


class RequestFailed(Exception):
    """A request that still failed after the retries."""


def root_url() -> str:
    for name in ("TASKCLUSTER_PROXY_URL", "TASKCLUSTER_ROOT_URL"):
        if os.environ.get(name):
            return os.environ[name].rstrip("/")
    raise StepError("RUN_ID is set but neither TASKCLUSTER_PROXY_URL nor TASKCLUSTER_ROOT_URL is")


def open_url(url: str, backoff: float = 1.0):
    """urlopen with retries on connection errors and 5xx; 404 is returned as None."""
    for attempt in range(RETRIES):
        try:
            return urllib.request.urlopen(url, timeout=60)  # noqa: S310 (the Taskcluster API)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            if error.code < 500 or attempt == RETRIES - 1:
                raise RequestFailed(f"GET {url}: HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == RETRIES - 1:
                raise RequestFailed(f"GET {url}: {error}") from None
        time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def _list_artifacts(root: str, task_id: str, run_id: int, backoff: float) -> list[str]:
    names, token = [], None
    while True:
        query = f"?continuationToken={urllib.parse.quote(token)}" if token else ""
        response = open_url(f"{root}/api/queue/v1/task/{task_id}/runs/{run_id}/artifacts{query}", backoff)
        if response is None:
            return names
        with response:
            page = json.load(response)
        names += [artifact["name"] for artifact in page.get("artifacts", [])]
        token = page.get("continuationToken")
        if not token:
            return names


def _download(url: str, target: Path, backoff: float) -> str:
    """Downloads url into target atomically; returns the sha256 of what was written."""
    response = open_url(url, backoff)
    if response is None:
        raise RequestFailed(f"GET {url}: listed but not found")
    digest = hashlib.sha256()
    with response, atomic_path(target) as tmp, open(tmp, "wb") as out:
        for block in iter(lambda: response.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _read(url: str, backoff: float) -> bytes:
    response = open_url(url, backoff)
    if response is None:
        raise RequestFailed(f"GET {url}: listed but not found")
    with response:
        return response.read()


def _fetch_published_checkpoint(
    output_dir: Path, artifacts_url: str, folder: str, patterns: Sequence[str], backoff: float
) -> list[str]:
    """Downloads a checkpoint published during a run (taskcluster_checkpoints.py), checked against its
    manifest; a file that does not match is an error, never a checkpoint to train on."""
    manifest = json.loads(_read(f"{artifacts_url}/{urllib.parse.quote(folder + MANIFEST)}", backoff))
    names = [name for name in manifest["files"] if any(fnmatch.fnmatch(name, p) for p in patterns)]
    for name in names:
        target = output_dir / name
        sha256 = _download(f"{artifacts_url}/{urllib.parse.quote(folder + name)}", target, backoff)
        if sha256 != manifest["files"][name]["sha256"]:
            target.unlink()
            raise RequestFailed(f"{folder}{name}: its sha256 differs from the manifest's")
    return [folder + name for name in names]


def fetch_previous_run(output_dir: Path, patterns: Sequence[str], backoff: float = 1.0) -> int | None:
    """Downloads the artifacts matching `patterns` (names relative to public/build/) of the latest earlier run
    that has any into `output_dir`; files already there are kept. Returns that run's id, or None.

    A checkpoint the run published while it trained (public/checkpoints/<updates>/) is taken instead when
    it is newer than the one in the run's final upload, or when that upload is missing (a preempted run)."""
    run_id = os.environ.get("RUN_ID", "0")
    try:
        run_id = int(run_id)
    except ValueError:
        raise StepError(f"RUN_ID must be a run number, got {run_id!r}") from None
    if run_id <= 0:
        return None
    task_id = os.environ.get("TASK_ID")
    if not task_id:
        raise StepError("RUN_ID is set but TASK_ID is not: cannot find the previous runs' artifacts")
    root = root_url()
    try:
        for previous in range(run_id - 1, -1, -1):
            names = _list_artifacts(root, task_id, previous, backoff)
            wanted = [
                name
                for name in names
                if name.startswith(ARTIFACT_PREFIX)
                and any(fnmatch.fnmatch(name[len(ARTIFACT_PREFIX) :], p) for p in patterns)
            ]
            artifacts_url = f"{root}/api/queue/v1/task/{task_id}/runs/{previous}/artifacts"
            published = latest_checkpoint(names)
            if published:
                final_progress = ARTIFACT_PREFIX + PROGRESS_FILE
                final_updates = (
                    updates_of(_read(f"{artifacts_url}/{urllib.parse.quote(final_progress)}", backoff))
                    if final_progress in names
                    else -1
                )
                if published[0] > final_updates:
                    fetched = _fetch_published_checkpoint(
                        output_dir, artifacts_url, published[1], patterns, backoff
                    )
                    logger.info(
                        "resuming from the checkpoint run %d of task %s published at update %d: %s",
                        previous, task_id, published[0], ", ".join(fetched),
                    )  # fmt: skip
                    return previous
            if not wanted:
                logger.info("run %d of task %s left nothing to resume from", previous, task_id)
                continue
            for name in wanted:
                relative = name[len(ARTIFACT_PREFIX) :]
                target = output_dir / relative
                if target.exists():
                    continue
                _download(f"{artifacts_url}/{urllib.parse.quote(name)}", target, backoff)
            logger.info("resuming from run %d of task %s: %s", previous, task_id, ", ".join(sorted(wanted)))
            return previous
    except RequestFailed as error:
        logger.error("a Taskcluster request failed: %s", error)
        sys.exit(EXIT_TASKCLUSTER_REQUEST_FAILED)
    return None
