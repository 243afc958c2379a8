"""Taskgraph extensions of the translations pipeline: parameters, target tasks, actions and transforms."""

from importlib import import_module


def register(graph_config):
    """Called by taskgraph (config.yml `taskgraph.register`) before any kind is loaded."""
    for module in ("parameters", "target_tasks", "actions.train"):
        import_module(f"translations_taskgraph.{module}")
