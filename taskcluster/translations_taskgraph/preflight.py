"""Preflight check of a training config: what the Taskcluster `train` action would run, without a network.

    python -m translations_taskgraph.preflight --config FILE [--output-dir DIR] [--json FILE]
        [--run-dir runs/NAME [--cores N] [--gpus N]] [--engine taskcluster|local]

It runs the `train` action callback in test mode (the same code the action task runs, with the same schema
first), writes the graph artifacts (`DIR/artifacts/`: parameters.yml, actions.json, full-task-graph.json,
target-tasks.json, task-graph.json, ...) and prints the tasks by stage, the worker types, and the estimate of
every stage from the cost model (cost_model.py): GPU-hours, CPU-hours, wall time with the configured parallelism
(one worker per task on Taskcluster, so split-chunks divides the translation stages' wall time), disk, and the
dataset sizes with how each is known. The estimate goes to `DIR/estimate.json` (or --json) with every rate and
its source. With --run-dir, the estimate is for the local engine and is compared, per stage, with the seconds
of the run's finished tasks (`<label>/done.json`). The index is not consulted (offline), so every task counts
as to run.
"""

import argparse
import contextlib
import json
import logging
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml
from taskgraph.actions.registry import trigger_action_callback
from taskgraph.optimize.base import OptimizationStrategy

from pipeline.common.stage_times import compare_with_run  # noqa: F401 (preflight's, shared with the report step)
from translations_taskgraph import cost_model
from translations_taskgraph.component_checks import check_components
from translations_taskgraph.dataset_checks import check_datasets
from translations_taskgraph.render import REPO_ROOT, TASKCLUSTER_DIR, build_parameters
from translations_taskgraph.training_config import STAGES, ConfigError, load_training_config

# Offline: an `index-search` optimization that never looks anything up (taskgraph's optimize_strategies).
OFFLINE_STRATEGIES = {"index-search": OptimizationStrategy()}

# The cost model of every kind (rates with their sources, sizes from the config): cost_model.py.
count_local_pairs = cost_model.count_lines


def _devices(task: dict, worker_gpus: dict[str, int], engine: str, cores: int | None, gpus: int) -> dict:
    """The GPUs and cores a task gets: its worker's on Taskcluster, the machine's on the local engine."""
    if engine == "local":
        wanted = ((task["attributes"].get("step") or {}).get("resources") or {}).get("gpus", 0) or 0
        return {"engine": "local", "gpus": min(int(wanted), gpus), "cores": cores or os.cpu_count() or 1}
    worker_gpus_count = worker_gpus.get(task["task"]["workerType"], 0)
    kind = "gpu" if worker_gpus_count else "cpu"
    return {"engine": "taskcluster", "gpus": worker_gpus_count, "cores": cost_model.WORKER_CORES[kind]}


