"""Optional components a config needs (bicleaner-ai's TensorFlow environment, monocleaner's KenLM, COMET) are
checked before any task runs on this machine, and a missing one is refused with its install command (issue 22,
item 2)."""

import importlib.util
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO_ROOT
from pipeline.bicleaner import scorers as bicleaner_scorers
from pipeline.eval import evaluate
from translations_taskgraph import component_checks
from translations_taskgraph.training_config import ConfigError, validate_training_config


def config(bicleaner=0.0, monocleaner=0.0, comet_optional=False):
    return validate_training_config(
        {
            "experiment": {
                "comet-optional": comet_optional,
                "name": "components",
                "src": "en",
                "trg": "fr",
                "spm-vocab-size": 1000,
                "bicleaner": {"default-threshold": 0.0, "dataset-thresholds": {"local_data/l10n-en-fr/parallel": bicleaner}},
                "monocleaner": {"mono-trg": {"default-threshold": monocleaner}},
            },
            "datasets": {
                "train": ["local_data/l10n-en-fr/parallel"],
                "devtest": ["local_data/l10n-en-fr/dev"],
                "test": ["local_data/l10n-en-fr/test"],
                "mono-trg": ["local_data/l10n-en-fr/mono"],
            },
        }
    )  # fmt: skip


@pytest.fixture
def nothing_installed(tmp_path, monkeypatch):
    """No bicleaner-ai-classify anywhere, no kenlm or monocleaner module, no unbabel-comet."""
    monkeypatch.setattr(bicleaner_scorers, "EXTRA_ENVIRONMENT", tmp_path / "no-venv")
    monkeypatch.setattr(evaluate, "COMET_ENVIRONMENT", tmp_path / "no-venv")
    monkeypatch.delenv(bicleaner_scorers.COMMAND_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    missing = {"kenlm", "monocleaner", "comet"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in missing else real_find_spec(name, *a)
    )


def test_a_config_that_needs_no_component_passes_without_any(nothing_installed):
    assert component_checks.component_problems(config(), environ={}) == []


def test_each_missing_component_is_one_line_with_its_install_command(nothing_installed, tmp_path):
    checkpoint = tmp_path / "comet" / "checkpoints" / "model.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"not a real checkpoint: the package is what is missing")
    (tmp_path / "comet" / "hparams.yaml").write_text("class_identifier: regression_metric\n")
    problems = component_checks.component_problems(
        config(bicleaner=0.5, monocleaner=0.3), environ={"COMET_MODEL": str(checkpoint)}
    )
    assert len(problems) == 3, problems
    assert all("\n" not in problem for problem in problems)
    assert problems[0].startswith("experiment.bicleaner (datasets local_data/l10n-en-fr/parallel): ")
    assert "TRANSLATIONS_EXTRAS=bicleaner scripts/setup.sh" in problems[0]
    assert problems[1].startswith("experiment.monocleaner (datasets local_data/l10n-en-fr/mono (mono-trg)): ")
    assert "no module 'kenlm' or 'monocleaner'" in problems[1]
    assert "TRANSLATIONS_EXTRAS=monocleaner scripts/setup.sh" in problems[1]
    assert problems[2] == (
        f"COMET_MODEL={checkpoint}: the unbabel-comet package is not installed: run `TRANSLATIONS_EXTRAS=comet "
        "scripts/setup.sh` (its own environment, .venv-comet/), or set COMET_PYTHON to a Python that has it"
    )
    with pytest.raises(ConfigError) as error:
        component_checks.check_components(
            config(bicleaner=0.5, monocleaner=0.3), environ={"COMET_MODEL": str(checkpoint)}
        )
    assert str(error.value).splitlines() == problems


def test_a_comet_python_that_does_not_run_is_one_line(tmp_path):
    checkpoint = tmp_path / "comet" / "checkpoints" / "model.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"x")
    (tmp_path / "comet" / "hparams.yaml").write_text("class_identifier: regression_metric\n")
    environ = {"COMET_MODEL": str(checkpoint), "COMET_PYTHON": str(tmp_path / "no-python")}
    (problem,) = component_checks.component_problems(config(), environ=environ)
    assert problem.startswith(
        f"COMET_MODEL={checkpoint}: COMET's Python {tmp_path / 'no-python'} does not run ("
    )
    assert "TRANSLATIONS_EXTRAS=comet scripts/setup.sh" in problem


def test_an_optional_comet_is_not_required_before_the_run(nothing_installed, tmp_path):
    """experiment.comet-optional: the evaluations record comet null and why instead (tests/test_comet.py)."""
    environ = {"COMET_MODEL": str(tmp_path / "missing" / "model.ckpt")}
    assert len(component_checks.component_problems(config(), environ=environ)) == 1
    assert component_checks.component_problems(config(comet_optional=True), environ=environ) == []


def test_an_installed_bicleaner_environment_passes(nothing_installed, tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    command = venv / "bin" / bicleaner_scorers.COMMAND
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    monkeypatch.setattr(bicleaner_scorers, "EXTRA_ENVIRONMENT", venv)
    assert component_checks.component_problems(config(bicleaner=0.5), environ={}) == []


def test_dry_run_refuses_a_missing_comet_model_in_one_line(tmp_path):
    path = tmp_path / "comet.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "experiment": {"name": "comet", "src": "en", "trg": "fr", "spm-vocab-size": 1000},
                "datasets": {
                    "train": ["local_data/l10n-en-fr/parallel"],
                    "devtest": ["local_data/l10n-en-fr/dev"],
                    "test": ["local_data/l10n-en-fr/test"],
                },
            }
        )
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localrun",
            "--dry-run",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--config",
            str(path),
        ],
        cwd=REPO_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "COMET_MODEL": str(tmp_path / "missing" / "model.ckpt"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: COMET_MODEL={tmp_path}/missing/model.ckpt: COMET model {tmp_path}/missing/model.ckpt does not "
        "exist (a COMET checkpoint file, model.ckpt)"
    ]
    assert "Rendered" not in result.stdout
    print(f"refused in {seconds:.2f} s")
