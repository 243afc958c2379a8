"""The one schema of the training config.

Every entry point validates with this module: the local runner (`localrun`), the taskgraph parameters
(`parameters.py`) and the Taskcluster `train` action. A config that fails here never reaches a task.

Key names and value shapes follow the reference system (mozilla/translations), so that its users' configs
run here unchanged: `spm-vocab-size`, `dev-max-sentences`, `target-stage: all-pipeline`, ... Our earlier names
are still read, with a warning. A reference setting this project does not implement yet is refused with one
line, "not supported yet: KEY", unless its value asks for nothing (e.g. `bicleaner` with threshold 0).

One call reports every problem of a config: the structural checks (voluptuous) and the checks between keys
(datasets against languages, labels, paths) run together.
"""

import difflib
import logging
import os
import re
from pathlib import Path

import yaml
from voluptuous import (
    ALLOW_EXTRA,
    All,
    Any,
    Invalid,
    Length,
    MultipleInvalid,
    Optional,
    Required,
    Schema,
)

from pipeline.common import lr_cooldown
from pipeline.common.encoder_init import encoder_differences, preset_options
from pipeline.common.slug import dataset_slug  # noqa: F401 (one slug for labels and steps; imported from here)

logger = logging.getLogger("training-config")

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# The stages a run can stop at, in pipeline order: the reference's kind names. Each task carries one of them as
# `attributes.stage`.
STAGES = [
    "dataset",
    "corpus-clean-parallel",
    "corpus-clean-mono",
    "corpus-clean-parallel-fetch-bicleaner-model",
    "corpus-clean-parallel-bicleaner-ai",
    "corpus-clean-mono-fetch-monocleaner-model",
    "corpus-clean-mono-monocleaner",
    "corpus-merge-parallel",
    "corpus-merge-devset",
    "corpus-merge-mono",
    "build-vocab",
    "backtranslations-train-backwards-model",
    "evaluate-backwards",
    "backtranslations-mono-trg-chunk",
    "backtranslations-mono-trg-translate",
    "backtranslations-mono-trg-dechunk-translations",
    "corpus-align-parallel",
    "corpus-align-backtranslations",
    "train-teacher-model",
    "evaluate-teacher",
    "evaluate-teacher-ensemble",
    "distillation-parallel-src-chunk",
    "distillation-parallel-src-translate",
    "distillation-parallel-src-dechunk-translations",
    "distillation-mono-src-chunk",
    "distillation-mono-src-translate",
    "distillation-mono-src-dechunk-translations",
    "corpus-merge-distillation",
    "distillation-corpus-final-filtering",
    "corpus-align-distillation",
    "distillation-student-model-train",
    "distillation-student-model-finetune",
    "evaluate-student",
    "evaluate-finetuned-student",
    "distillation-corpus-build-shortlist",
    "distillation-student-model-quantize",
    "evaluate-quantized",
    "export",
    "report",
    "all-pipeline",
]
# Our earlier stage names, still accepted.
STAGE_ALIASES = {
    "clean-corpus": "corpus-clean-parallel",
    "merge-corpus": "corpus-merge-parallel",
    "merge-devset": "corpus-merge-devset",
    "train-vocab": "build-vocab",
    "train-teacher": "train-teacher-model",
    "train-backwards": "backtranslations-train-backwards-model",
    "merge-translated": "corpus-merge-distillation",
    "alignments-student": "corpus-align-distillation",
    "train-student": "distillation-student-model-train",
    "finetune-student": "distillation-student-model-finetune",
    "quantize": "distillation-student-model-quantize",
    "all": "all-pipeline",
    # The reference's target for its PR CI runs: the same tasks as all-pipeline, run on pull requests.
    "all-pr-pipeline": "all-pipeline",
}
# Our earlier key names -> the reference's.
KEY_ALIASES = {
    ("experiment", "vocab-size"): "spm-vocab-size",
    ("experiment", "devset-max-sentences"): "dev-max-sentences",
}

DATASET_CATEGORIES = ["train", "devtest", "test", "mono-src", "mono-trg"]
PARALLEL_CATEGORIES = ["train", "devtest", "test"]
MONO_CATEGORIES = ["mono-src", "mono-trg"]

# Providers whose importer exists in pipeline/data/, and which kinds of dataset each can import.
DATASET_PROVIDERS = {
    "local": {"parallel", "mono"},
    "url": {"parallel", "mono"},
    "opus": {"parallel", "mono"},
    "mtdata": {"parallel"},
    "sacrebleu": {"parallel"},
    "flores": {"parallel"},
    "ntrex": {"parallel"},
    "tmx": {"parallel"},
    "news-crawl": {"mono"},
    "hplt": {"mono"},
    "hf": {"mono"},
    "hfp": {"parallel"},
}
# How each provider's dataset names are written (checked before any task runs; the import step checks that
# the dataset exists).
DATASET_NAME_SHAPES = {
    "opus": (r"^[^/]+/[^/]+$", "opus_<corpus>/<version>, e.g. opus_Books/v1"),
    "mtdata": (
        r"^[^-]+-[^-]+-[^-]+-[a-z]{2,3}(_[A-Za-z]+)?-[a-z]{2,3}(_[A-Za-z]+)?$",
        "mtdata_<Group>-<name>-<version>-<l1>-<l2>, e.g. mtdata_Statmt-news_commentary-16-eng-fra",
    ),
    "flores": (r"^(dev|devtest)$", "flores_dev or flores_devtest"),
    "ntrex": (r"^(test|ntrex128)$", "ntrex_test"),
    "tmx": (r"^pontoon$", "tmx_pontoon"),
    "news-crawl": (r"^news\.\d{4}$", "news-crawl_news.<year>, e.g. news-crawl_news.2021"),
    "hplt": (r"^mono/v[23]\.0$", "hplt_mono/v3.0 or hplt_mono/v2.0"),
    "hf": (
        r"^([\w.-]+/)*[\w.-]+:[\w.-]+:[\w.-]+:[\w.-]+(@[0-9a-fA-F]{6,40})?$",
        "hf_<repo>:<subset>:<split>:<text field>[@<revision>]",
    ),
    "hfp": (
        r"^([\w.-]+/)*[\w.-]+:[\w.-]+:[\w.-]+:[\w.-]+:[\w.-]+(@[0-9a-fA-F]{6,40})?$",
        "hfp_<repo>:<subset>:<split>:<src field>:<trg field>[@<revision>]",
    ),
    "sacrebleu": (r"^[A-Za-z0-9][A-Za-z0-9_./-]*$", "sacrebleu_<test set>, e.g. sacrebleu_wmt14"),
}
# Providers of the reference system that this project does not import yet.
PROVIDERS_NOT_SUPPORTED_YET: list[str] = []

