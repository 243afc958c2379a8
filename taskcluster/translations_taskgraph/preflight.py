"""Preflight check of a training config: what the Taskcluster `train` action would run, without a network.

    python -m translations_taskgraph.preflight --config FILE [--output-dir DIR]

It runs the `train` action callback in test mode (the same code the action task runs, with the same schema
first), writes the graph artifacts (`DIR/artifacts/`: parameters.yml, actions.json, full-task-graph.json,
target-tasks.json, task-graph.json, ...) and prints the tasks by stage, the worker types, and an estimate of
GPU-hours, wall time and disk. The index is not consulted (offline), so every task counts as to run.
"""

import argparse
import contextlib
import glob
import gzip
import io
import json
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml
import zstandard
from taskgraph.actions.registry import trigger_action_callback
from taskgraph.optimize.base import OptimizationStrategy

from translations_taskgraph.render import REPO_ROOT, TASKCLUSTER_DIR, build_parameters
from translations_taskgraph.training_config import STAGES, ConfigError, load_training_config, parse_dataset

# Offline: an `index-search` optimization that never looks anything up (taskgraph's optimize_strategies).
OFFLINE_STRATEGIES = {"index-search": OptimizationStrategy()}

# -- The estimate's assumptions (rough figures for a V100-class GPU and one CPU core) ---------------------
# A dataset whose size cannot be known offline (opus, url) is assumed to hold this many sentence pairs.
ASSUMED_PAIRS_PER_REMOTE_DATASET = 5_000_000
ASSUMED_PAIRS_PER_MONO_DATASET = 10_000_000
ASSUMED_SENTENCES_PER_EVALUATION_DATASET = 3_000  # WMT test sets, FLORES dev/devtest: 1,000 to 3,000
# Training throughput, sentence pairs per second per GPU, and the epochs an early-stopped run takes.
TRAIN_PAIRS_PER_GPU_SECOND = {"tiny": 6000, "base": 2000, "big": 600}
EPOCHS_UNTIL_EARLY_STOP = {"tiny": 6, "base": 8, "big": 8}
# Sentence pairs in one update when Marian fits the batch to the GPU memory (mini-batch-fit).
PAIRS_PER_UPDATE = {"tiny": 1000, "base": 1500, "big": 1500}
# Decoding (evaluation), sentences per second per GPU.
DECODE_SENTENCES_PER_GPU_SECOND = {"tiny": 800, "base": 300, "big": 100}
# CPU steps: sentence pairs per second (import, cleaning with language id, merge).
CPU_PAIRS_PER_SECOND = {"dataset": 50_000, "clean": 10_000, "merge": 100_000}
SPM_SENTENCES_PER_SECOND = 20_000
# Disk: bytes per zstd-compressed sentence pair, and the size of one checkpoint with its optimizer state.
BYTES_PER_COMPRESSED_PAIR = 60
CHECKPOINT_BYTES = {"tiny": 40e6, "base": 600e6, "big": 2.5e9}
# Task overhead: image pull, checkout, fetches.
TASK_OVERHEAD_SECONDS = 180


def count_local_pairs(name: str) -> int | None:
    """Lines of a `local_` dataset's first file (`<prefix>.<lang>[.gz|.zst|.txt]`), None when unknown offline."""
    provider, prefix = parse_dataset(name)
    if provider != "local":
        return None
    folder, stem = (REPO_ROOT / prefix).parent, Path(prefix).name
    for path in sorted(folder.glob(f"{glob.escape(stem)}.*")):
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return sum(1 for _ in f)
        if path.suffix == ".zst":
            with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as f:
                return io.BufferedReader(f).read().count(b"\n")
        with path.open("rb") as f:
            return sum(1 for _ in f)
    return None


def _updates(marian_args: dict) -> tuple[str, float] | None:
    """`after: 200u` -> ("u", 200), `after: 2e` -> ("e", 2)."""
    after = str(marian_args.get("after", "")).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([ue])", after)
    return (match.group(2), float(match.group(1))) if match else None