def estimate(
    config: dict,
    graph: dict,
    worker_gpus: dict[str, int],
    engine: str = "taskcluster",
    cores: int | None = None,
    gpus: int = 0,
    count=cost_model.count_lines,
) -> dict:
    """GPU-hours, CPU-hours, wall time and disk of the tasks in `graph` (task-graph.json), per stage and in
    all, from the config's sizes and the cost model. `engine`: "taskcluster" (each task on its own worker, so
    the tasks of a stage, chunks included, run side by side) or "local" (`cores` and `gpus` of one machine)."""
    sizes, notes = cost_model.dataset_sizes(config, count)
    flows = cost_model.corpus_sizes(config, sizes)
    if engine == "local":  # the local engine runs the tasks that run a step (no docker images)
        graph = {task_id: task for task_id, task in graph.items() if task["attributes"].get("step")}
    tasks = {task["label"]: task for task in graph.values()}
    label_of = {task_id: task["label"] for task_id, task in graph.items()}
    costs = {
        label: cost_model.task_cost(
            task, config, sizes, flows, _devices(task, worker_gpus, engine, cores, gpus)
        )
        for label, task in tasks.items()
    }
    machine_cores = cores or os.cpu_count() or 1
    finish_at: dict[str, float] = {}

    def finish(label) -> float:
        if label not in finish_at:
            start = max(
                (finish(label_of[dep]) for dep in tasks[label]["dependencies"].values() if dep in label_of),
                default=0.0,
            )
            finish_at[label] = start + costs[label]["seconds"]
        return finish_at[label]

    order = {stage: i for i, stage in enumerate(STAGES)}
    by_stage: dict[str, list[dict]] = defaultdict(list)
    for cost in costs.values():
        by_stage[cost["stage"]].append(cost)
    stages = []
    for stage, items in by_stage.items():
        longest = max(c["seconds"] for c in items)
        if engine == "local":
            wall = max(longest, sum(c["seconds"] * c["threads"] for c in items) / machine_cores)
        else:
            wall = longest  # one worker per task: the stage's tasks (chunks, members, datasets) side by side
        stages.append(
            {
                "stage": stage,
                "kind": items[0]["kind"],
                "tasks": len(items),
                "gpu_hours": sum(c["gpu_seconds"] for c in items) / 3600,
                "cpu_hours": sum(c["cpu_seconds"] for c in items) / 3600,
                "wall_hours": wall / 3600,
                "disk_gb": sum(c["disk_bytes"] for c in items) / 1e9,
                # what the longest task works on (the one that sets the stage's wall time on Taskcluster)
                "basis": max(items, key=lambda c: c["seconds"])["basis"],
            }
        )
    stages.sort(key=lambda s: (order.get(s["stage"], order.get(s["kind"], len(order))), s["stage"]))
    wall = max((finish(label) for label in tasks), default=0.0)
    if engine == "local":
        wall = max(wall, sum(c["seconds"] * c["threads"] for c in costs.values()) / machine_cores)
    total_gpu = sum(c["gpu_seconds"] for c in costs.values())
    teachers = sum(c["gpu_seconds"] for c in costs.values() if c["kind"] == "train-teacher")
    return {
        "engine": engine,
        "sizes": {f"{c}/{n}": v for (c, n), v in sizes.items()},
        "corpora": flows,
        "stages": stages,
        "tasks": costs,
        "gpu_hours": round(total_gpu / 3600, 1),
        "cpu_hours": round(sum(c["cpu_seconds"] for c in costs.values()) / 3600, 1),
        "wall_hours": round(wall / 3600, 1),
        "disk_gb": round(sum(c["disk_bytes"] for c in costs.values()) / 1e9, 1),
        "teacher_share_of_gpu_hours": round(teachers / total_gpu, 3) if total_gpu else 0.0,
        "notes": notes,
        "rates": cost_model.rates(),
    }


def worker_gpu_counts() -> dict[str, int]:
    """workerType -> GPUs, from taskcluster/config.yml."""
    graph_config = yaml.safe_load((TASKCLUSTER_DIR / "config.yml").read_text())
    counts = {}
    for alias, worker in graph_config["workers"]["aliases"].items():
        env = graph_config["worker-env"].get(alias.removesuffix("-standard"), {})
        counts[worker["worker-type"]] = len(env.get("GPUS", "").split())
    return counts


