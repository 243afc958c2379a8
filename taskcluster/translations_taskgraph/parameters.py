"""The `training_config` parameter: the training config, validated by `training_config.py`."""

import json
from functools import lru_cache
from pathlib import Path

import msgspec
import yaml
from taskgraph.parameters import extend_parameters_schema

from translations_taskgraph.training_config import ConfigError, validate_training_config

# The config a plain `taskgraph full` (and PR CI) renders when no other is given.
CI_CONFIG = Path(__file__).parent.parent / "configs" / "config.ci.yml"


class TrainingParameters(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    training_config: dict

    def __post_init__(self):
        # msgspec turns a ValueError raised here into a ValidationError naming the parameter.
        validate_training_config(self.training_config)


def get_ci_training_config(_repo_root=None) -> dict:
    return {"training_config": yaml.safe_load(CI_CONFIG.read_text())}


extend_parameters_schema(TrainingParameters, defaults_fn=get_ci_training_config)


@lru_cache(maxsize=8)
def _validated(config_json: str) -> dict:
    return validate_training_config(json.loads(config_json))


def training_config(params) -> dict:
    """The run's training config with every default filled in (what transforms should read)."""
    return _validated(json.dumps(params["training_config"], sort_keys=True))


# The target tasks of each trigger when the decision task is not given a method (.taskcluster.yml).
TARGET_TASKS_BY_TRIGGER = {
    "github-push": "push-ci",
    "github-pull-request": "pr-ci",
    "github-pull-request-untrusted": "pr-ci",
    "cron": "push-ci",
}


def get_decision_parameters(graph_config, parameters):
    """Decision task hook: a push renders the CI config; the train action passes its own config."""
    parameters.setdefault("training_config", get_ci_training_config()["training_config"])
    if parameters.get("target_tasks_method", "default") == "default":
        parameters["target_tasks_method"] = TARGET_TASKS_BY_TRIGGER.get(parameters["tasks_for"], "default")
    try:
        validate_training_config(parameters["training_config"])
    except ConfigError as error:
        raise Exception(str(error)) from None
