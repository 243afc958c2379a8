"""Publish a training's checkpoints while it runs, so that a preempted Taskcluster run loses little work.

The worker uploads the artifacts folder when a task ends; a spot instance reclaimed with 30 s notice ends
before that upload finishes, and the retried run then starts over (mozilla/translations #964). While Marian
trains, `CheckpointPublisher` watches the output folder and, at most every CHECKPOINT_UPLOAD_MINUTES
(default 20; it looks every CHECKPOINT_POLL_SECONDS, default 15), uploads the newest complete checkpoint as artifacts of the running task through the Taskcluster
proxy: `public/checkpoints/<updates>/<file>`, then `public/checkpoints/<updates>/manifest.json` with the size
and sha256 of every file. The manifest goes last, so a set without one is incomplete and never used;
`latest_checkpoint()` finds the newest manifest of a run and the resume (taskcluster_resume.py) downloads and
verifies that set.

A checkpoint is complete when none of its files changed for a few seconds (CHECKPOINT_SETTLE_SECONDS,
default 5), nothing changed while the set was copied aside and every .npz is a whole zip; the copy is
uploaded while training goes on. Uploads use the queue's
`object` artifacts (createArtifact, then the object service with the credentials it returns, then
finishArtifact), through the `taskcluster` client. A failed upload is logged and retried at the next
checkpoint: publishing never fails the training.
"""

import json
import logging
import os
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path

from pipeline.common.io import sha256_file

logger = logging.getLogger("checkpoints")

CHECKPOINT_PREFIX = "public/checkpoints/"
MANIFEST = "manifest.json"
PROGRESS_FILE = "model.npz.progress.yml"
# The files Marian writes with a checkpoint; logs and OpusTrainer's state are written all the time and travel
# with whichever checkpoint they are copied with.
CHECKPOINT_FILE = re.compile(r"model\.npz(\.optimizer\.npz|\.best-.+\.npz|\.yml)?$")
MANIFEST_NAME = re.compile(re.escape(CHECKPOINT_PREFIX) + r"(\d+)/" + re.escape(MANIFEST) + "$")


def updates_of(progress: bytes) -> int:
    match = re.search(rb"^batches:\s*(\d+)", progress, re.MULTILINE)
    return int(match.group(1)) if match else 0


