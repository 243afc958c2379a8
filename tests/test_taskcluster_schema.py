"""The voluptuous -> JSON Schema converter behind the `train` action's input schema."""

from pathlib import Path

import jsonschema
import pytest
import yaml
from voluptuous import ALLOW_EXTRA, All, Any, In, Length, Match, Optional, Range, Required, Schema

from translations_taskgraph.actions.train import train_input_schema
from translations_taskgraph.json_schema import UnsupportedSchema, to_json_schema
from translations_taskgraph.training_config import ConfigError, validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted([*REPO_ROOT.glob("configs/*.yml"), *REPO_ROOT.glob("taskcluster/configs/*.yml")])


@pytest.fixture(scope="module")
def validator():
    schema = train_input_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_there_are_configs_to_check():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_config_passes_both_schemas(validator, path):
    config = yaml.safe_load(path.read_text())
    assert [e.message for e in validator.iter_errors(config)] == []
    validate_training_config(config)
    # With the defaults filled in too.
    assert [e.message for e in validator.iter_errors(validate_training_config(config))] == []


def tiny():
    return yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())


def _set(config, path, value):
    *parents, last = path
    for key in parents:
        config = config[key]
    if value is KeyError:
        del config[last]
    else:
        config[last] = value


@pytest.mark.parametrize(
    "path,value",
    [
        (("experiment", "name"), "has space"),
        (("experiment", "src"), "EN"),
        (("experiment", "teacher-ensemble"), 0),
        (("experiment", "teacher-ensemble"), "two"),
        (("experiment", "teacher-model"), "huge"),
        (("experiment", "unknown-key"), 1),
        (("experiment", "name"), KeyError),
        (("datasets", "devtest"), []),
        (("datasets", "train"), ["local_x;reboot"]),
        (("target-stage",), "nowhere"),
        (("taskcluster",), {"worker-classes": {"default": "gcp-cheap"}}),
        (("previous-group-ids",), ["short"]),
        (("no-such-key",), True),
    ],
)
def test_both_schemas_refuse_a_broken_config(validator, path, value):
    config = tiny()
    _set(config, path, value)
    assert list(validator.iter_errors(config)), "the JSON Schema accepted it"
    with pytest.raises(ConfigError):
        validate_training_config(config)


@pytest.mark.parametrize(
    "path,value",
    [
        (("datasets", "devtest"), ["local_data/l10n-en-fr/parallel"]),
        (("experiment", "trg"), "en"),
        (("datasets", "train"), []),  # required unless continuation.corpora gives the corpus
    ],
)
def test_checks_between_keys_are_the_callbacks(validator, path, value):
    """What a JSON Schema cannot say (one key against another, no-op-only settings) passes the
    form and is refused by the callback, which validates with the voluptuous schema first."""
    config = tiny()
    _set(config, path, value)
    assert not list(validator.iter_errors(config))
    with pytest.raises(ConfigError):
        validate_training_config(config)


def test_the_references_older_shapes_pass_both():
    config = tiny()
    config["previous_group_ids"] = ["GroupA000000000000000A"]
    config["experiment"]["pretrained-models"] = {
        "train-backwards": {"urls": ["https://e.org/b"], "mode": "use"}
    }
    assert not list(validator_for().iter_errors(config))
    validated = validate_training_config(config)
    assert validated["previous-group-ids"] == ["GroupA000000000000000A"]
    assert validated["continuation"]["models"]["backwards"]["url"] == "https://e.org/b"


def test_deprecated_key_names_pass_both():
    config = tiny()
    config["experiment"]["vocab-size"] = config["experiment"].pop("spm-vocab-size")
    assert not list(validator_for().iter_errors(config))
    validate_training_config(config)
    config["experiment"]["spm-vocab-size"] = 8000
    assert list(validator_for().iter_errors(config)), "both names at once"


def validator_for():
    return jsonschema.Draft7Validator(train_input_schema())


def test_converter_shapes():
    schema = Schema(
        {
            Required("a"): All(int, Range(min=1, max=5)),
            Optional("b", default="x"): Any("x", "y"),
            Optional("c"): [All(str, Match(r"^z"))],
            Optional("d", default=None): Any(None, float),
            Optional("e"): {str: bool},
            Optional("f"): All([str], Length(min=2)),
            Optional("g"): In(["p", "q"]),
        }
    )
    assert to_json_schema(schema) == {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "a": {"type": "integer", "minimum": 1, "maximum": 5},
            "b": {"enum": ["x", "y"], "default": "x"},
            "c": {"type": "array", "items": {"type": "string", "pattern": "^z"}},
            "d": {"anyOf": [{"const": None}, {"type": "number"}], "default": None},
            "e": {"type": "object", "properties": {}, "additionalProperties": {"type": "boolean"}},
            "f": {"type": "array", "items": {"type": "string"}, "minItems": 2, "minLength": 2},
            "g": {"enum": ["p", "q"]},
        },
        "required": ["a"],
        "additionalProperties": False,
    }
    assert to_json_schema(Schema({"k": int}, extra=ALLOW_EXTRA))["additionalProperties"] is True


def test_validator_functions_carry_their_fragment():
    def even(value):
        return value

    even.json_schema = {"multipleOf": 2}
    assert to_json_schema(Schema(All(int, even)))["multipleOf"] == 2


def test_unknown_constructs_are_refused_not_dropped():
    class Strange:
        pass

    with pytest.raises(UnsupportedSchema):
        to_json_schema({"a": Strange()})
    with pytest.raises(UnsupportedSchema):
        to_json_schema({(1, 2): int})
