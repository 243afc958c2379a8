"""Taskgraph extensions of the translations pipeline: parameters, target tasks, actions and transforms."""

import sys
from importlib import import_module
from pathlib import Path

# The graph shares a few standard-library helpers with the steps (pipeline/common/slug.py): the repository
# root must be importable wherever taskgraph runs (decision task, `task taskgraph-validate`, the local engine).
REPO_ROOT = str(Path(__file__).resolve().parent.parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)


def register(graph_config):
    """Called by taskgraph (config.yml `taskgraph.register`) before any kind is loaded."""
    for module in ("parameters", "target_tasks", "actions.train", "estimate_artifact"):
        import_module(f"translations_taskgraph.{module}")