def zip_is_complete(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def _checkpoint_state(output_dir: Path) -> dict[str, tuple[int, int]]:
    return {
        path.name: (path.stat().st_mtime_ns, path.stat().st_size)
        for path in output_dir.iterdir()
        if CHECKPOINT_FILE.fullmatch(path.name) or path.name == PROGRESS_FILE
    }


def snapshot(output_dir: Path, patterns: Sequence[str], staging: Path, settle_s: float = 5.0) -> int | None:
    """Copies the newest complete checkpoint into `staging`; returns its update count, or None if there is
    none yet or Marian may be writing one.

    Marian writes a checkpoint as a burst of files (model, progress, optimizer state, in an order that is not
    documented); the set is taken once no file of it changed for `settle_s`, nothing changed while it was
    copied and every copied .npz is a complete zip."""
    try:
        before = _checkpoint_state(output_dir)
    except FileNotFoundError:
        return None  # a file replaced while listing: Marian is saving
    if PROGRESS_FILE not in before:
        return None
    newest = max(mtime for mtime, _ in before.values())
    if time.time_ns() - newest < settle_s * 1e9:
        return None
    files = sorted(
        path
        for path in output_dir.iterdir()
        if path.is_file() and any(fnmatch(path.name, p) for p in patterns)
    )
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for path in files:
            shutil.copyfile(path, staging / path.name)
        unchanged = _checkpoint_state(output_dir) == before
    except FileNotFoundError:
        return None
    if not unchanged or any(
        path.suffix == ".npz" and not zip_is_complete(staging / path.name) for path in files
    ):
        return None
    return updates_of((staging / PROGRESS_FILE).read_bytes())


def proxy_queue():
    import taskcluster

    return taskcluster.Queue({"rootUrl": os.environ["TASKCLUSTER_PROXY_URL"]})


def upload_artifact(queue, task_id: str, run_id: int, name: str, path: Path, expires: str):
    """One `object` artifact: createArtifact, the object service upload, finishArtifact."""
    from taskcluster.upload import uploadFromFile

    import taskcluster

    content_type = "application/json" if name.endswith(".json") else "application/octet-stream"
    answer = queue.createArtifact(
        task_id, str(run_id), name, {"storageType": "object", "expires": expires, "contentType": content_type}
    )
    root = os.environ.get("TASKCLUSTER_ROOT_URL") or os.environ["TASKCLUSTER_PROXY_URL"]
    objects = taskcluster.Object({"rootUrl": root, "credentials": answer["credentials"]})
    with open(path, "rb") as handle:
        uploadFromFile(
            file=handle,
            projectId=answer["projectId"],
            name=answer["name"],
            contentType=content_type,
            contentLength=path.stat().st_size,
            expires=answer["expires"],
            uploadId=answer["uploadId"],
            objectService=objects,
        )
    queue.finishArtifact(task_id, str(run_id), name, {"uploadId": answer["uploadId"]})


def publish(staging: Path, updates: int, task_id: str, run_id: int, queue, expires: str) -> str:
    """Uploads the staged checkpoint, its manifest last; returns the manifest's artifact name."""
    folder = f"{CHECKPOINT_PREFIX}{updates}/"
    manifest = {"updates": updates, "files": {}}
    for path in sorted(staging.iterdir()):
        if path.name == MANIFEST:
            continue
        upload_artifact(queue, task_id, run_id, folder + path.name, path, expires)
        manifest["files"][path.name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    upload_artifact(queue, task_id, run_id, folder + MANIFEST, staging / MANIFEST, expires)
    return folder + MANIFEST


def latest_checkpoint(artifact_names: Sequence[str]) -> tuple[int, str] | None:
    """The (updates, folder) of the newest published checkpoint among a run's artifact names."""
    found = [(int(m.group(1)), n) for n in artifact_names if (m := MANIFEST_NAME.fullmatch(n))]
    if not found:
        return None
    updates, name = max(found)
    return updates, name[: -len(MANIFEST)]


class CheckpointPublisher:
    """While the `with` block runs, uploads new checkpoints of `output_dir` from a background thread.

    Active only inside a Taskcluster task with the proxy (TASK_ID, RUN_ID, TASKCLUSTER_PROXY_URL); on the
    local engine it does nothing (the checkpoints are on the local disk already)."""

    def __init__(
        self,
        output_dir: Path,
        patterns: Sequence[str],
        interval_s: float | None = None,
        poll_s: float | None = None,
    ):
        self.output_dir = output_dir
        self.patterns = list(patterns)
        minutes = float(os.environ.get("CHECKPOINT_UPLOAD_MINUTES", "20"))
        self.interval_s = interval_s if interval_s is not None else minutes * 60
        self.poll_s = poll_s if poll_s is not None else float(os.environ.get("CHECKPOINT_POLL_SECONDS", "15"))
        self.settle_s = float(os.environ.get("CHECKPOINT_SETTLE_SECONDS", "5"))
        self.staging = output_dir / ".checkpoint-upload"
        self.published: list[int] = []
        self._stop = threading.Event()
        self._thread = None
        self._last_upload = float("-inf")
        self._last_progress = None
        task_id, run_id, proxy = (os.environ.get(k) for k in ("TASK_ID", "RUN_ID", "TASKCLUSTER_PROXY_URL"))
        self.active = bool(task_id and run_id and run_id.isdigit() and proxy)
        if self.active:
            self.task_id, self.run_id = task_id, int(run_id)

    def __enter__(self):
        if self.active:
            self._thread = threading.Thread(target=self._run, name="checkpoint-publisher", daemon=True)
            self._thread.start()
            logger.info(
                "publishing checkpoints as artifacts of run %d at most every %.0f s",
                self.run_id,
                self.interval_s,
            )
        return self

    def __exit__(self, *exc):
        if self._thread:
            self._stop.set()
            self._thread.join()
        shutil.rmtree(self.staging, ignore_errors=True)
        return False

    def _expires(self, queue) -> str:
        task_expires = queue.task(self.task_id)["expires"]
        week = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return min(task_expires, week)

    def _run(self):
        queue = None
        while not self._stop.wait(self.poll_s):
            try:
                progress = (self.output_dir / PROGRESS_FILE).stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if progress == self._last_progress or time.monotonic() - self._last_upload < self.interval_s:
                continue
            updates = snapshot(self.output_dir, self.patterns, self.staging, self.settle_s)
            if updates is None or updates in self.published:
                continue
            try:
                queue = queue or proxy_queue()
                name = publish(self.staging, updates, self.task_id, self.run_id, queue, self._expires(queue))
            except Exception as error:  # noqa: BLE001 (publishing must never fail the training)
                logger.warning("could not publish the checkpoint of update %d: %s", updates, error)
                continue
            self.published.append(updates)
            self._last_progress = progress
            self._last_upload = time.monotonic()
            logger.info("published the checkpoint of update %d: %s", updates, name)