# Characters a dataset name may hold. Anything else (spaces, quotes, `;`, `&`, `|`, `$`, backticks, `<>`,
# parentheses, braces, `*`, `!`, `\`, `#`, newlines) could change a shell command that carries the name.
# Letters and digits may be any script's (`mtdata_ELRC-..._försäkringskassan-1-eng-swe`).
DATASET_NAME_PUNCTUATION = "_.:/@%+=,~[]?-"
# ISO 639, optionally with an ISO 15924 script subtag as the reference writes them (zh_hant, sr_latn) or
# title-cased (zh_Hant).
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(_[A-Za-z][a-z]{3})?$")
TEACHER_PRESETS = ["tiny", "base", "big"]
STUDENT_PRESETS = ["tiny", "base", "base-memory"]
TEACHER_MODES = ["one-stage", "two-stage"]
BEST_MODEL_METRICS = ["chrf", "bleu-detok", "ce-mean-words"]
WORKER_CLASSES = ["gcp-spot", "gcp-standard"]
MARIAN_ARG_STAGES = [
    "training-backward",
    "training-teacher",
    "training-student",
    "training-student-finetuned",
    "decoding-backward",
    "decoding-teacher",
]
# Environment variable naming a folder outside the repository that `local_` datasets may also read from.
DATA_ROOT_ENV = "TRANSLATIONS_DATA_ROOT"

# The languages py3langid (the language-ID filter of the cleaning step) has a model for.
LANGUAGE_ID_LANGUAGES = frozenset(
    """ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es et eu ext fa fi
    fo fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy id ig is it ja jv ka kab kik kk
    km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk ml mn mr ms mt my ne nl nn no nso oc om or pa pcm pl ps
    pt qu ro ru rw sa sdh se si sk sl sn so sq sr st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo
    wa wuu xh yo yue zh zu zxx""".split()  # noqa: SIM905 (a word list reads better as text)
)

# Limits on the config file itself: a config is a few kB; anything far larger is a mistake or an attack.
MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_ALIASES = 100
MAX_CONFIG_VALUES = 100_000


class ConfigError(ValueError):
    """A training config that cannot be run; the message names the offending key."""


# Settings of the reference system that this project does not implement yet: key path -> (accepted value test,
# what the setting does). A config using one is refused with one line, unless the value asks for nothing.
NOT_SUPPORTED_YET = {
    ("experiment", "min-fluency-threshold"): (lambda v: False, "monocleaner fluency filtering"),
}

# Stages of the reference system that this project has not built yet (accepted names for `target-stage`
# would be misleading: the run would stop somewhere else).
REFERENCE_STAGES_NOT_SUPPORTED_YET = [
    "corpus-analyze-parallel",
    "corpus-analyze-mono",
    "backtranslations-mono-trg-chunk",
    "distillation-parallel-src-chunk",
    "distillation-parallel-src-extract-best",
    "distillation-parallel-src-translations-score",
    "distillation-mono-src-chunk",
]


# --- values -------------------------------------------------------------------------------------------------


def _describe(value) -> str:
    if isinstance(value, bool):
        return (
            f"the YAML boolean {str(value).lower()} (YAML reads unquoted yes/no/on/off/true/false as booleans: "
            "quote the word if you meant text)"
        )
    return f"{type(value).__name__} {value!r}"


def nullable(validator):
    """None, or what `validator` accepts; its message when it refuses (voluptuous' Any(None, ...) would only
    say "not a valid value")."""

    def check(value):
        return None if value is None else validator(value)

    if hasattr(validator, "json_schema"):
        check.json_schema = {"anyOf": [{"type": "null"}, validator.json_schema]}
    return check


def Integer(minimum=None, maximum=None):
    """An int that is not a bool (`teacher-ensemble: true` is not 1)."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise Invalid(f"must be at most {maximum}, got {value}")
        return value

    check.json_schema = _bounds({"type": "integer"}, minimum, maximum)
    return check


def _bounds(fragment: dict, minimum, maximum=None) -> dict:
    """A JSON Schema fragment (json_schema.py) with the bounds that are set."""
    bounds = {"minimum": minimum, "maximum": maximum}
    return {**fragment, **{key: value for key, value in bounds.items() if value is not None}}


def Number(minimum=None):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected a number, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}")
        return value

    check.json_schema = _bounds({"type": "number"}, minimum)
    return check


def Boolean(value):
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {_describe(value)}")
    return value


def OneOf(*choices):
    def check(value):
        if value not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}, got {_describe(value)}")
        return value

    check.json_schema = {"enum": list(choices)}
    return check


def language_code(value):
    if isinstance(value, bool):
        raise Invalid(
            f"got {_describe(value)}: YAML reads no/yes/on/off as booleans; quote the language code ('no')"
        )
    if not isinstance(value, str) or not LANGUAGE_RE.match(value):
        raise Invalid(
            "not an ISO 639 language code (2-3 lowercase letters, optionally with a script: zh_hant), "
            f"got {_describe(value)}"
        )
    return value


MAX_EXPERIMENT_NAME = 100
MAX_DATASET_NAME = 200  # its task's label and folder hold it; file systems allow 255 bytes a name


def experiment_name(value):
    if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value):
        raise Invalid(
            f"name may hold letters, digits, _ . - (it names the run's folder), got {_describe(value)}"
        )
    if len(value) > MAX_EXPERIMENT_NAME:
        raise Invalid(
            f"name has {len(value)} characters; at most {MAX_EXPERIMENT_NAME} (it names the run's folder)"
        )
    return value


def _at_most_one(value):
    if value > 1:
        raise Invalid(f"must be between 0 and 1, got {value}")
    return value


def _dataset_threshold(settings: dict, dataset: str) -> float:
    """A dataset's own threshold (keyed by its name or task-label form), else the settings' default."""
    thresholds = settings["dataset-thresholds"]
    for key in (dataset, dataset_slug(dataset)):
        if key in thresholds:
            return thresholds[key]
    return settings["default-threshold"]


def bicleaner_threshold(config: dict, dataset: str) -> float:
    """The bicleaner-ai threshold of a training dataset."""
    return _dataset_threshold(config["experiment"]["bicleaner"], dataset)


def monocleaner_threshold(config: dict, side: str, dataset: str) -> float:
    """The monocleaner threshold of a monolingual dataset of side `src` or `trg`."""
    return _dataset_threshold(config["experiment"]["monocleaner"][f"mono-{side}"], dataset)


# SentencePiece's built-in normalization rules in the version the lock has (0.1.99, which opustrainer pins),
# and nfc, a rule table (pipeline/train/normalization.py).
SPM_NORM_RULES = ("nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity", "nfc")


def spm_norm_rule(value):
    if value not in SPM_NORM_RULES:
        raise Invalid(f"must be one of {', '.join(SPM_NORM_RULES)}, got {_describe(value)}")
    return value


spm_norm_rule.json_schema = {"enum": list(SPM_NORM_RULES)}


def _vocab_size(value):
    if value % 8:
        raise Invalid(f"must be a multiple of 8 (Marian pads to it), got {value}")
    return value


def target_stage(value):
    if value in STAGES:
        return value
    if value in STAGE_ALIASES:
        return STAGE_ALIASES[value]
    if value in REFERENCE_STAGES_NOT_SUPPORTED_YET:
        raise Invalid(f"not supported yet: stage {value!r} (this project has: {', '.join(STAGES)})")
    raise Invalid(f"must be one of {', '.join(STAGES)}, got {_describe(value)}")


TASK_GROUP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")


def task_group_id(value):
    if not isinstance(value, str) or not TASK_GROUP_ID_RE.match(value):
        raise Invalid(
            f"not a Taskcluster task group id (22 characters of A-Z a-z 0-9 _ -), got {_describe(value)}"
        )
    return value


def continuation_source(value):
    """An earlier run's output: an http(s) address (of the file's folder) or a Taskcluster task id."""
    if isinstance(value, str) and (TASK_GROUP_ID_RE.match(value) or re.match(r"^https?://\S+$", value)):
        return value
    raise Invalid(f"expected an http(s):// address or a Taskcluster task id, got {_describe(value)}")


# What the validator functions check, for the JSON Schema the `train` action publishes (json_schema.py).
Boolean.json_schema = {"type": "boolean"}
language_code.json_schema = {"type": "string", "pattern": LANGUAGE_RE.pattern}
experiment_name.json_schema = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
_vocab_size.json_schema = {"multipleOf": 8}
target_stage.json_schema = {"enum": [*STAGES, *STAGE_ALIASES]}
task_group_id.json_schema = {"type": "string", "pattern": TASK_GROUP_ID_RE.pattern}
continuation_source.json_schema = {"type": "string", "pattern": r"^(https?://\S+|[A-Za-z0-9_-]{22})$"}


# --- datasets -----------------------------------------------------------------------------------------------


def parse_dataset(name: str) -> tuple[str, str]:
    """`opus_Books/v1` -> (`opus`, `Books/v1`); raises Invalid with a readable reason."""
    if not isinstance(name, str):
        raise Invalid(f"dataset must be a string, got {_describe(name)}")
    if not name[:1].isalnum() or any(not (c.isalnum() or c in DATASET_NAME_PUNCTUATION) for c in name):
        bad = sorted({c for c in name if not (c.isalnum() or c in DATASET_NAME_PUNCTUATION)} or {name[:1]})
        raise Invalid(
            f"dataset name {name!r} holds characters that are not allowed ({''.join(bad)!r}); "
            "allowed: letters, digits and _ . : / @ % + = , ~ [ ] ? -"
        )
    if len(name.encode()) > MAX_DATASET_NAME:
        raise Invalid(
            f"dataset name {name[:40]!r}... has {len(name.encode())} bytes; at most {MAX_DATASET_NAME} "
            "(it names its task's folder)"
        )
    provider, sep, rest = name.partition("_")
    if not sep or not rest:
        raise Invalid(
            f"dataset {name!r} is not written provider_name (e.g. opus_Books/v1, local_data/x/train)"
        )
    if provider in PROVIDERS_NOT_SUPPORTED_YET:
        raise Invalid(f"not supported yet: dataset provider {provider!r} ({name})")
    if provider not in DATASET_PROVIDERS:
        raise Invalid(
            f"dataset {name!r} has unknown provider {provider!r}; known: {', '.join(DATASET_PROVIDERS)}"
        )
    if rest.startswith("aug-"):
        from pipeline.data.augment import split_augmentation

        try:
            _, rest_of_name = split_augmentation(rest)
        except ValueError as error:
            raise Invalid(f"dataset {name!r}: {error}") from None
        parse_dataset(f"{provider}_{rest_of_name}")  # the dataset it augments, by its provider's rules
        return provider, rest
    if (
        provider == "hplt"
        and re.match(r"^mono/v\d+(\.\d+)*$", rest)
        and rest not in ("mono/v3.0", "mono/v2.0")
    ):
        raise Invalid(f"not supported yet: HPLT versions other than mono/v3.0 and mono/v2.0 ({name})")
    if provider == "url" and not re.match(r"^https?://", rest):
        raise Invalid(f"url dataset {name!r} must be url_http(s)://... with [LANG] where the language goes")
    if provider in DATASET_NAME_SHAPES:
        pattern, shape = DATASET_NAME_SHAPES[provider]
        if not re.match(pattern, rest):
            raise Invalid(f"{provider} dataset {name!r} must be written {shape}")
    if provider == "local":
        local_dataset_path(rest)
    return provider, rest


def has_train_corpus(config: dict) -> bool:
    """Train datasets, or an earlier run's parallel corpus (continuation.corpora.parallel)."""
    return bool(config["datasets"]["train"]) or bool(
        config["continuation"].get("corpora", {}).get("parallel")
    )


