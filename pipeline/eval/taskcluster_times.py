"""Each stage's time against preflight's estimate, for the report of a Taskcluster run.

The report task reads its own definition: its task group, and `extra.parent`, the decision or `train` action
task that made the graph and published preflight's estimate of it (`public/estimate.json`, written by
taskcluster/translations_taskgraph/estimate_artifact.py). From the task group come the seconds of every task
that completed in it (all its runs, from started to resolved: a run lost to a preemption cost worker time too).
Tasks reused from earlier groups did not run here and are not counted.
"""

import logging
from datetime import datetime

from taskgraph.util.taskcluster import get_artifact, get_taskcluster_client

from pipeline.common.stage_times import compare_with_run

logger = logging.getLogger(__name__)


def _seconds(run: dict) -> float:
    return (datetime.fromisoformat(run["resolved"]) - datetime.fromisoformat(run["started"])).total_seconds()


def group_seconds(entries: list[dict], own_task_id: str) -> dict[str, float]:
    """label -> worker seconds of each completed task of a listTaskGroup answer, this task left out."""
    seconds = {}
    for entry in entries:
        status = entry["status"]
        if status["state"] != "completed" or status["taskId"] == own_task_id:
            continue
        runs = [run for run in status.get("runs", []) if run.get("started") and run.get("resolved")]
        if runs:
            seconds[entry["task"]["metadata"]["name"]] = sum(_seconds(run) for run in runs)
    return seconds


def taskcluster_stage_times(task_id: str) -> dict:
    """The stage times of the group of task `task_id` (the report task), in the shape of the local engine's."""
    queue = get_taskcluster_client("queue")
    definition = queue.task(task_id)
    parent = definition.get("extra", {}).get("parent")
    if not parent:
        raise ValueError(f"task {task_id} names no parent task (extra.parent) whose graph it belongs to")
    estimate = get_artifact(parent, "public/estimate.json")
    entries: list[dict] = []
    queue.listTaskGroup(
        definition["taskGroupId"], paginationHandler=lambda page: entries.extend(page["tasks"])
    )
    comparison = compare_with_run(estimate, group_seconds(entries, task_id))
    comparison["engine"] = "taskcluster"
    logger.info("stage times from task group %s (graph of task %s)", definition["taskGroupId"], parent)
    return comparison
