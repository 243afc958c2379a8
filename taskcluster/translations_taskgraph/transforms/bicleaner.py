"""Wire bicleaner-ai by the config's thresholds: a dataset with threshold 0 is copied through without the model,
and the model-pack fetch task exists only when some dataset has a threshold above 0 (so a config that does not
use bicleaner-ai never downloads a model)."""

from taskgraph.transforms.base import TransformSequence

from translations_taskgraph.parameters import training_config
from translations_taskgraph.training_config import bicleaner_threshold

transforms = TransformSequence()


def any_threshold(run_config) -> bool:
    return any(bicleaner_threshold(run_config, name) > 0 for name in run_config["datasets"]["train"])


@transforms.add
def set_thresholds(config, tasks):
    run_config = training_config(config.params)
    for task in tasks:
        if config.kind == "corpus-clean-parallel-fetch-bicleaner-model":
            if any_threshold(run_config):
                yield task
            continue
        threshold = bicleaner_threshold(run_config, task["attributes"]["dataset"])
        task["attributes"]["bicleaner-threshold"] = threshold
        task["step"]["args"]["--threshold"] = str(threshold)
        if threshold == 0:
            task["step"]["args"].pop("--pack", None)
            task["step"]["resources"]["gpus"] = 0  # copied through: no model, no GPU
        yield task