def local_dataset_path(prefix: str) -> Path:
    """Where a `local_` dataset's files live: inside the repository, or under $TRANSLATIONS_DATA_ROOT."""
    data_root = os.environ.get(DATA_ROOT_ENV)
    where = "inside the repository" + (f" or under {DATA_ROOT_ENV}={data_root}" if data_root else "")
    path = Path(prefix)
    if ".." in path.parts:
        raise Invalid(f"local dataset path {prefix!r} climbs out with '..'; local paths must stay {where}")
    if path.is_absolute():
        if not data_root or not path.is_relative_to(Path(data_root).resolve()):
            raise Invalid(
                f"local dataset path {prefix!r} is absolute; local paths are relative to the repository "
                f"(or absolute under a data root named by {DATA_ROOT_ENV})"
            )
        return path
    return REPO_ROOT / path


def _dataset(value):
    parse_dataset(value)
    return value


# provider_name, without the shell's special characters (letters and digits of any script are allowed).
_dataset.json_schema = {"type": "string", "pattern": r"^[a-z][a-z-]*_[^\s;&|$`<>(){}*!\\#'\"^]+$"}


def dataset_list(min_length=0):
    # Duplicates are checked with the other cross-checks, so that they are reported with the other errors.
    return All([_dataset], Length(min=min_length))


# --- the schema ---------------------------------------------------------------------------------------------

# Caps on the merged monolingual data: in total, and read from each dataset (the reference's shape).
mono_caps_schema = {
    Optional("total", default=100_000_000): Integer(1),
    Optional("per-dataset", default=70_000_000): Integer(1),
}


