"""Taskgraph extensions of the translations pipeline: parameters, target tasks, actions and transforms."""

from importlib import import_module

# The graph shares helpers with the steps (pipeline/): both are packages of the project, installed in .venv
# (scripts/setup.sh); the decision task's image gets the checkout on PYTHONPATH (.taskcluster.yml).


def register(graph_config):
    """Called by taskgraph (config.yml `taskgraph.register`) before any kind is loaded."""
    for module in ("parameters", "target_tasks", "actions.train", "estimate_artifact"):
        import_module(f"translations_taskgraph.{module}")
