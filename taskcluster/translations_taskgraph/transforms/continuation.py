"""Continuation: a task whose output the config names (`continuation.vocab`, `continuation.models.teacher`,
`continuation.models.backwards`, `continuation.corpora.{parallel,backtranslations,distillation}`)
downloads it instead of producing it. The task keeps its label and artifacts, so what depends on it is
unchanged; it loses its own upstream inputs, so the tasks only it needed are left out of the run's graph.
"""

import json

from taskgraph.transforms.base import TransformSequence
from voluptuous import ALLOW_EXTRA, Any, Optional, Required, Schema

from translations_taskgraph.parameters import training_config

continuation_schema = Schema(
    {
        # Which continuation setting replaces this task, and the files it downloads.
        Optional("continuation"): {
            Required("from"): Any(
                "vocab",
                "teacher",
                "backwards",
                "corpus-parallel",
                "corpus-backtranslations",
                "corpus-distillation",
            ),
            Required("files"): [str],
        },
    },
    extra=ALLOW_EXTRA,
)

transforms = TransformSequence()
transforms.add_validate(continuation_schema)


def _model_url(model: dict, member: int | None) -> str:
    return model["urls"][(member or 1) - 1] if "urls" in model else model["url"]


def _source(run_config, which, task) -> str | dict | None:
    """Where the task's files come from: one source for all, a {file: source} mapping, or None (no download)."""
    continuation = run_config["continuation"]
    models = continuation.get("models", {})
    if which.startswith("corpus-"):
        corpus = continuation.get("corpora", {}).get(which.removeprefix("corpus-"))
        if not corpus:
            return None
        experiment = run_config["experiment"]
        return {f"corpus.{experiment[side]}.zst": corpus[side] for side in ("src", "trg")}
    if which == "vocab":
        experiment = run_config["experiment"]
        if "vocab" in continuation and experiment.get("spm-vocab-split"):
            return {f"vocab.{experiment[side]}.spm": continuation["vocab"][side] for side in ("src", "trg")}
        if "vocab" in continuation:
            return continuation["vocab"]["src"]
        # A model trained from pretrained weights keeps the pretrained model's vocabulary.
        for role in ("teacher", "backwards"):
            if models.get(role, {}).get("mode") == "init":
                return _model_url(models[role], 1)
        return None
    model = models.get(which)
    if model and model.get("mode", "use") == "use":
        return _model_url(model, task["attributes"].get("member"))
    return None


def continued(run_config, task) -> bool:
    """Whether the config gives this task's output from an earlier run."""
    spec = task.get("continuation")
    return bool(spec) and _source(run_config, spec["from"], task) is not None


@transforms.add
def download_instead(config, tasks):
    run_config = training_config(config.params)
    for task in tasks:
        spec = task.pop("continuation", None)
        source = _source(run_config, spec["from"], task) if spec else None
        if source is None:
            yield task
            continue
        if isinstance(source, dict):
            where = {"--file-sources": json.dumps(source, sort_keys=True)}
            task["description"] = f"Download {', '.join(source)} (continuation)"
        else:
            where = {"--source": source, "--files": ",".join(spec["files"])}
            task["description"] = f"Download {', '.join(spec['files'])} from {source} (continuation)"
        task["attributes"]["continuation"] = source
        task["step"] = {
            "script": "pipeline/data/download_artifacts.py",
            "args": {**where, "--output-dir": {"artifacts": True}},
            "outputs": spec["files"],
            "resources": {"cpus": 1, "mem-gb": 1},
        }
        task["worker-type"] = "b-cpu"
        yield task


init_transforms = TransformSequence()
ROLE_OF_MODEL = {"teacher": "teacher", "backward": "backwards"}


@init_transforms.add
def init_model_sources(config, tasks):
    """Keeps the download of a pretrained model only for a role whose continuation mode is init."""
    models = training_config(config.params)["continuation"].get("models", {})
    for task in tasks:
        model = models.get(ROLE_OF_MODEL[task["attributes"]["model"]])
        if not model or model.get("mode") != "init":
            continue
        source = _model_url(model, task["attributes"].get("member"))
        task["attributes"]["continuation"] = source
        task["step"]["args"]["--source"] = source
        yield task
