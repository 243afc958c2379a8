"""Render the task graph for a training config, offline: what `task taskgraph-validate` and the local
engine call. The decision task on Taskcluster renders the same graph through taskgraph's own entry point."""

import subprocess
import time
from pathlib import Path

from taskgraph.generator import TaskGraphGenerator
from taskgraph.parameters import Parameters

import translations_taskgraph.parameters  # noqa: F401  (registers the training_config parameter)
from translations_taskgraph.training_config import validate_training_config

TASKCLUSTER_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TASKCLUSTER_DIR.parent
# Used when the checkout has no remote (a fresh `git init`, a tarball): only labels and URLs in the rendered
# task definitions depend on it.
PLACEHOLDER_REPOSITORY = "https://github.com/translations-pipeline/translations"


def _git(*args) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ""


def build_parameters(training_config: dict, **overrides) -> Parameters:
    """Parameters for a `train` run of `training_config` (validated here, before any kind loads)."""
    validate_training_config(training_config)
    repository = _git("remote", "get-url", "origin")
    if not repository.startswith("https://github.com/"):
        repository = PLACEHOLDER_REPOSITORY
    head_rev = _git("rev-parse", "HEAD") or "0" * 40
    # Every parameter is given (strict), so taskgraph does not probe the checkout for defaults.
    values = {
        "base_ref": "",
        "build_date": int(time.time()),
        "build_number": 1,
        "do_not_optimize": [],
        "enable_always_target": False,
        "existing_tasks": {},
        "files_changed": [],
        "filters": ["target_tasks_method"],
        "head_tag": "",
        "moz_build_date": time.strftime("%Y%m%d%H%M%S", time.gmtime()),
        "next_version": None,
        "optimize_strategies": None,
        "owner": "nobody@example.com",
        "pushdate": int(time.time()),
        "pushlog_id": "0",
        "version": None,
        "base_repository": repository,
        "head_repository": repository,
        "head_rev": head_rev,
        "base_rev": head_rev,
        "head_ref": "main",
        "level": "1",
        "project": "translations",
        "repository_type": "git",
        "tasks_for": "action",
        "target_tasks_method": "train-target-tasks",
        "optimize_target_tasks": True,
        "training_config": training_config,
    }
    values.update(overrides)
    return Parameters(strict=True, repo_root=str(REPO_ROOT), **values)


def generator_for(training_config: dict, **overrides) -> TaskGraphGenerator:
    """A generator whose `full_task_graph` and `target_task_graph` properties render lazily."""
    parameters = build_parameters(training_config, **overrides)
    parameters.check()
    return TaskGraphGenerator(root_dir=str(TASKCLUSTER_DIR), parameters=parameters)
