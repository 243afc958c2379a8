import copy
import re
from pathlib import Path

import pytest
import yaml

from translations_taskgraph.training_config import (
    ConfigError,
    dataset_slug,
    load_training_config,
    validate_training_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    REPO_ROOT / "configs" / "tiny.yml",
    REPO_ROOT / "configs" / "en-fr.full.yml",
    REPO_ROOT / "taskcluster" / "configs" / "config.ci.yml",
]


@pytest.fixture
def tiny():
    return yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_training_config(path)
    assert config["experiment"]["src"] == "en"
    assert config["datasets"]["train"]


def test_the_reference_pr_ci_target_runs_the_whole_pipeline(tiny, caplog):
    tiny["target-stage"] = "all-pr-pipeline"
    with caplog.at_level("INFO", logger="training-config"):
        assert validate_training_config(tiny)["target-stage"] == "all-pipeline"
    assert "all-pr-pipeline (the reference's PR-CI target) runs the whole pipeline" in caplog.text


def test_defaults_are_filled_in(tiny):
    del tiny["target-stage"]
    del tiny["datasets"]["mono-src"]
    del tiny["taskcluster"]
    for key in (
        "teacher-mode",
        "student-model",
        "student-init",
        "mono-max-sentences-src",
        "cefilter-remove-fraction",
    ):
        del tiny["experiment"][key]
    config = validate_training_config(tiny)
    assert config["target-stage"] == "all-pipeline"
    assert config["experiment"]["cleaning"] == {
        "min-words": 1,
        "max-words": 150,
        "max-length-ratio": 3.0,
        "language-id": True,
    }
    assert config["datasets"]["mono-src"] == []
    assert config["taskcluster"]["split-chunks"] == 1
    experiment = config["experiment"]
    assert (experiment["teacher-mode"], experiment["student-model"]) == ("two-stage", "base-memory")
    assert experiment["student-init"] == "random"
    assert experiment["mono-max-sentences-src"] == {"total": 100_000_000, "per-dataset": 70_000_000}
    assert experiment["cefilter-remove-fraction"] == 0.05


def set_key(config, dotted, value):
    keys = dotted.split(".")
    target = config
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return config


DELETE = object()

INVALID = [
    # (key to change, new value, key named in the message, words in the message)
    ("experiment.colour", "blue", "experiment.colour", "unknown key"),
    ("extra-top-level", 1, "extra-top-level", "unknown key"),
    ("marian-args.training-teacher.after", {"nested": 1}, "marian-args.training-teacher.after", ""),
    ("marian-args.training-everything", {"after": "1e"}, "marian-args.training-everything", ""),
    ("experiment.src", "english", "experiment.src", "language code"),
    ("experiment.trg", "FR", "experiment.trg", "language code"),
    ("experiment.trg", "en", "experiment.trg", "must differ"),
    ("experiment.spm-vocab-size", 8001, "experiment.spm-vocab-size", "multiple of 8"),
    ("experiment.spm-vocab-size", "8000", "experiment.spm-vocab-size", "int"),
    ("experiment.teacher-model", "huge", "experiment.teacher-model", "tiny, base, big"),
    ("experiment.name", DELETE, "experiment.name", "required"),
    ("datasets.train", [], "datasets.train", "length"),
    ("datasets.train", ["local_data/x; rm -rf /"], "datasets.train.0", "not allowed"),
    ("datasets.train", ["local_$(whoami)"], "datasets.train.0", "not allowed"),
    ("datasets.train", ["local_a`b`"], "datasets.train.0", "not allowed"),
    ("datasets.train", ["local_a b"], "datasets.train.0", "not allowed"),
    ("datasets.train", ["local_a|b"], "datasets.train.0", "not allowed"),
    ("datasets.test", ["local_a&&b"], "datasets.test.0", "not allowed"),
    ("datasets.devtest", ["-rf_x"], "datasets.devtest.0", "not allowed"),
    ("datasets.train", ["huggingface_org/data"], "datasets.train.0", "unknown provider"),
    ("datasets.train", ["Books"], "datasets.train.0", "provider_name"),
    ("datasets.train", ["url_https://example.org/corpus.en.gz"], "datasets.train.0", "[LANG]"),
    ("datasets.train", ["url_ftp://example.org/c.[LANG].gz"], "datasets.train.0", "http"),
    ("datasets.train", ["local_data/a-b/train", "local_data/a_b/train"], "datasets.train.1", "task label"),
    ("target-stage", "everything", "target-stage", "must be one of"),
    ("experiment.cleaning.min-words", 200, "experiment.cleaning.min-words", "larger than max-words"),
    ("experiment.teacher-mode", "three-stage", "experiment.teacher-mode", "one-stage, two-stage"),
    ("experiment.student-model", "big", "experiment.student-model", "tiny, base, base-memory"),
    ("experiment.mono-max-sentences-trg.total", 0, "experiment.mono-max-sentences-trg.total", ""),
    (
        "experiment.mono-max-sentences-src.per-file",
        1,
        "experiment.mono-max-sentences-src.per-file",
        "unknown",
    ),
    ("experiment.cefilter-remove-fraction", 1.5, "experiment.cefilter-remove-fraction", "fraction"),
    ("experiment.accept-below-copy-source", "yes", "experiment.accept-below-copy-source", "true or false"),
    ("experiment.accept-below-copy-source", 1, "experiment.accept-below-copy-source", "true or false"),
    (
        "marian-args.training-teacher.lr-cooldown",
        1.2,
        "marian-args.training-teacher.lr-cooldown",
        "between 0 and 1",
    ),
    (
        "marian-args.training-teacher.lr-cooldown-decays",
        0,
        "marian-args.training-teacher.lr-cooldown-decays",
        "at least 1",
    ),
    (
        "marian-args.decoding-teacher.lr-cooldown",
        0.3,
        "marian-args.decoding-teacher.lr-cooldown",
        "no option",
    ),
    ("taskcluster.split-chunks", 0, "taskcluster.split-chunks", "at least 1"),
    ("taskcluster.split-chunks", "2", "taskcluster.split-chunks", "expected an integer"),
]


