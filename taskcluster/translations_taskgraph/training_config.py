"""The one schema of the training config.

Every entry point validates with this module: the local runner (`localrun`), the taskgraph parameters
(`parameters.py`) and, later, the Taskcluster `train` action. A config that fails here never reaches a task.
"""

import hashlib
import re
from pathlib import Path

import yaml
from voluptuous import (
    ALLOW_EXTRA,
    All,
    Any,
    Invalid,
    Length,
    Match,
    MultipleInvalid,
    Optional,
    Range,
    Required,
    Schema,
)

# The stages a run can stop at, in pipeline order. Each task carries one of them as `attributes.stage`.
STAGES = [
    "dataset",
    "clean-corpus",
    "merge-corpus",
    "merge-devset",
    "train-vocab",
    "train-teacher",
    "evaluate-teacher",
    "report",
    "all",
]

DATASET_CATEGORIES = ["train", "devtest", "test", "mono-src", "mono-trg"]

# Providers whose importer exists in pipeline/data/import_dataset.py.
DATASET_PROVIDERS = ["local", "url", "opus"]

# Characters a dataset name may hold. Anything else (spaces, quotes, `;`, `&`, `|`, `$`, backticks, `<>`,
# parentheses, braces, `*`, `!`, `\`, `#`, newlines) could change a shell command that carries the name.
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@%+=,~\[\]?-]*$")
LANGUAGE_RE = r"^[a-z]{2,3}$"
MODEL_PRESETS = ["tiny", "base", "big"]
BEST_MODEL_METRICS = ["chrf", "bleu-detok", "ce-mean-words"]
MARIAN_ARG_STAGES = [
    "training-backward",
    "training-teacher",
    "training-student",
    "training-student-finetuned",
    "decoding-backward",
    "decoding-teacher",
]


class ConfigError(ValueError):
    """A training config that cannot be run; the message names the offending key."""


def parse_dataset(name: str) -> tuple[str, str]:
    """`opus_Books/v1` -> (`opus`, `Books/v1`); raises Invalid with a readable reason."""
    if not isinstance(name, str):
        raise Invalid(f"dataset must be a string, got {type(name).__name__}")
    if not DATASET_NAME_RE.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.:/@%+=,~\[\]?-]", c)})
        raise Invalid(
            f"dataset name {name!r} holds characters that are not allowed ({''.join(bad)!r}); "
            "allowed: letters, digits and _ . : / @ % + = , ~ [ ] ? -"
        )
    provider, sep, rest = name.partition("_")
    if not sep or not rest:
        raise Invalid(
            f"dataset {name!r} is not written provider_name (e.g. opus_Books/v1, local_data/x/train)"
        )
    if provider not in DATASET_PROVIDERS:
        raise Invalid(
            f"dataset {name!r} has unknown provider {provider!r}; known: {', '.join(DATASET_PROVIDERS)}"
        )
    if provider == "url" and not re.match(r"^https?://", rest):
        raise Invalid(f"url dataset {name!r} must be url_http(s)://... with [LANG] where the language goes")
    if provider == "url" and "[LANG]" not in rest:
        raise Invalid(f"url dataset {name!r} needs [LANG] in the address, replaced by each language code")
    return provider, rest