def fraction_below_one(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise Invalid(f"must be a fraction from 0 to below 1, got {_describe(value)}")
    return value


fraction_below_one.json_schema = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


marian_args_schema = Schema({str: Any(str, int, float, bool, [Any(str, int, float)])})

experiment_schema = {
    # Names the run: the local engine writes it to runs/<name>/; Taskcluster labels and caches carry it.
    Required("name"): experiment_name,
    # ISO 639-1 code of the source language where one exists (else ISO 639-3), optionally with a script.
    Required("src"): language_code,
    # ISO 639-1 code of the target language, as `src`.
    Required("trg"): language_code,
    # Size of the SentencePiece vocabulary both languages share (of each, with spm-vocab-split).
    Required("spm-vocab-size"): All(Integer(64, 256000), _vocab_size),
    # One vocabulary per language (e.g. for scripts that share few pieces); Firefox loads the export's
    # srcvocab and trgvocab files.
    Optional("spm-vocab-split", default=False): Boolean,
    # Lines sampled from the merged corpus to train the vocabulary.
    Optional("spm-sample-size", default=1_000_000): Integer(1),
    # SentencePiece's normalization of the text before it is split into pieces (null: its default, nmt_nfkc:
    # NFKC plus NMT's whitespace and control-character rules; identity: none).
    Optional("spm-norm-rule", default=None): nullable(spm_norm_rule),
    # Cap on the merged parallel corpus after deduplication; null keeps everything.
    Optional("corpus-max-sentences", default=None): nullable(Integer(1)),
    # Cap on the merged devset Marian validates on.
    Optional("dev-max-sentences", default=2000): Integer(1),
    # The reference has no teacher size setting (its teacher is transformer-big): `big` is its equivalent.
    Optional("teacher-model", default="big"): OneOf(*TEACHER_PRESETS),
    # Teachers trained with different seeds; distillation decodes with their ensemble.
    Optional("teacher-ensemble", default=1): Integer(1, 8),
    # Student architecture, Firefox's (pipeline/train/configs/model/student.*.yml).
    Optional("student-model", default="base-memory"): OneOf(*STUDENT_PRESETS),
    # The student's first weights: random (as the reference), or the first teacher's embeddings and encoder, its
    # decoder alone from scratch, where the student's encoder has the teacher's sizes and options (the training
    # refuses it otherwise, naming the option): a head start, which random weights caught up with by update 750
    # in the English-German demo.
    Optional("student-init", default="random"): OneOf("random", "teacher-encoder"),
    # What decodes the teachers' translations for distillation: Marian, or CTranslate2 (the teacher converted
    # with its Marian converter; an ensemble of several teachers is decoded by Marian).
    Optional("teacher-decoder", default="marian"): OneOf("marian", "ctranslate2"),
    # The teachers' OpusTrainer curriculum: two-stage = pre-train on original + back-translated data, then
    # fine-tune on the original; one-stage = both mixed until the end.
    Optional("teacher-mode", default="two-stage"): OneOf(*TEACHER_MODES),
    # Monolingual data: a cap on each dataset (applied at import) and on the merged total, per side.
    Optional("mono-max-sentences-src", default={}): mono_caps_schema,
    # The same for the target side (the back-translations' input).
    Optional("mono-max-sentences-trg", default={}): mono_caps_schema,
    # Share of the distilled corpus (the pairs the backward model scores lowest) that is dropped. The reference
    # hard-codes 5%.
    Optional("cefilter-remove-fraction", default=0.05): fraction_below_one,
    # The validation metric that picks each training's best checkpoint and drives its early stopping.
    Optional("best-model", default="chrf"): OneOf(*BEST_MODEL_METRICS),
    # The report (the run's last task) fails when the final model scores a chrF at or below that of copying
    # the source on a test set: a model worse than no model. True accepts such a model.
    Optional("accept-below-copy-source", default=False): Boolean,
    # COMET, where the machine that runs the evaluations has a COMET model (COMET_MODEL): by default a model that
    # cannot score there is refused before the run and fails the evaluation; optional: each evaluation records
    # comet null and why (comet_skipped) instead.
    Optional("comet-optional", default=False): Boolean,
    # The share of a training's curriculum lines that OpusTrainer's modifiers may fail on (each one counted and
    # the first quoted in the error); 0: the first such line fails the training.
    Optional("curriculum-max-skipped-fraction", default=0.0): fraction_below_one,
    # Keep the corpora (merged, aligned, back-translated, distilled) for a year on Taskcluster instead of the
    # tasks' 90 days, so that later runs can reuse them (the reference uploads them to long-term storage).
    # The local engine keeps every output in runs/ anyway.
    Optional("archive-corpora", default=False): Boolean,
    # HPLT documents below this web-docs-scorer score (0-10) are skipped.
    Optional("hplt-min-doc-score", default={}): {
        Optional("mono-src", default=7.0): Number(0),
        Optional("mono-trg", default=7.0): Number(0),
    },
    # The reference's switch for OpusCleaner filtering; false means `opuscleaner-mode: defaults`.
    Optional("use-opuscleaner", default=True): Boolean,
    # bicleaner-ai: pairs scoring at most the threshold are removed; 0 skips a dataset (no model needed).
    # dataset-thresholds are keyed by the dataset name or its task-label form (opus_ParaCrawl_v9).
    Optional("bicleaner", default={}): {
        Optional("default-threshold", default=0.0): All(Number(0), _at_most_one),
        Optional("dataset-thresholds", default={}): {str: All(Number(0), _at_most_one)},
    },
    # monocleaner (fluency of monolingual sentences), per side: sentences scoring at most the threshold are
    # removed; 0 skips a dataset (no model needed).
    Optional("monocleaner", default={}): {
        Optional(f"mono-{side}", default={}): {
            Optional("default-threshold", default=0.0): All(Number(0), _at_most_one),
            Optional("dataset-thresholds", default={}): {str: All(Number(0), _at_most_one)},
        }
        for side in ("src", "trg")
    },
    # Filter configs in OpusCleaner's format (pipeline/clean/opuscleaner/configs/): `defaults` runs the built-in
    # default for every dataset; `custom` takes the most specific of <src>-<trg>/<dataset>.filters.json,
    # <src>-<trg>/default.filters.json and the default.
    Optional("opuscleaner-mode", default="defaults"): OneOf("defaults", "custom"),
    # Rule-based cleaning applied to every training dataset.
    Optional("cleaning", default={}): {
        # Pairs with a side shorter than this many words are removed.
        Optional("min-words", default=1): Integer(1),
        # Pairs with a side longer than this many words are removed.
        Optional("max-words", default=150): Integer(1),
        # Pairs whose longer side has more than this many times the words of the shorter are removed.
        Optional("max-length-ratio", default=3.0): Number(1),
        # Pairs whose sides are not in the config's languages (py3langid) are removed.
        Optional("language-id", default=True): Boolean,
    },
}

training_config_schema = Schema(
    {
        Required("experiment"): experiment_schema,
        # Datasets as provider_name (opus_Books/v1, mtdata_..., sacrebleu_wmt14, flores_dev, news-crawl_news.2021,
        # hplt_mono/v3.0, url_..., local_<path prefix>); every devtest and test sentence is removed from the rest.
        Required("datasets"): {
            # Parallel corpora the models train on (required, unless continuation.corpora gives the corpus).
            Optional("train", default=[]): dataset_list(),
            # Parallel sets the trainings validate on (merged into one devset).
            Required("devtest"): dataset_list(min_length=1),
            # Parallel sets every model is evaluated on.
            Required("test"): dataset_list(min_length=1),
            # Source-language text the teachers translate for the student (distillation).
            Optional("mono-src", default=[]): dataset_list(),
            # Target-language text the backward model translates for the teachers (back-translation).
            Optional("mono-trg", default=[]): dataset_list(),
        },
        # Extra Marian options per stage (training-backward, training-teacher, training-student,
        # training-student-finetuned, decoding-backward, decoding-teacher); they override the presets, and each
        # key is checked against Marian's own option list. Beside them, the training stages take the pipeline's
        # `lr-cooldown` (a share of the wall-time cap in `after` over which the learning rate decays
        # `lr-cooldown-decays` times, default 4).
        Optional("marian-args", default={}): {
            Optional(stage, default={}): Any(None, marian_args_schema) for stage in MARIAN_ARG_STAGES
        },
        # Run up to and including this stage (the reference's kind names, in pipeline order), or all-pipeline.
        Optional("target-stage", default="all-pipeline"): target_stage,
        # Publish the trainings' curves, the evaluations, the config and the report to Weights & Biases (project
        # <src>-<trg>, group <experiment name>): online where WANDB_API_KEY is set (WANDB_BASE_URL for a
        # self-hosted server), else as offline runs in the report's artifacts (`wandb sync` sends them later).
        Optional("wandb-publication", default=False): Boolean,
        # Settings only the Taskcluster engine reads (worker classes, upload buckets, split-chunks, ...).
        Optional("taskcluster", default={}): Schema(
            {
                # Back-translation and distillation translate their corpus in this many chunks, one task each.
                Optional("split-chunks", default=1): Integer(1, 1000),
                # Worker class per kind (`default`: every other kind): spot instances are cheap but can be
                # preempted (training resumes from the last checkpoint); standard ones are not.
                Optional("worker-classes", default={"default": "gcp-spot"}): {str: OneOf(*WORKER_CLASSES)},
            },
            extra=ALLOW_EXTRA,
        ),
        # Continue from an earlier run's outputs instead of producing them: each is a folder address or the
        # id of the Taskcluster task that made it. The tasks that would make them download them instead.
        Optional("continuation", default={}): {
            # One shared SentencePiece model: src and trg name the same file (split vocabularies: not yet).
            Optional("vocab"): {Required("src"): continuation_source, Required("trg"): continuation_source},
            # An earlier run's corpora: their two sides' file addresses (or folder addresses / task ids). The
            # reference's `alignments`, `tok-src` and `tok-trg` are accepted and recomputed here (its alignments
            # index its ICU tokens; this pipeline aligns whitespace words).
            Optional("corpora"): {
                Optional(kind): {
                    Required("src"): continuation_source,
                    Required("trg"): continuation_source,
                    Optional("alignments"): continuation_source,
                    Optional("tok-src"): continuation_source,
                    Optional("tok-trg"): continuation_source,
                }
                for kind in ("parallel", "backtranslations", "distillation")
            },
            Optional("models"): {
                # One source per teacher-ensemble member; `use` them as they are, or `init` the teachers'
                # training with their weights (the run then uses their vocabulary).
                Optional("teacher"): {
                    Required("urls"): All([continuation_source], Length(min=1)),
                    Optional("mode", default="use"): OneOf("use", "init"),
                    Optional("type", default="default"): OneOf("default"),
                },
                # The backward model (e.g. an earlier run's student of the reverse pair), `use`d as it is: it
                # must share this run's vocabulary (continuation.vocab); or `init` its training with the weights.
                Optional("backwards"): {
                    Required("url"): continuation_source,
                    Optional("mode", default="use"): OneOf("use", "init"),
                    Optional("type", default="default"): OneOf("default"),
                },
            },
        },
        # Taskcluster: reuse the completed tasks of these earlier task groups (later groups win).
        Optional("previous-group-ids"): All([task_group_id], Length(min=1)),
        # Taskcluster, with previous-group-ids: run again the tasks of this stage (a kind, or the reference's
        # older name for it) and everything after them.
        Optional("start-stage"): target_stage,
        # Taskcluster: reuse these tasks (label -> task id) as they are, over what previous-group-ids gives;
        # labels this graph does not have are named in the decision task's log.
        Optional("existing_tasks"): {str: task_group_id},
        # Taskcluster, with previous-group-ids: run again the tasks whose label starts with this, and
        # everything after them.
        Optional("start-task-prefix"): All(str, Length(min=1)),
    }
)


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _get(config, path):
    value = config
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _apply_aliases(config: dict, problems: list) -> dict:
    """Renames our earlier key names to the reference's (with a warning); returns a shallow-copied config."""
    config = dict(config)
    for (section, old), new in KEY_ALIASES.items():
        block = config.get(section)
        if isinstance(block, dict) and old in block:
            block = dict(block)
            if new in block:
                problems.append((f"{section}.{old}", f"give either {old} or {new} (its new name), not both"))
                block.pop(old)
            else:
                logger.warning("%s.%s is deprecated: call it %s.%s", section, old, section, new)
                block[new] = block.pop(old)
            config[section] = block
    stage = config.get("target-stage")
    if stage == "all-pr-pipeline":
        logger.info("target-stage all-pr-pipeline (the reference's PR-CI target) runs the whole pipeline")
    elif isinstance(stage, str) and stage in STAGE_ALIASES:
        logger.warning("target-stage: %s is deprecated: use %s", stage, STAGE_ALIASES[stage])
    return config


def _drop_duplicate_datasets(config: dict) -> dict:
    """A dataset listed twice in one category is read once (with a warning): the intent is unambiguous."""
    datasets = config.get("datasets")
    if not isinstance(datasets, dict):
        return config
    datasets = dict(datasets)
    for category, names in datasets.items():
        if (
            isinstance(names, list)
            and all(isinstance(n, str) for n in names)
            and len(set(names)) < len(names)
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            logger.warning(
                "datasets.%s lists %s more than once: reading each once", category, ", ".join(dupes)
            )
            datasets[category] = list(dict.fromkeys(names))
    return {**config, "datasets": datasets}


# The reference's older `experiment.pretrained-models` stages -> continuation.models roles.
# Some configs name the role itself (`pretrained-models: {backwards: ...}`).
PRETRAINED_ROLES = {
    "train-teacher": "teacher",
    "train-backwards": "backwards",
    "teacher": "teacher",
    "backwards": "backwards",
}


def _pretrained_as_continuation(config: dict, pretrained: dict, problems: list) -> dict:
    """`experiment.pretrained-models: {train-backwards: {urls: [U], mode, type}}` (the reference's older form)
    as `continuation.models.backwards: {url: U, ...}` (and train-teacher as continuation.models.teacher)."""
    continuation = dict(config.get("continuation") or {})
    models = dict(continuation.get("models") or {})
    for stage, spec in pretrained.items():
        role = PRETRAINED_ROLES.get(stage)
        key = f"experiment.pretrained-models.{stage}"
        if role is None:
            problems.append(
                (
                    key,
                    f"not supported yet: a pretrained model for {stage} (known: {', '.join(PRETRAINED_ROLES)})",
                )
            )
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("urls"), list) or not spec["urls"]:
            problems.append((key, "must hold urls: [address or task id, ...], mode and type"))
            continue
        if role in models:
            problems.append((key, f"continuation.models.{role} gives it too: keep one"))
            continue
        extra = {k: v for k, v in spec.items() if k in ("mode", "type")}
        models[role] = (
            {"urls": spec["urls"], **extra} if role == "teacher" else {"url": spec["urls"][0], **extra}
        )
    continuation["models"] = models
    return {**config, "continuation": continuation}


def _reference_shapes(config: dict, problems: list) -> dict:
    """Reads the reference's older or looser value shapes as ours: `use-opuscleaner: "true"` (a string),
    `mono-max-sentences-src: 500_000_000` (the total alone), `previous-group-ids: []` (none)."""
    config = dict(config)
    experiment = config.get("experiment")
    if isinstance(experiment, dict):
        experiment = dict(experiment)
        if experiment.get("use-opuscleaner") in ("true", "false"):
            experiment["use-opuscleaner"] = experiment["use-opuscleaner"] == "true"
        for side in ("src", "trg"):
            key = f"mono-max-sentences-{side}"
            value = experiment.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                experiment[key] = {"total": value, "per-dataset": value}
        pretrained = experiment.pop("pretrained-models", None)
        if isinstance(pretrained, dict) and pretrained:
            config = _pretrained_as_continuation(config, pretrained, problems)
        elif pretrained not in (None, {}):
            problems.append(
                (
                    "experiment.pretrained-models",
                    "must map a stage (train-teacher, train-backwards) to its model",
                )
            )
        config["experiment"] = experiment
    if "previous_group_ids" in config:  # the reference's spelling (its train action stores it)
        if "previous-group-ids" in config:
            problems.append(("previous_group_ids", "give previous-group-ids or previous_group_ids, not both"))
        config["previous-group-ids"] = config.pop("previous_group_ids")
    if config.get("previous-group-ids") == []:
        config.pop("previous-group-ids")
    if config.get("existing_tasks") in ({}, None):
        config.pop("existing_tasks", None)
    if config.get("start-stage") in ("", None):
        config.pop("start-stage", None)
    continuation = config.get("continuation")
    models = continuation.get("models") if isinstance(continuation, dict) else None
    if isinstance(models, dict):
        models = dict(models)
        for role in [r for r in models if r not in ("teacher", "backwards")]:
            problems.append(
                (f"continuation.models.{role}", f"not supported yet: continuing the {role} model")
            )
            models.pop(role)
        for role in ("teacher", "backwards"):
            model = models.get(role)
            if isinstance(model, dict) and model.get("mode", "use") not in ("use", "init"):
                problems.append(
                    (
                        f"continuation.models.{role}.mode",
                        f"not supported yet: mode {model['mode']!r} (use or init)",
                    )
                )
                models[role] = {**model, "mode": "use"}
        config["continuation"] = {**continuation, "models": models}
    return config


def _remove_unsupported(config: dict, problems: list) -> dict:
    """Takes out the reference's settings we do not implement: accepted no-op values silently, others with a
    "not supported yet" line each."""
    config = dict(config)
    for path, (accepts, feature) in NOT_SUPPORTED_YET.items():
        parent = config
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        value = parent[path[-1]]
        if not accepts(value):
            problems.append((_key_path(path), f"not supported yet: {feature}"))
        if len(path) == 1:
            config.pop(path[0])
        else:
            section = dict(config[path[0]])
            section.pop(path[1])
            config[path[0]] = section
    return config


# Options each stage's step sets itself (paths, devices, the data stream): a config's value would be overridden
# or would break the step (`no-restore-corpus` would undo the exact resume of a training).
RESERVED_MARIAN_OPTIONS = {
    "training": {
        "model", "pretrained-model", "train-sets", "tsv", "tsv-fields", "vocabs", "valid-sets",
        "valid-translation-output", "log", "valid-log", "tempdir", "seed", "config", "relative-paths",
        "cpu-threads", "devices", "workspace", "no-restore-corpus", "sigterm", "dump-config", "overwrite",
        "keep-best", "shuffle", "valid-metrics",
    },
    "decoding": {
        "models", "model", "input", "output", "vocabs", "config", "relative-paths", "log", "n-best",
        "cpu-threads", "devices", "workspace", "dump-config",
    },
}  # fmt: skip
WALL_TIME_CAP_RE = re.compile(r"\d+(?:\.\d+)?[smh]")
# `after`: comma-separated caps, the first reached ending the training (pipeline/train/train.py applies them).
AFTER_CAP_RE = re.compile(r"[1-9]\d*[eut]|\d+(?:\.\d+)?[smh]")
# valid-freq, save-freq, disp-freq, ...: a whole number of updates (u, the default), target labels or epochs.
FREQUENCY_RE = re.compile(r"\d+[ute]?")
FREQUENCY_OPTIONS = {
    "valid-freq",
    "save-freq",
    "disp-freq",
    "sync-freq",
    "exponential-smoothing-replace-freq",
}
NUMBER_RES = {
    "INT": re.compile(r"-?\d+"),
    "UINT": re.compile(r"\d+"),
    "FLOAT": re.compile(r"-?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?"),
}


def _marian_value_problem(option: str, kind: str, value) -> str | None:
    """What is wrong with `value` for a Marian option of `kind` (as Marian's --help types it), or None."""
    if kind == "FLAG":
        if isinstance(value, bool) or str(value).lower() in ("true", "false"):
            return None
        return f"is a switch: true or false, got {value!r}"
    values = value if isinstance(value, list) else [value]
    if kind != "VECTOR" and isinstance(value, list):
        return f"takes one value, got a list {value!r}"
    if any(isinstance(v, bool) for v in values):
        return f"takes a value, not {value!r}"
    text = str(value).strip()
    if option == "after":
        caps = [cap.strip() for cap in text.split(",")]
        if text not in ("0", "0e") and not all(AFTER_CAP_RE.fullmatch(cap) for cap in caps):
            return (
                f"{value!r}: each comma-separated cap is a whole number with e (epochs), u (updates) or "
                "t (target labels), or a wall time in s, m or h, e.g. `after: 10e,45m`"
            )
    elif option in FREQUENCY_OPTIONS:
        if not FREQUENCY_RE.fullmatch(text):
            return f"{value!r}: a whole number, optionally with u (updates), t (target labels) or e (epochs)"
    elif kind in NUMBER_RES and not NUMBER_RES[kind].fullmatch(text):
        wanted = {"INT": "a whole number", "UINT": "a whole number of 0 or more", "FLOAT": "a number"}[kind]
        return f"must be {wanted}, got {value!r}"
    if option == "beam-size" and text == "0":
        return "must be at least 1, got 0"
    return None


def _marian_args_problems(config: dict) -> list[tuple[str, str]]:
    """Unknown Marian options, values Marian would only refuse when a training starts, and options the pipeline
    sets itself, in every stage of `marian-args`; warns about `after` given with `after-epochs`."""
    from translations_taskgraph.marian_options import known_options

    marian_args = config.get("marian-args")
    if not isinstance(marian_args, dict):
        return []
    problems = []
    for stage, options in marian_args.items():
        if stage not in MARIAN_ARG_STAGES or not isinstance(options, dict):
            continue  # the schema names these
        purpose = stage.split("-")[0]
        known = known_options()["train" if purpose == "training" else "decode"]
        for option, value in options.items():
            key = f"marian-args.{stage}.{option}"
            if not isinstance(option, str):
                continue
            if purpose == "training" and option in lr_cooldown.OPTIONS:
                continue  # pipeline/train/train.py applies them (Marian has no such option): checked below
            if option not in known:
                close = difflib.get_close_matches(option, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append((key, f"Marian has no option --{option} for {purpose}{hint}"))
            elif option in RESERVED_MARIAN_OPTIONS[purpose]:
                problems.append((key, f"set by the pipeline itself for every {purpose} step; remove it"))
            elif (problem := _marian_value_problem(option, known[option], value)) is not None:
                problems.append((key, problem))
        if purpose == "training" and any(option in options for option in lr_cooldown.OPTIONS):
            caps = [cap.strip() for cap in str(options.get("after", "")).split(",")]
            has_wall_time = any(WALL_TIME_CAP_RE.fullmatch(cap) for cap in caps)
            problems.extend(
                (f"marian-args.{stage}.{option}", problem)
                for option, problem in lr_cooldown.cooldown_problems(options, has_wall_time)
            )
        if "after" in options and ("after-epochs" in options or "after-batches" in options):
            other = "after-epochs" if "after-epochs" in options else "after-batches"
            warning = (
                f"marian-args.{stage}",
                f"both `after` and `{other}` are set; the first limit reached ends the training "
                f"(`{other}` is deprecated in Marian: write it into `after`)",
            )
            if warning not in _WARNED:  # once per process: every kind of the graph validates the config again
                _WARNED.add(warning)
                logger.warning("%s: %s", *warning)
    return problems


def _student_init_problems(config: dict, experiment: dict, continuation: dict) -> list[tuple[str, str]]:
    """student-init: teacher-encoder needs the student's encoder to be the teacher's (presets and marian-args);
    a teacher that continues from a download is checked by the training, on the model's own options."""
    models = continuation.get("models") if isinstance(continuation.get("models"), dict) else {}
    if experiment.get("student-init") != "teacher-encoder" or models.get("teacher"):
        return []
    teacher_preset, student_preset = (
        experiment.get("teacher-model", "big"),
        experiment.get("student-model", "base-memory"),
    )
    if teacher_preset not in TEACHER_PRESETS or student_preset not in STUDENT_PRESETS:
        return []  # the schema names them
    marian_args = config.get("marian-args") if isinstance(config.get("marian-args"), dict) else {}
    arguments = {stage: marian_args.get(stage) if isinstance(marian_args.get(stage), dict) else {}
                 for stage in ("training-teacher", "training-student")}  # fmt: skip
    differ = encoder_differences(
        preset_options("student", student_preset, arguments["training-student"]),
        preset_options("teacher", teacher_preset, arguments["training-teacher"]),
    )
    if not differ:
        return []
    return [(
        "experiment.student-init",
        f"teacher-encoder needs the student's encoder to be the teacher's ({teacher_preset} teacher, "
        f"{student_preset} student): " + "; ".join(differ)
        + "; give marian-args.training-student the teacher's values, or use student-init: random",
    )]  # fmt: skip


def _cross_checks(config: dict) -> list[tuple[str, str]]:
    """The checks between keys that a later stage would make; tolerant of a config with structural errors."""
    problems = _marian_args_problems(config)
    experiment = config.get("experiment") if isinstance(config.get("experiment"), dict) else {}
    src, trg = experiment.get("src"), experiment.get("trg")
    languages_valid = all(isinstance(x, str) and LANGUAGE_RE.match(x) for x in (src, trg))
    if languages_valid and src == trg:
        problems.append(("experiment.trg", "must differ from experiment.src"))
    cleaning = experiment.get("cleaning") if isinstance(experiment.get("cleaning"), dict) else {}
    if cleaning.get("language-id", True) is True and languages_valid:
        for key, lang in (("src", src), ("trg", trg)):
            if lang.partition("_")[0] not in LANGUAGE_ID_LANGUAGES:
                problems.append(
                    (
                        f"experiment.{key}",
                        f"language identification (py3langid) has no model for {lang!r}; "
                        "set experiment.cleaning.language-id: false",
                    )
                )
    continuation = config.get("continuation") if isinstance(config.get("continuation"), dict) else {}
    vocab = continuation.get("vocab") if isinstance(continuation.get("vocab"), dict) else {}
    if vocab.get("src") != vocab.get("trg") and experiment.get("spm-vocab-split") is not True:
        # The reference publishes its shared vocabulary under both languages' names (vocab.<lang>.spm).
        logger.warning(
            "continuation.vocab: src and trg differ while spm-vocab-split is false: src is used as the shared "
            "vocabulary (the reference publishes one shared vocabulary under both languages' names)"
        )
    problems += _student_init_problems(config, experiment, continuation)
    teacher = (
        (continuation.get("models") or {}).get("teacher")
        if isinstance(continuation.get("models"), dict)
        else None
    )
    ensemble = experiment.get("teacher-ensemble", 1)
    if (
        isinstance(teacher, dict)
        and isinstance(teacher.get("urls"), list)
        and len(teacher["urls"]) != ensemble
    ):
        problems.append(
            (
                "continuation.models.teacher.urls",
                f"gives {len(teacher['urls'])} models for a teacher-ensemble of {ensemble}",
            )
        )
    min_words, max_words = cleaning.get("min-words", 1), cleaning.get("max-words", 150)
    if isinstance(min_words, int) and isinstance(max_words, int) and min_words > max_words:
        problems.append(("experiment.cleaning.min-words", "larger than max-words"))

    datasets = config.get("datasets") if isinstance(config.get("datasets"), dict) else {}
    parallel_labels, seen_in = {}, {}
    for category in DATASET_CATEGORIES:
        names = datasets.get(category)
        if not isinstance(names, list):
            continue
        mono_labels = {}
        for index, name in enumerate(names):
            try:
                provider, _ = parse_dataset(name)
            except Invalid:
                continue  # reported by the schema
            key = f"datasets.{category}.{index}"
            if category in MONO_CATEGORIES and "mono" not in DATASET_PROVIDERS[provider]:
                problems.append(
                    (key, f"{provider}_ datasets are parallel; {name!r} cannot be monolingual data")
                )
            elif category in MONO_CATEGORIES and name.partition("_")[2].startswith("aug-"):
                problems.append(
                    (key, f"augmented datasets are evaluation sets (parallel); {name!r} is in {category}")
                )
            if category in PARALLEL_CATEGORIES and provider == "url" and "[LANG]" not in name:
                problems.append(
                    (key, f"url dataset {name!r} needs [LANG] in the address, replaced by each language code")
                )
            if category in PARALLEL_CATEGORIES and "parallel" not in DATASET_PROVIDERS[provider]:
                problems.append(
                    (key, f"{provider}_ datasets are monolingual; {name!r} cannot be parallel data")
                )
            labels = parallel_labels if category in PARALLEL_CATEGORIES else mono_labels
            other = labels.setdefault(dataset_slug(name), (name, key))
            if other[0] != name and name not in names[:index]:
                problems.append(
                    (
                        key,
                        f"{name!r} and {other[0]!r} ({other[1]}) differ only in punctuation: they would share a task label",
                    )
                )
            if category == "test" and name in seen_in.get("devtest", set()):
                problems.append(
                    (
                        key,
                        f"{name!r} is also the devtest dataset: decontamination against the test sets would empty the devset",
                    )
                )
            if category in ("devtest", "test") and name in seen_in.get("train", set()):
                problems.append(
                    (
                        key,
                        f"{name!r} is also a training dataset: the model would be {'validated' if category == 'devtest' else 'tested'} on its training data",
                    )
                )
            seen_in.setdefault(category, set()).add(name)
    for key, message in _threshold_keys_name_datasets(experiment, datasets):
        # A warning, not a refusal: the reference's own configs key thresholds by datasets they comment out.
        # Once per process: every kind of the graph validates the config again.
        if (key, message) not in _WARNED:
            _WARNED.add((key, message))
            logger.warning("%s: %s", key, message)
    return problems


_WARNED: set[tuple[str, str]] = set()


def _threshold_keys_name_datasets(experiment: dict, datasets: dict) -> list[tuple[str, str]]:
    """A bicleaner or monocleaner threshold keyed by a dataset the config does not list: a typo would leave the
    dataset at the default threshold."""
    problems = []
    scorers = [("bicleaner", experiment.get("bicleaner"), "train")]
    monocleaner = experiment.get("monocleaner") if isinstance(experiment.get("monocleaner"), dict) else {}
    scorers += [
        (f"monocleaner.mono-{side}", monocleaner.get(f"mono-{side}"), f"mono-{side}")
        for side in ("src", "trg")
    ]
    for path, settings, category in scorers:
        thresholds = settings.get("dataset-thresholds") if isinstance(settings, dict) else None
        names = datasets.get(category) if isinstance(datasets.get(category), list) else []
        if not isinstance(thresholds, dict):
            continue
        known = {n for n in names if isinstance(n, str)} | {
            dataset_slug(n) for n in names if isinstance(n, str)
        }
        for key in thresholds:
            if key not in known:
                problems.append(
                    (
                        f"experiment.{path}.dataset-thresholds.{key}",
                        f"names no dataset of datasets.{category} (by name or task-label form, e.g. "
                        f"{dataset_slug(names[0]) if names else 'opus_ParaCrawl_v9'})",
                    )
                )
    return problems


def _group_unsupported_providers(problems: list) -> list:
    """One line per provider we do not import yet, rather than one per dataset."""
    by_provider, others = {}, []
    for key, message in problems:
        match = re.match(
            r"not supported yet: (dataset provider '[^']+'|monolingual \S+ datasets|augmented evaluation "
            r"datasets \(aug-\.\.\._\)|HPLT versions other than mono/v3.0 and mono/v2.0)",
            message,
        )
        if match:
            by_provider.setdefault(match.group(1), []).append(key)
        else:
            others.append((key, message))
    for provider, keys in by_provider.items():
        where = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        others.append(("datasets", f"not supported yet: {provider} ({where})"))
    return others


def validate_training_config(config: dict) -> dict:
    """Returns the config with defaults filled in, or raises ConfigError naming every bad key."""
    if not isinstance(config, dict):
        raise ConfigError("the training config must be a mapping of keys to values")
    problems = []
    corpora = _get(config, ("continuation", "corpora"))
    corpora = corpora if isinstance(corpora, dict) else {}
    # A corpus to train on: a parallel one, or (for the student alone) a distilled one.
    continues_from_corpora = bool(corpora.get("parallel") or corpora.get("distillation"))
    config = _apply_aliases(config, problems)
    config = _reference_shapes(config, problems)
    config = _remove_unsupported(config, problems)
    config = _drop_duplicate_datasets(config)
    validated = None
    try:
        validated = training_config_schema(config)
    except MultipleInvalid as error:
        for e in error.errors:
            message = e.error_message
            if message == "extra keys not allowed":
                message = "unknown key"
            problems.append((_key_path(e.path), message))
    problems += _cross_checks(config)
    datasets = config.get("datasets") if isinstance(config.get("datasets"), dict) else None
    if datasets is not None and not continues_from_corpora:
        # The corpora may come from an earlier run (continuation.corpora); else train datasets are needed.
        if "train" not in datasets:
            problems.append(("datasets.train", "required key not provided"))
        elif datasets["train"] == []:
            problems.append(("datasets.train", "length of value must be at least 1"))
    if (
        datasets is not None
        and not datasets.get("train")
        and not corpora.get("parallel")
        and corpora.get("distillation")
        and not _get(config, ("continuation", "vocab"))
    ):
        problems.append(
            ("continuation.vocab", "required with continuation.corpora.distillation and no train datasets "
             "(the vocabulary is trained on the parallel corpus)")
        )  # fmt: skip
    for kind, corpus in corpora.items():
        if isinstance(corpus, dict) and any(k in corpus for k in ("alignments", "tok-src", "tok-trg")):
            logger.info(
                "continuation.corpora.%s: its alignments are recomputed here (the reference's index its ICU "
                "tokens; this pipeline aligns whitespace words)", kind,
            )  # fmt: skip
    if problems:
        lines = sorted({f"  {key}: {message}" for key, message in _group_unsupported_providers(problems)})
        raise ConfigError("invalid training config:\n" + "\n".join(lines))
    if not validated["experiment"]["use-opuscleaner"]:
        validated["experiment"]["opuscleaner-mode"] = "defaults"
    for stage in MARIAN_ARG_STAGES:
        if validated["marian-args"][stage] is None:
            validated["marian-args"][stage] = {}
    return validated


# --- loading ------------------------------------------------------------------------------------------------


class _ConfigLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys and bounds the number of aliases."""

    def __init__(self, stream):
        super().__init__(stream)
        self.alias_count = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"more than {MAX_YAML_ALIASES} YAML aliases (line {mark.line + 1}): a config needs none"
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                line = key_node.start_mark.line + 1
                if key in seen:
                    earlier_line, earlier_node = seen[key]
                    earlier = self.construct_object(earlier_node, deep=True)
                    if not _keeps_everything_of(self.construct_object(value_node, deep=True), earlier):
                        raise ConfigError(
                            f"duplicate key {key!r} on lines {earlier_line} and {line} "
                            "(YAML would silently keep the last)"
                        )
                    # The reference's configs have a few of these (an empty `continuation:` repeated with
                    # content): YAML keeps the last, and nothing of the first is lost.
                    logger.warning(
                        "duplicate key %r on lines %d and %d: the later one is used; it holds all of the earlier",
                        key, earlier_line, line,
                    )  # fmt: skip
                seen[key] = (line, value_node)
        return super().construct_mapping(node, deep=deep)


def _keeps_everything_of(later, earlier) -> bool:
    """Whether a mapping value `later` says everything `earlier` said (an empty earlier value says nothing)."""
    if earlier in (None, {}, [], ""):
        return True
    if isinstance(earlier, dict) and isinstance(later, dict):
        return all(k in later and _keeps_everything_of(later[k], v) for k, v in earlier.items())
    return later == earlier


def _count_values(value, memo: dict, active: set) -> int:
    """How many values the config holds once YAML aliases are expanded (shared nodes counted each time)."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) in active:
        raise ConfigError("the config refers to itself through a YAML alias")
    if id(value) in memo:
        return memo[id(value)]
    active.add(id(value))
    children = value.values() if isinstance(value, dict) else value
    total = 1
    for child in children:
        total += _count_values(child, memo, active)
        if total > MAX_CONFIG_VALUES:
            break
    active.discard(id(value))
    memo[id(value)] = total
    return total


def parse_training_config(text: str) -> dict:
    """YAML text -> a mapping; raises ConfigError for anything that is not a plain, bounded config."""
    try:
        config = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError("nested too deeply to be a training config") from None
    if _count_values(config, {}, set()) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"expands to more than {MAX_CONFIG_VALUES} values through YAML aliases; a config needs none"
        )
    return config


def load_training_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError(f"training config {path} is a directory; give a YAML file")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"training config {path} is {size} bytes; a config is a few kB (limit {MAX_CONFIG_BYTES})"
            )
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"training config {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"training config {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError as error:
        line = text_line_of(path.read_bytes(), error.start)
        raise ConfigError(f"training config {path} is not UTF-8 text (line {line}: {error.reason})") from None
    except ConfigError as error:
        raise ConfigError(str(error)) from None
    try:
        return validate_training_config(parse_training_config(text))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def text_line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1
