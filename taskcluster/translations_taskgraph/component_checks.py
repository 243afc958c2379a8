"""Checks, before any task runs on this machine, that the optional components a config needs are installed:
bicleaner-ai (TensorFlow, in its own environment) when a training dataset has a bicleaner threshold above 0,
monocleaner (KenLM) when a monolingual dataset has a monocleaner threshold above 0, and COMET when a COMET
model is configured for the evaluations (COMET_MODEL: the checkpoint, its hparams.yaml, its encoder's files
and unbabel-comet's own environment; not when experiment.comet-optional lets the evaluations skip it). A missing one is
refused with the command that installs it, the way each step would refuse it hours later.

Used by the local engine (runs and `--dry-run`) and by `preflight-check --engine local`. Taskcluster's workers
run the images built from `docker/`, which hold them (tests/test_image_environments.py).
"""

import os
from pathlib import Path

from translations_taskgraph.training_config import (
    ConfigError,
    bicleaner_threshold,
    monocleaner_threshold,
)


def _problem(check) -> str | None:
    """The StepError a step's own check raises (with its install command), as a line; None when it passes."""
    from pipeline.common.step import StepError

    try:
        check()
    except StepError as error:
        return str(error)
    return None


def _bicleaner() -> str | None:
    from pipeline.bicleaner.scorers import find_command

    return _problem(find_command)


def _monocleaner() -> str | None:
    from pipeline.monocleaner.scorers import require_monocleaner

    return _problem(require_monocleaner)


def _comet(checkpoint: str, environ) -> str | None:
    from pipeline.eval.evaluate import comet_problem

    encoder = environ.get("COMET_ENCODER")
    return comet_problem(Path(checkpoint), Path(encoder) if encoder else None, environ)


def component_problems(config: dict, environ=os.environ) -> list[str]:
    """One line per optional component the config needs and this machine lacks, naming the key that asks."""
    datasets = config["datasets"]
    problems = []
    bicleaned = [name for name in datasets.get("train") or [] if bicleaner_threshold(config, name) > 0]
    if bicleaned and (problem := _bicleaner()):
        problems.append(f"experiment.bicleaner (datasets {', '.join(bicleaned)}): {problem}")
    fluency_filtered = [
        f"{name} (mono-{side})"
        for side in ("src", "trg")
        for name in datasets.get(f"mono-{side}") or []
        if monocleaner_threshold(config, side, name) > 0
    ]
    if fluency_filtered and (problem := _monocleaner()):
        problems.append(f"experiment.monocleaner (datasets {', '.join(fluency_filtered)}): {problem}")
    comet_optional = config["experiment"].get("comet-optional")
    if (
        (checkpoint := environ.get("COMET_MODEL"))
        and not comet_optional
        and (problem := _comet(checkpoint, environ))
    ):
        problems.append(f"COMET_MODEL={checkpoint}: {problem}")
    return problems


def check_components(config: dict, environ=os.environ) -> None:
    """Raises ConfigError with one line per missing optional component."""
    problems = component_problems(config, environ)
    if problems:
        raise ConfigError("\n".join(problems))
