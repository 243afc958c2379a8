"""Reuse of earlier task groups: `previous-group-ids` and `start-task-prefix` -> taskgraph's `existing_tasks`.

The completed tasks of the listed groups (a later group wins for the same label) and their ancestors become
`existing_tasks`, so the new graph links to them instead of running them again. `start-task-prefix` drops
the tasks whose label starts with it, and every task that depends on them, so those run again. (taskgraph
only replaces a task by an existing one when all its dependencies are replaced too.)
"""

import logging

from taskgraph.util.taskcluster import get_taskcluster_client

logger = logging.getLogger(__name__)

# Tasks of a group that are not pipeline tasks (by `tags.kind` the decision and action tasks carry).
NOT_PIPELINE_KINDS = {"decision-task", "action-callback", "cron-task"}


# Stages named apart from the kind that runs them (taskcluster/kinds/<kind>/kind.yml sets each task's stage).
KIND_OF_STAGE = {"train-teacher-model": "train-teacher", "evaluate-finetuned-student": "evaluate-student"}


def kind_of(stage: str) -> str:
    return KIND_OF_STAGE.get(stage, stage)


def _is_pipeline_task(definition: dict) -> bool:
    kind = definition.get("tags", {}).get("kind")
    name = definition.get("metadata", {}).get("name", "")
    return kind not in NOT_PIPELINE_KINDS and not name.startswith(("Decision", "Action", "PR action"))


def _list_group(queue, group_id: str) -> list[dict]:
    tasks = []
    queue.listTaskGroup(group_id, paginationHandler=lambda response: tasks.extend(response["tasks"]))
    if not tasks:
        raise ValueError(f"previous-group-ids: task group {group_id} has no tasks (is the id right?)")
    return tasks


def existing_tasks_from_groups(
    group_ids: list[str], start_task_prefix: str | None = None, queue=None, start_stage: str | None = None
) -> dict:
    """label -> taskId of the tasks to reuse. `start_stage` (the reference's `start-stage`, a kind) runs the
    tasks of that kind again, and everything after them, as `start_task_prefix` does by label."""
    queue = queue or get_taskcluster_client("queue")
    definitions: dict[str, dict] = {}  # taskId -> task definition
    reused: dict[str, str] = {}  # label -> taskId
    for group_id in group_ids:
        for entry in _list_group(queue, group_id):
            task_id, definition = entry["status"]["taskId"], entry["task"]
            definitions[task_id] = definition
            if entry["status"]["state"] == "completed" and _is_pipeline_task(definition):
                reused[definition["metadata"]["name"]] = task_id
    logger.info("completed tasks in the previous groups: %d", len(reused))

    # Ancestors (possibly in older groups that these groups reused) come along.
    pending = list(reused.values())
    seen = set(pending)
    while pending:
        task_id = pending.pop()
        if task_id not in definitions:
            definitions[task_id] = queue.task(task_id)
        definition = definitions[task_id]
        if not _is_pipeline_task(definition):
            continue
        reused.setdefault(definition["metadata"]["name"], task_id)
        for dependency in definition.get("dependencies", []):
            if dependency not in seen:
                seen.add(dependency)
                pending.append(dependency)

    if start_task_prefix or start_stage:
        restart = {
            task_id
            for label, task_id in reused.items()
            if (start_task_prefix and label.startswith(start_task_prefix))
            or (
                start_stage
                and definitions.get(task_id, {}).get("tags", {}).get("kind") == kind_of(start_stage)
            )
        }
        if not restart:
            what = (
                f"start-task-prefix {start_task_prefix!r}"
                if start_task_prefix
                else f"start-stage {start_stage!r}"
            )
            raise ValueError(f"{what} matches no task of the previous groups")
        # Descendants: every known task one of whose dependencies is restarted, to a fixed point.
        changed = True
        while changed:
            changed = False
            for task_id, definition in definitions.items():
                if task_id not in restart and restart & set(definition.get("dependencies", [])):
                    restart.add(task_id)
                    changed = True
        reused = {label: task_id for label, task_id in reused.items() if task_id not in restart}
        logger.info("start at %s: %d tasks run again", start_task_prefix or start_stage, len(restart))
    return reused