def run_preflight(config_path: Path, output_dir: Path, **engine) -> dict:
    """Runs the train callback in test mode in `output_dir`; returns the summary. `engine`: estimate's
    engine, cores and gpus."""
    raw = yaml.safe_load(config_path.read_text())
    config = load_training_config(config_path)  # the message names the file and every bad key
    parameters = build_parameters(
        config, optimize_strategies="translations_taskgraph.preflight:OFFLINE_STRATEGIES"
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    os.environ.setdefault("TASK_ID", "PreflightCheck00000000")
    os.chdir(output_dir)
    try:
        trigger_action_callback(
            task_group_id="PreflightCheck00000000",
            task_id=None,
            input=raw,
            callback="train",
            parameters=dict(parameters),
            root=str(TASKCLUSTER_DIR),
            test=True,
        )
    finally:
        os.chdir(previous)
        import taskgraph.create
        import taskgraph.util.taskcluster

        taskgraph.create.testing = False
        taskgraph.util.taskcluster.testing = False
    artifacts = output_dir / "artifacts"
    graph = json.loads((artifacts / "task-graph.json").read_text())
    by_stage: dict[str, list[str]] = defaultdict(list)
    for task in graph.values():
        by_stage[task["attributes"].get("stage", task["attributes"].get("kind", "other"))].append(
            task["label"]
        )
    return {
        "config": config,
        "artifacts": artifacts,
        "by_stage": by_stage,
        "worker_types": Counter(task["task"]["workerType"] for task in graph.values()),
        "estimate": estimate(config, graph, worker_gpu_counts(), **engine),
    }


def _number(value: float, digits: int = 1) -> str:
    return "-" if not value else f"{value:,.{digits}f}" if value >= 0.05 else "<0.1"


def stage_table(estimate: dict) -> list[str]:
    """The per-stage table: tasks, GPU-hours, CPU-hours, wall time with the configured parallelism, disk."""
    lines = [
        f"  {'stage':<46} {'tasks':>5} {'GPU-h':>8} {'CPU-h':>8} {'wall h':>7} {'disk GB':>8}  longest task's work"
    ]
    for row in estimate["stages"]:
        lines.append(
            f"  {row['stage']:<46} {row['tasks']:>5} {_number(row['gpu_hours']):>8} "
            f"{_number(row['cpu_hours']):>8} {_number(row['wall_hours']):>7} {_number(row['disk_gb']):>8}  "
            f"{row['basis']}"
        )
    tasks = sum(row["tasks"] for row in estimate["stages"])
    lines.append(
        f"  {'total (wall: the critical path)':<46} {tasks:>5} {_number(estimate['gpu_hours']):>8} "
        f"{_number(estimate['cpu_hours']):>8} {_number(estimate['wall_hours']):>7} {_number(estimate['disk_gb']):>8}"
    )
    return lines


def size_lines(notes: list[dict]) -> list[str]:
    """The datasets' sizes, grouped by how each is known (counted, published, unknown and assumed)."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for note in notes:
        groups[(note["category"], note["size"])].append(note["dataset"])
    lines = ["dataset sizes:"]
    for (category, how), names in groups.items():
        lines.append(f"  {category}: {how}: {', '.join(names)}")
    return lines


def print_summary(summary: dict) -> None:
    config = summary["config"]
    experiment = config["experiment"]
    total = sum(len(labels) for labels in summary["by_stage"].values())
    print(
        f"{experiment['name']} ({experiment['src']}-{experiment['trg']}), target stage {config['target-stage']}: "
        f"{total} tasks would run"
    )
    order = {stage: i for i, stage in enumerate(STAGES)}
    for stage, labels in sorted(summary["by_stage"].items(), key=lambda item: order.get(item[0], -1)):
        print(f"  {stage}: {len(labels)}")
        for label in sorted(labels):
            print(f"      {label}")
    print("worker types:")
    for worker_type, count in sorted(summary["worker_types"].items()):
        print(f"  {worker_type}: {count}")
    estimate = summary["estimate"]
    where = (
        "Taskcluster, one worker per task: a stage's tasks (datasets, chunks, members) run side by side"
        if estimate["engine"] == "taskcluster"
        else f"local engine, {estimate.get('cores')} cores, {estimate.get('gpus', 0)} GPUs"
    )
    print(f"estimate per stage ({where}; rates and their sources: cost_model.py, and 'rates' in the JSON):")
    for line in stage_table(estimate):
        print(line)
    corpora = estimate["corpora"]
    print(
        f"estimate: {estimate['gpu_hours']:,} GPU-hours, {estimate['cpu_hours']:,} CPU-hours, "
        f"{estimate['wall_hours']:,} h wall time (critical path), {estimate['disk_gb']:,} GB of artifacts "
        f"(teachers {estimate['teacher_share_of_gpu_hours']:.0%} of the GPU-hours; corpora: "
        f"{corpora['train']:,} parallel pairs, {corpora['mono-src']:,} source mono, "
        f"{corpora['mono-trg']:,} target mono lines)"
    )
    for line in size_lines(estimate["notes"]):
        print(line)
    print(f"graph artifacts: {summary['artifacts']}")
    if summary.get("estimate_json"):
        print(f"estimate (JSON): {summary['estimate_json']}")


def read_run(run_dir: Path) -> dict[str, float]:
    """label -> seconds of each finished task of a local run (`runs/<exp>/<label>/done.json`)."""
    seconds = {}
    for done in sorted(run_dir.glob("*/done.json")):
        try:
            seconds[done.parent.name] = float(json.loads(done.read_text())["seconds"])
        except (ValueError, KeyError, TypeError):
            continue
    return seconds


def print_comparison(comparison: dict, run_dir: Path) -> None:
    print(f"estimate against actual ({run_dir}, finished tasks only, seconds summed over a stage's tasks):")
    print(f"  {'stage':<46} {'done':>9} {'estimate s':>11} {'actual s':>10} {'actual/est':>10}")
    for row in comparison["stages"]:
        ratio = row["actual_over_estimate"]
        print(
            f"  {row['stage']:<46} {row['finished']:>4}/{row['tasks']:<4} {row['estimate_s']:>11,.1f} "
            f"{row['actual_s']:>10,.1f} {'-' if ratio is None else f'{ratio:.2f}':>10}"
        )
    if not comparison["stages"]:
        print("  no finished task of this graph in the run folder")
    if comparison["not_in_graph"]:
        print(f"  finished tasks not in this config's graph: {', '.join(comparison['not_in_graph'])}")


def _json_ready(estimate: dict) -> dict:
    result = dict(estimate)
    for row in result["stages"]:
        for key in ("gpu_hours", "cpu_hours", "wall_hours", "disk_gb"):
            row[key] = round(row[key], 3)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="preflight-check", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config (YAML)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where the graph artifacts go (default: runs/preflight/<experiment>/)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the estimate (per stage and per task, sizes, rates and their sources) here as JSON "
        "(default: <output-dir>/estimate.json)",
    )
    parser.add_argument(
        "--engine",
        choices=("taskcluster", "local"),
        default=None,
        help="estimate for Taskcluster workers (default) or the local engine on this machine "
        "(default with --run-dir)",
    )
    parser.add_argument(
        "--cores", type=int, default=None, help="local engine: cores (default: this machine's)"
    )
    parser.add_argument("--gpus", type=int, default=0, help="local engine: GPUs (default 0)")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="a local run folder (runs/<experiment>): compare the estimate with its tasks' done.json seconds",
    )
    args = parser.parse_args(argv)
    engine = args.engine or ("local" if args.run_dir else "taskcluster")
    try:
        config = load_training_config(args.config)
        check_datasets(config)
        if engine == "local":  # Taskcluster's tasks run in the images, which hold the optional components
            check_components(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.run_dir and not args.run_dir.is_dir():
        print(f"error: --run-dir {args.run_dir}: no such folder", file=sys.stderr)
        return 1
    cores = args.cores or os.cpu_count() or 1
    output_dir = args.output_dir or REPO_ROOT / "runs" / "preflight" / config["experiment"]["name"]
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    # taskgraph prints every task definition in test mode: keep that in a log next to the artifacts.
    with (output_dir / "preflight.log").open("w") as log, contextlib.redirect_stdout(log):
        logging.basicConfig(level=logging.INFO, stream=log, force=True)
        summary = run_preflight(args.config, output_dir, engine=engine, cores=cores, gpus=args.gpus)
    logging.basicConfig(level=logging.WARNING, force=True)
    if engine == "local":
        summary["estimate"].update(cores=cores, gpus=args.gpus)
    if args.run_dir:
        summary["estimate"]["comparison"] = compare_with_run(summary["estimate"], read_run(args.run_dir))
    json_path = args.json or output_dir / "estimate.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_json_ready(summary["estimate"]), indent=1) + "\n")
    summary["estimate_json"] = json_path
    print_summary(summary)
    if args.run_dir:
        print_comparison(summary["estimate"]["comparison"], args.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
