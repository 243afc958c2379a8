"""Cache every pipeline task in the index under a digest of what decides its outputs.

The digest covers the step's digest (source_digest.step_digest, the local engine's too: its definition, the
code it runs and the content of its local input files), the worker command and the digest of its docker
image. taskgraph's `cached_tasks`
transform, which runs next, adds the upstream tasks' digests and the index routes; an identical task is then
replaced by the indexed one (the `index-search` optimization).
"""

import json

from taskgraph.transforms.base import TransformSequence
from voluptuous import ALLOW_EXTRA, Required, Schema

from translations_taskgraph.source_digest import step_digest

# Bump to invalidate every cached pipeline task at once.
CACHE_VERSION = "1"

cache_schema = Schema(
    {
        Required("attributes"): {Required("step"): dict},
        Required("worker"): {Required("docker-image"): {Required("in-tree"): str}},
    },
    extra=ALLOW_EXTRA,
)

transforms = TransformSequence()


def image_digest(config, image: str) -> str:
    label = f"docker-image-{image}"
    tasks = {task.label: task for task in config.kind_dependencies_tasks.values()}
    if label not in tasks:
        raise Exception(f"{config.kind}: docker image {image!r} does not exist (no task {label})")
    return tasks[label].attributes["cached_task"]["digest"]


def digest_data(config, task) -> list[str]:
    return [
        f"version={CACHE_VERSION}",
        "step=" + step_digest(task["attributes"]["step"]),
        "command=" + json.dumps(task["worker"].get("command"), sort_keys=True),
        "image=" + image_digest(config, task["worker"]["docker-image"]["in-tree"]),
    ]


@transforms.add
def add_cache(config, tasks):
    for task in tasks:
        cache_schema(task)
        task["cache"] = {
            "type": f"{config.graph_config['trust-domain']}.v2.{config.kind}",
            "name": task["label"],
            "digest-data": digest_data(config, task),
        }
        yield task
