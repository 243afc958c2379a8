"""Wire monocleaner by the config's thresholds (`monocleaner.mono-src|mono-trg`): a dataset with threshold 0 is
copied through without a model, and a language's model-pack fetch task exists only when some dataset of its
side has a threshold above 0 (so a config that does not use monocleaner never downloads a model)."""

from taskgraph.transforms.base import TransformSequence

from translations_taskgraph.parameters import training_config
from translations_taskgraph.training_config import monocleaner_threshold

transforms = TransformSequence()


def side_filters(run_config, side: str) -> bool:
    return any(
        monocleaner_threshold(run_config, side, name) > 0 for name in run_config["datasets"][f"mono-{side}"]
    )


@transforms.add
def set_thresholds(config, tasks):
    run_config = training_config(config.params)
    for task in tasks:
        attributes = task["attributes"]
        if config.kind == "corpus-clean-mono-fetch-monocleaner-model":
            if side_filters(run_config, attributes["side"]):
                yield task
            continue
        threshold = monocleaner_threshold(run_config, attributes["side"], attributes["dataset"])
        attributes["monocleaner-threshold"] = threshold
        task["step"]["args"]["--threshold"] = str(threshold)
        if threshold == 0:
            task["step"]["args"].pop("--pack", None)
            task["step"]["resources"]["cpus"] = 1  # copied through: no model
        yield task
