"""Continuation: a task whose output the config names (`continuation.vocab`, `continuation.models.teacher`,
`continuation.models.backwards`)
downloads it instead of producing it. The task keeps its label and artifacts, so what depends on it is
unchanged; it loses its own upstream inputs, so the tasks only it needed are left out of the run's graph.
"""

from taskgraph.transforms.base import TransformSequence
from voluptuous import ALLOW_EXTRA, Any, Optional, Required, Schema

from translations_taskgraph.parameters import training_config

continuation_schema = Schema(
    {
        # Which continuation setting replaces this task, and the files it downloads.
        Optional("continuation"): {
            Required("from"): Any("vocab", "teacher", "backwards"),
            Required("files"): [str],
        },
    },
    extra=ALLOW_EXTRA,
)

transforms = TransformSequence()
transforms.add_validate(continuation_schema)


def _source(run_config, which, task) -> str | None:
    continuation = run_config["continuation"]
    if which == "vocab" and "vocab" in continuation:
        return continuation["vocab"]["src"]
    teacher = continuation.get("models", {}).get("teacher")
    if which == "teacher" and teacher:
        return teacher["urls"][task["attributes"]["member"] - 1]
    backwards = continuation.get("models", {}).get("backwards")
    if which == "backwards" and backwards:
        return backwards["url"]
    return None


@transforms.add
def download_instead(config, tasks):
    run_config = training_config(config.params)
    for task in tasks:
        spec = task.pop("continuation", None)
        source = _source(run_config, spec["from"], task) if spec else None
        if source is None:
            yield task
            continue
        task["description"] = f"Download {', '.join(spec['files'])} from {source} (continuation)"
        task["attributes"]["continuation"] = source
        task["step"] = {
            "script": "pipeline/data/download_artifacts.py",
            "args": {
                "--source": source,
                "--files": ",".join(spec["files"]),
                "--output-dir": {"artifacts": True},
            },
            "outputs": spec["files"],
            "resources": {"cpus": 1, "mem-gb": 1},
        }
        task["worker-type"] = "b-cpu"
        yield task
