"""The `train` action: start a training run of a config on Taskcluster (Treeherder's action menu, `task train`).

Its input is a training config. The JSON Schema the action publishes is generated from the one voluptuous
schema (`training_config.py`), and the callback validates its input with that same schema before anything
else, so a config the action accepts is exactly a config `task run-local` and `task preflight-check` accept.
"""

import logging

from taskgraph.actions.registry import register_callback_action
from taskgraph.decision import taskgraph_decision
from taskgraph.parameters import Parameters

from translations_taskgraph.dataset_checks import check_datasets
from translations_taskgraph.json_schema import to_json_schema
from translations_taskgraph.reuse import existing_tasks_from_groups
from translations_taskgraph.training_config import (
    KEY_ALIASES,
    NOT_SUPPORTED_YET,
    training_config_schema,
    validate_training_config,
)

logger = logging.getLogger(__name__)

DESCRIPTION = """
Train a model from a training config (see `configs/en-fr.full.yml`): the graph is rendered up to the
config's `target-stage`. `previous-group-ids` reuses the completed tasks of earlier task groups,
`start-task-prefix` re-runs the tasks whose label starts with it and everything after them.
"""


def train_input_schema(graph_config=None) -> dict:
    """The action's input schema, generated from the training-config schema.

    What `validate_training_config` reads before the voluptuous schema is added the same way: the earlier key
    names (one of the two names is required), and the reference's settings that are accepted when they ask
    for nothing (the callback refuses any other value, naming the key)."""
    schema = to_json_schema(training_config_schema, title="Training config")
    for (section, old), new in KEY_ALIASES.items():
        block = schema["properties"][section]
        block["properties"][old] = {
            **block["properties"][new],
            "deprecated": True,
            "description": f"now {new}",
        }
        if new in block.get("required", []):
            block["required"].remove(new)
            block.setdefault("allOf", []).append({"oneOf": [{"required": [new]}, {"required": [old]}]})
    for path, (_accepts, feature) in NOT_SUPPORTED_YET.items():
        block = schema
        for key in path[:-1]:
            block = block["properties"][key]
        block["properties"].setdefault(
            path[-1], {"description": f"not supported yet: {feature}; only a value that asks for nothing"}
        )
    # The reference's older shapes, read as ours by validate_training_config (training_config._reference_shapes).
    schema["properties"]["previous_group_ids"] = {
        **schema["properties"]["previous-group-ids"],
        "deprecated": True,
        "description": "now previous-group-ids",
    }
    schema["properties"]["experiment"]["properties"]["pretrained-models"] = {
        "type": "object",
        "deprecated": True,
        "description": "now continuation.models (train-teacher: teacher, train-backwards: backwards)",
    }
    return schema


def can_train(parameters) -> bool:
    # An untrusted pull request (from a fork) may not start GPU trainings.
    return parameters["tasks_for"] != "github-pull-request-untrusted"


def train_parameters(parameters, config: dict, queue=None) -> Parameters:
    """The decision parameters of a training run of `config` (already validated)."""
    values = dict(parameters)
    values["training_config"] = config
    values["target_tasks_method"] = "train-target-tasks"
    values["optimize_target_tasks"] = True
    values["tasks_for"] = "action"
    existing = dict(values.get("existing_tasks") or {})
    if config.get("previous-group-ids"):
        existing.update(
            existing_tasks_from_groups(
                config["previous-group-ids"],
                config.get("start-task-prefix"),
                queue=queue,
                start_stage=config.get("start-stage"),
            )
        )
    existing.update(config.get("existing_tasks") or {})
    values["existing_tasks"] = existing
    return Parameters(strict=True, **values)


@register_callback_action(
    name="train",
    cb_name="train",
    title="Train",
    symbol="train",
    description=DESCRIPTION,
    order=500,
    context=[],
    permission="train",
    available=can_train,
    schema=train_input_schema,
)
def train_action(parameters, graph_config, input, task_group_id, task_id):
    # The same validation as every other entry point, first: a ConfigError names each bad key.
    config = validate_training_config(input)
    check_datasets(config)
    logger.info(
        "training config %s (%s-%s), target stage %s",
        config["experiment"]["name"],
        config["experiment"]["src"],
        config["experiment"]["trg"],
        config["target-stage"],
    )
    taskgraph_decision({"root": graph_config.root_dir}, parameters=train_parameters(parameters, config))
