"""Turning a task's structured step arguments into command-line words, for either engine.

An argument value is a string, `{"task": LABEL, "artifact": NAME or None}` (an upstream task's artifacts
folder or one file in it), `{"artifacts": True}` (this task's own artifacts folder), or a list of those.
"""

from collections.abc import Callable


def render_value(value, upstream_dir: Callable[[str], str], own_artifacts: str) -> list[str]:
    if isinstance(value, list):
        return [word for item in value for word in render_value(item, upstream_dir, own_artifacts)]
    if isinstance(value, dict) and "task" in value:
        folder = upstream_dir(value["task"])
        return [f"{folder}/{value['artifact']}" if value["artifact"] else folder]
    if isinstance(value, dict):
        return [own_artifacts]
    return [value]


def render_args(args: list, upstream_dir: Callable[[str], str], own_artifacts: str) -> list[str]:
    words = []
    for flag, value in args:
        words.append(flag)
        words.extend(render_value(value, upstream_dir, own_artifacts))
    return words