def estimate(config: dict, graph: dict, worker_gpus: dict[str, int]) -> dict:
    """GPU-hours, wall time and disk of the tasks in `graph` (task-graph.json), from the config."""
    experiment = config["experiment"]
    notes = []
    sizes = {}
    for category in ("train", "devtest", "test", "mono-src", "mono-trg"):
        for name in config["datasets"][category]:
            count = count_local_pairs(name)
            if count is None:
                count = (
                    ASSUMED_PAIRS_PER_MONO_DATASET
                    if category.startswith("mono")
                    else ASSUMED_SENTENCES_PER_EVALUATION_DATASET
                    if category in ("devtest", "test")
                    else ASSUMED_PAIRS_PER_REMOTE_DATASET
                )
                notes.append(f"{name}: size unknown offline, assumed {count:,} sentences")
            sizes[(category, name)] = count
    train_pairs = sum(n for (category, _), n in sizes.items() if category == "train")
    if experiment["corpus-max-sentences"]:
        train_pairs = min(train_pairs, experiment["corpus-max-sentences"])
    test_sentences = {name: n for (category, name), n in sizes.items() if category == "test"}

    teacher = experiment["teacher-model"]
    preset = REPO_ROOT / "pipeline" / "train" / "configs" / "model" / f"teacher.{teacher}.yml"
    options = {**(yaml.safe_load(preset.read_text()) if preset.exists() else {})}
    options.update(config["marian-args"]["training-teacher"])
    after = _updates(options)
    if options.get("mini-batch") and not options.get("mini-batch-fit"):
        pairs_per_update = float(options["mini-batch"]) * float(options.get("optimizer-delay", 1))
    else:
        pairs_per_update = PAIRS_PER_UPDATE[teacher]
    if after and after[0] == "u":
        epochs = after[1] * pairs_per_update / max(train_pairs, 1)
    elif after:
        epochs = after[1]
    else:
        epochs = EPOCHS_UNTIL_EARLY_STOP[teacher]
        notes.append(f"teacher: no `after` in marian-args, assumed {epochs} epochs until early stopping")

    gpu_seconds = 0.0
    critical: dict[str, float] = {}  # label -> finish time along the longest path
    disk = 0.0
    tasks = {task["label"]: task for task in graph.values()}
    label_of = {task_id: task["label"] for task_id, task in graph.items()}

    def duration(task) -> tuple[float, int]:
        """Seconds and GPUs of one task."""
        attributes = task["attributes"]
        kind = attributes.get("kind", task["label"].split("-")[0])
        gpus = worker_gpus.get(task["task"]["workerType"], 0)
        dataset = attributes.get("dataset")
        pairs = max((n for (c, name), n in sizes.items() if name == dataset), default=0)
        if kind == "dataset":
            seconds = pairs / CPU_PAIRS_PER_SECOND["dataset"]
        elif kind == "corpus-clean-parallel":
            seconds = pairs / CPU_PAIRS_PER_SECOND["clean"]
        elif kind in ("corpus-merge-parallel", "corpus-merge-devset"):
            seconds = train_pairs / CPU_PAIRS_PER_SECOND["merge"]
        elif kind == "build-vocab":
            seconds = min(experiment["spm-sample-size"], train_pairs) / SPM_SENTENCES_PER_SECOND
        elif kind == "train-teacher":
            seconds = epochs * train_pairs / (TRAIN_PAIRS_PER_GPU_SECOND[teacher] * max(gpus, 1))
        elif kind == "evaluate-teacher":
            seconds = test_sentences.get(dataset, 0) / (
                DECODE_SENTENCES_PER_GPU_SECOND[teacher] * max(gpus, 1)
            )
        else:
            seconds = 0.0
        return seconds + TASK_OVERHEAD_SECONDS, gpus

    def finish(label) -> float:
        if label not in critical:
            task = tasks[label]
            start = max(
                (finish(label_of[dep]) for dep in task["dependencies"].values() if dep in label_of),
                default=0.0,
            )
            critical[label] = start + duration(task)[0]
        return critical[label]

    for task in tasks.values():
        seconds, gpus = duration(task)
        gpu_seconds += seconds * gpus
        kind = task["attributes"].get("kind", "")
        if kind in ("dataset", "corpus-clean-parallel", "corpus-merge-parallel", "corpus-merge-devset"):
            pairs = sizes.get(("train", task["attributes"].get("dataset")), train_pairs)
            disk += pairs * BYTES_PER_COMPRESSED_PAIR
        elif kind == "train-teacher":
            # Best checkpoint, last checkpoint with optimizer state, the unpacked corpus.
            disk += 3 * CHECKPOINT_BYTES[teacher] + train_pairs * 2 * 60
    wall = max((finish(label) for label in tasks), default=0.0)
    return {
        "train_pairs": train_pairs,
        "teacher_epochs": round(epochs, 2),
        "gpu_hours": round(gpu_seconds / 3600, 1),
        "wall_hours": round(wall / 3600, 1),
        "disk_gb": round(disk / 1e9, 1),
        "notes": notes,
    }


def worker_gpu_counts() -> dict[str, int]:
    """workerType -> GPUs, from taskcluster/config.yml."""
    graph_config = yaml.safe_load((TASKCLUSTER_DIR / "config.yml").read_text())
    counts = {}
    for alias, worker in graph_config["workers"]["aliases"].items():
        env = graph_config["worker-env"].get(alias.removesuffix("-standard"), {})
        counts[worker["worker-type"]] = len(env.get("GPUS", "").split())
    return counts


def run_preflight(config_path: Path, output_dir: Path) -> dict:
    """Runs the train callback in test mode in `output_dir`; returns the summary."""
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
        "estimate": estimate(config, graph, worker_gpu_counts()),
    }


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
    print(
        f"estimate: {estimate['gpu_hours']} GPU-hours, {estimate['wall_hours']} h wall time, "
        f"{estimate['disk_gb']} GB of artifacts (teacher: {estimate['teacher_epochs']} epochs over "
        f"{estimate['train_pairs']:,} sentence pairs)"
    )
    for note in estimate["notes"]:
        print(f"  assumed: {note}")
    print(f"graph artifacts: {summary['artifacts']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="preflight-check", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config (YAML)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where the graph artifacts go (default: runs/preflight/<experiment>/)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_training_config(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    output_dir = args.output_dir or REPO_ROOT / "runs" / "preflight" / config["experiment"]["name"]
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    # taskgraph prints every task definition in test mode: keep that in a log next to the artifacts.
    with (output_dir / "preflight.log").open("w") as log, contextlib.redirect_stdout(log):
        logging.basicConfig(level=logging.INFO, stream=log, force=True)
        summary = run_preflight(args.config, output_dir)
    logging.basicConfig(level=logging.WARNING, force=True)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