def test_a_cooldown_needs_a_wall_time_cap_and_sets_the_decay_schedule_itself(tiny):
    config = copy.deepcopy(tiny)
    config["marian-args"]["training-backward"].update(
        {"after": "2e", "lr-cooldown": 0.3, "lr-decay-freq": 100}
    )
    with pytest.raises(ConfigError) as error:
        validate_training_config(config)
    message = str(error.value)
    assert "marian-args.training-backward.lr-cooldown: is a share of the wall-time cap" in message
    assert "marian-args.training-backward.lr-cooldown: sets lr-decay-freq itself: remove it" in message
    config["marian-args"]["training-backward"].update({"after": "2e,4m"})
    del config["marian-args"]["training-backward"]["lr-decay-freq"]
    validate_training_config(config)


@pytest.mark.parametrize("key,value,named,words", INVALID, ids=[f"{k}={v!r}"[:60] for k, v, _, _ in INVALID])
def test_invalid_configs_are_refused_naming_the_key(tiny, key, value, named, words):
    config = set_key(copy.deepcopy(tiny), key, value)
    with pytest.raises(ConfigError) as error:
        validate_training_config(config)
    message = str(error.value)
    assert named in message
    assert words in message


def test_accepting_a_final_model_below_copy_source_is_a_boolean_off_by_default(tiny):
    tiny["experiment"].pop("accept-below-copy-source", None)
    assert validate_training_config(copy.deepcopy(tiny))["experiment"]["accept-below-copy-source"] is False
    tiny["experiment"]["accept-below-copy-source"] = True
    assert validate_training_config(tiny)["experiment"]["accept-below-copy-source"] is True


def test_every_error_is_reported_at_once(tiny):
    tiny["experiment"]["src"] = "xx1"
    tiny["datasets"]["test"] = ["local_a;b"]
    with pytest.raises(ConfigError) as error:
        validate_training_config(tiny)
    assert "experiment.src" in str(error.value)
    assert "datasets.test.0" in str(error.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_training_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("experiment: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_training_config(bad)
    bad.write_text("- just a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_training_config(bad)


def test_dataset_slugs_are_label_safe():
    assert dataset_slug("opus_Books/v1") == "opus_Books_v1"
    assert dataset_slug("local_data/l10n-en-fr/train") == "local_data_l10n_en_fr_train"
    long_url = "url_https://example.org/" + "a" * 100 + "/c.[LANG].gz"
    slug = dataset_slug(long_url)
    assert len(slug) <= 60 and slug.replace("_", "").isalnum()


def test_a_dataset_listed_twice_is_read_once_with_a_warning(tiny, caplog):
    tiny["datasets"]["train"] = ["opus_a/v1", "local_data/l10n-en-fr/train", "opus_a/v1"]
    config = validate_training_config(tiny)
    assert config["datasets"]["train"] == ["opus_a/v1", "local_data/l10n-en-fr/train"]
    assert "datasets.train lists opus_a/v1 more than once" in caplog.text


def test_the_two_demo_configs_differ_only_in_the_pair_and_the_paths():
    """Issue 24: one demo config for both shipped pairs; it must not be tuned to one of them."""
    import yaml

    from conftest import REPO_ROOT

    def neutral(name):
        text = (REPO_ROOT / "configs" / name).read_text()
        config = yaml.safe_load(text.replace("l10n-en-de", "l10n-en-fr"))
        config["experiment"].update(name=None, trg=None)
        return config

    assert neutral("tiny.yml") == neutral("tiny.en-de.yml")
    for name in ("tiny.yml", "tiny.en-de.yml"):
        config = yaml.safe_load((REPO_ROOT / "configs" / name).read_text())
        for stage, options in config["marian-args"].items():
            if stage.startswith("training-"):
                # Every training stops on convergence, with caps in passes and in wall time.
                assert options["early-stopping"] >= 1 and options["valid-freq"] <= 250, (name, stage)
                assert re.fullmatch(r"\d+e,\d+m", options["after"]), (name, stage)


def test_a_student_init_from_a_teacher_of_another_encoder_is_refused_before_the_run(tiny):
    assert validate_training_config(copy.deepcopy(tiny))["experiment"]["student-init"] == "teacher-encoder"
    del tiny["marian-args"]["training-student"]["transformer-heads"]
    with pytest.raises(ConfigError) as error:
        validate_training_config(copy.deepcopy(tiny))
    assert "experiment.student-init: teacher-encoder needs" in str(error.value)
    assert "transformer-heads: 8 (the teacher's: 4)" in str(error.value)
    # A base teacher (Marian's transformer-base alias, expanded) against the tiny student: every size differs.
    tiny["experiment"]["teacher-model"] = "base"
    with pytest.raises(ConfigError) as error:
        validate_training_config(copy.deepcopy(tiny))
    assert "dim-emb: 256 (the teacher's: 512); enc-depth: 3 (the teacher's: 6)" in str(error.value)
    tiny["experiment"]["student-init"] = "random"
    assert validate_training_config(copy.deepcopy(tiny))["experiment"]["student-init"] == "random"
    tiny["experiment"]["student-init"] = "teacher"
    with pytest.raises(ConfigError, match="experiment.student-init"):
        validate_training_config(tiny)
