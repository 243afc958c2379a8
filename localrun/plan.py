"""The local engine's view of the task graph: the tasks that run a step, in order, with a digest each.

A task's digest covers what decides its outputs (translations_taskgraph/source_digest.py: the step's
definition, the code it runs, its local input files) and its upstream tasks' digests, so a changed config or
code change reruns exactly the tasks it affects.
"""

import hashlib
import json
import sys
from pathlib import Path

from pipeline.common.io import atomic_path
from translations_taskgraph.source_digest import step_digest


def task_digest(step: dict, upstream_digests: list[str]) -> str:
    """What decides the task's outputs (the same step digest as the Taskcluster cache key's) and its upstream
    tasks' digests."""
    payload = json.dumps({"step": step_digest(step), "upstream": sorted(upstream_digests)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_plan(task_graph) -> dict:
    """{"order": [labels], "targets": [labels], "tasks": {label: {...}}} from a taskgraph TaskGraph.

    Tasks without a step (docker images: Taskcluster-only) are dropped along with the edges to them.
    """
    runnable = {label: task for label, task in task_graph.tasks.items() if "step" in task.attributes}
    order = [label for label in task_graph.graph.visit_postorder() if label in runnable]
    tasks = {}
    for label in order:
        task = runnable[label]
        dependencies = sorted(dep for dep in task.dependencies.values() if dep in runnable)
        step = task.attributes["step"]
        tasks[label] = {
            "kind": task.kind,
            "stage": task.attributes.get("stage"),
            "description": task.description,
            "step": step,
            "dependencies": dependencies,
            "digest": task_digest(step, [tasks[dep]["digest"] for dep in dependencies]),
        }
    dependents = {dep for task in tasks.values() for dep in task["dependencies"]}
    return {"order": order, "targets": [label for label in order if label not in dependents], "tasks": tasks}


TRAINING_MODULE = "pipeline.train.train"


def task_threads(plan: dict, label: str, cores: int) -> int:
    """Threads for a task on `cores` cores. A task asking for all of them gets them, except trainings that
    become ready together (ensemble members: same kind, same dependencies), which share them: on 2 cores two
    1-thread trainings side by side took 191.6 s where one 2-thread training after the other took 252.1 s
    (`task bench-threads -- --updates 150 --pairs 8000`, idle host), and sync SGD learns the same per update
    with 1 thread as with 2."""
    task = plan["tasks"][label]
    wanted = task["step"]["resources"]["cpus"]
    if wanted != "all":
        return min(int(wanted), cores)
    if task["step"].get("module") != TRAINING_MODULE:
        return cores
    siblings = sum(
        1
        for other in plan["tasks"].values()
        if other["kind"] == task["kind"] and other["dependencies"] == task["dependencies"]
    )
    return max(1, cores // siblings)


def write_plan(plan: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(plan, indent=1, sort_keys=True))


def task_states(plan: dict, run_dir: Path) -> dict[str, str]:
    """{label: state} for every task of the plan, in plan order."""
    return {label: task_state(run_dir, label, plan["tasks"][label]["digest"]) for label in plan["order"]}


def task_state(run_dir: Path, label: str, digest: str) -> str:
    """done (finished with this definition), stale (finished with another), started, or pending."""
    done = run_dir / label / "done.json"
    if done.exists():
        try:
            recorded = json.loads(done.read_text()).get("digest")
        except (OSError, ValueError):
            recorded = None
        return "done" if recorded == digest else "stale"
    return "started" if (run_dir / label / "artifacts").exists() else "pending"


def config_and_run_dir(config_path: Path, runs_dir: Path) -> tuple[dict, Path]:
    """The validated training config and its run folder (`<runs_dir>/<experiment name>`), for the commands that
    look at or act on one run (status, run-task, tensorboard); a bad config exits with status 2, naming the key."""
    from translations_taskgraph.training_config import ConfigError, load_training_config

    try:
        config = load_training_config(config_path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return config, (runs_dir / config["experiment"]["name"]).resolve()
