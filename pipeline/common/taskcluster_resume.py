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
import json
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from pipeline.common.io import atomic_path
from pipeline.common.step import StepError

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


def fetch_previous_run(output_dir: Path, patterns: Sequence[str], backoff: float = 1.0) -> int | None:
    """Downloads the artifacts matching `patterns` (names relative to public/build/) of the latest earlier run
    that has any into `output_dir`; files already there are kept. Returns that run's id, or None."""
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
            wanted = [
                name
                for name in _list_artifacts(root, task_id, previous, backoff)
                if name.startswith(ARTIFACT_PREFIX)
                and any(fnmatch.fnmatch(name[len(ARTIFACT_PREFIX) :], p) for p in patterns)
            ]
            if not wanted:
                logger.info("run %d of task %s left nothing to resume from", previous, task_id)
                continue
            for name in wanted:
                relative = name[len(ARTIFACT_PREFIX) :]
                target = output_dir / relative
                if target.exists():
                    continue
                url = (
                    f"{root}/api/queue/v1/task/{task_id}/runs/{previous}/artifacts/{urllib.parse.quote(name)}"
                )
                response = open_url(url, backoff)
                if response is None:
                    raise RequestFailed(f"GET {url}: listed but not found")
                with response, atomic_path(target) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out)
            logger.info("resuming from run %d of task %s: %s", previous, task_id, ", ".join(sorted(wanted)))
            return previous
    except RequestFailed as error:
        logger.error("a Taskcluster request failed: %s", error)
        sys.exit(EXIT_TASKCLUSTER_REQUEST_FAILED)
    return None