def dataset_slug(name: str) -> str:
    """A label- and file-safe form of a dataset name: `opus_Books/v1` -> `opus_Books_v1`."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if len(slug) > 60:
        slug = f"{slug[:50]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return slug


def _dataset(value):
    parse_dataset(value)
    return value


def _unique(values):
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise Invalid(f"listed more than once: {', '.join(dupes)}")
    return values


def _vocab_size(value):
    if value % 8:
        raise Invalid(f"vocab-size must be a multiple of 8 (Marian pads to it), got {value}")
    return value


marian_args_schema = Schema({str: Any(str, int, float, bool, [Any(str, int, float)])})

experiment_schema = {
    Required("name"): All(
        str, Match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", msg="name may hold letters, digits, _ . -")
    ),
    Required("src"): Match(LANGUAGE_RE, msg="not an ISO 639 language code (2-3 lowercase letters)"),
    Required("trg"): Match(LANGUAGE_RE, msg="not an ISO 639 language code (2-3 lowercase letters)"),
    Required("vocab-size"): All(int, Range(min=64, max=256000), _vocab_size),
    Optional("spm-sample-size", default=1_000_000): All(int, Range(min=1)),
    Optional("corpus-max-sentences", default=None): Any(None, All(int, Range(min=1))),
    Optional("devset-max-sentences", default=2000): All(int, Range(min=1)),
    Required("teacher-model"): Any(*MODEL_PRESETS, msg=f"must be one of {', '.join(MODEL_PRESETS)}"),
    Optional("teacher-ensemble", default=1): All(int, Range(min=1, max=8)),
    Optional("student-model", default="tiny"): Any(
        *MODEL_PRESETS, msg=f"must be one of {', '.join(MODEL_PRESETS)}"
    ),
    Optional("best-model", default="chrf"): Any(
        *BEST_MODEL_METRICS, msg=f"must be one of {', '.join(BEST_MODEL_METRICS)}"
    ),
    Optional("cleaning", default={}): {
        Optional("min-words", default=1): All(int, Range(min=1)),
        Optional("max-words", default=150): All(int, Range(min=1)),
        Optional("max-length-ratio", default=3.0): All(Any(int, float), Range(min=1)),
        Optional("language-id", default=True): bool,
    },
}

training_config_schema = Schema(
    {
        Required("experiment"): experiment_schema,
        Required("datasets"): {
            Required("train"): All([_dataset], Length(min=1), _unique),
            Required("devtest"): All([_dataset], Length(min=1), _unique),
            Required("test"): All([_dataset], Length(min=1), _unique),
            Optional("mono-src", default=[]): All([_dataset], _unique),
            Optional("mono-trg", default=[]): All([_dataset], _unique),
        },
        Optional("marian-args", default={}): {
            Optional(stage, default={}): marian_args_schema for stage in MARIAN_ARG_STAGES
        },
        Optional("target-stage", default="all"): Any(*STAGES, msg=f"must be one of {', '.join(STAGES)}"),
        # Settings only the Taskcluster engine reads (worker classes, upload buckets, ...).
        Optional("taskcluster", default={}): Schema({str: object}, extra=ALLOW_EXTRA),
    }
)


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def validate_training_config(config: dict) -> dict:
    """Returns the config with defaults filled in, or raises ConfigError naming every bad key."""
    if not isinstance(config, dict):
        raise ConfigError("the training config must be a mapping of keys to values")
    try:
        validated = training_config_schema(config)
    except MultipleInvalid as error:
        lines = []
        for e in sorted(error.errors, key=lambda e: [str(p) for p in e.path]):
            message = e.error_message
            if message == "extra keys not allowed":
                message = "unknown key"
            lines.append(f"  {_key_path(e.path)}: {message}")
        raise ConfigError("invalid training config:\n" + "\n".join(lines)) from None
    experiment = validated["experiment"]
    if experiment["src"] == experiment["trg"]:
        raise ConfigError("invalid training config:\n  experiment.trg: must differ from experiment.src")
    slugs = {}
    for category, names in validated["datasets"].items():
        for name in names:
            other = slugs.setdefault((category, dataset_slug(name)), name)
            if other != name:
                raise ConfigError(
                    f"invalid training config:\n  datasets.{category}: {other!r} and {name!r} "
                    "would share the task label (they differ only in punctuation)"
                )
    cleaning = experiment["cleaning"]
    if cleaning["min-words"] > cleaning["max-words"]:
        raise ConfigError("invalid training config:\n  experiment.cleaning.min-words: larger than max-words")
    return validated


def load_training_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"training config {path} does not exist") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"training config {path} is not valid YAML: {error}") from None
    try:
        return validate_training_config(config)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
