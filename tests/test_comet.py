"""COMET scores through the real path (issue 22, item 5): unbabel-comet in its own environment, .venv-comet/
(`TRANSLATIONS_EXTRAS=comet scripts/setup.sh`; it pins numpy<2), run by pipeline/eval/evaluate.py through
pipeline/eval/comet_scorer.py, with a tiny model built here in COMET's own checkpoint format (hparams.yaml,
checkpoints/model.ckpt) whose encoder loads from a local folder with `local_files_only`. Its scores mean nothing;
what is tested is that a checkpoint loads and scores offline, and every way it can be refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from pipeline.common.step import StepError
from pipeline.eval import evaluate

ENVIRONMENT = REPO_ROOT / ".venv-comet"
PYTHON = ENVIRONMENT / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not PYTHON.exists(),
    reason="COMET's environment .venv-comet/ is absent: `TRANSLATIONS_EXTRAS=comet scripts/setup.sh` installs it",
)

SOURCES = ["The cat sat on the mat.", "Open the file menu.", "Save your work often.", "Close the window."]
REFERENCES = ["Le chat était assis sur le tapis.", "Ouvrez le menu Fichier.", "Enregistrez souvent.", "Fermez la fenêtre."]  # fmt: skip


def build_tiny_comet_model(folder: Path) -> Path:
    """A tiny COMET model's folder (encoder/, hparams.yaml, checkpoints/model.ckpt), built in COMET's environment."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "text.txt"
    text.write_text("\n".join((SOURCES + REFERENCES) * 5) + "\n", encoding="utf-8")
    subprocess.run(
        [str(PYTHON), str(REPO_ROOT / "tests" / "comet_tiny_model.py"), "--text", str(text), "--output", str(folder / "model")],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return folder / "model"


@pytest.fixture(scope="module")
def comet_model(tmp_path_factory) -> Path:
    return build_tiny_comet_model(tmp_path_factory.mktemp("comet"))


def score(model: Path, tmp_path: Path, hypotheses=REFERENCES, encoder=None, optional=False):
    tmp_path.mkdir(exist_ok=True)
    return evaluate.comet_score(
        model / "checkpoints" / "model.ckpt", encoder, optional, SOURCES, hypotheses, REFERENCES, tmp_path,
        tmp_path / "comet.log",
    )  # fmt: skip


@pytest.fixture(scope="module")
def perfect(comet_model, tmp_path_factory) -> float:
    """The score of hypotheses equal to the references."""
    comet, skipped = score(comet_model, tmp_path_factory.mktemp("perfect"))
    assert skipped is None and isinstance(comet, float)
    return comet


def test_a_local_checkpoint_scores_in_comets_own_environment(comet_model, perfect, tmp_path, monkeypatch):
    monkeypatch.delenv("COMET_PYTHON", raising=False)
    assert evaluate.comet_python() == str(PYTHON)
    assert evaluate.comet_problem(comet_model / "checkpoints" / "model.ckpt") is None
    # A function of the hypotheses: the real model ran on them.
    garbled = ["zzz qqq", "", "Le Le Le Le", "fenêtre"]
    assert score(comet_model, tmp_path, hypotheses=garbled)[0] != perfect
    # The encoder given as a folder (COMET_ENCODER) instead of the hparams' own pretrained_model.
    assert score(comet_model, tmp_path, encoder=comet_model / "encoder")[0] == perfect
    result = json.loads((tmp_path / "comet.json").read_text())
    assert result["segments"] == len(SOURCES) and len(result["scores"]) == len(SOURCES)


def test_every_missing_piece_is_named_before_anything_loads(comet_model, tmp_path, monkeypatch):
    monkeypatch.delenv("COMET_PYTHON", raising=False)
    checkpoint = comet_model / "checkpoints" / "model.ckpt"
    # The hparams.yaml that names the model's class and encoder.
    lone = tmp_path / "lone" / "checkpoints" / "model.ckpt"
    lone.parent.mkdir(parents=True)
    lone.write_bytes(checkpoint.read_bytes())
    assert "has no" in evaluate.comet_problem(lone) and "hparams.yaml" in evaluate.comet_problem(lone)
    # An encoder named by its hub id that is not in the Hugging Face cache: nothing is downloaded.
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "model.ckpt").write_bytes(b"x")
    (hub / "hparams.yaml").write_text(
        "class_identifier: regression_metric\npretrained_model: xlm-roberta-large\n"
    )
    problem = evaluate.comet_problem(
        hub / "checkpoints" / "model.ckpt", environ={"HF_HUB_CACHE": str(tmp_path / "cache")}
    )
    assert problem == (
        f"COMET's encoder xlm-roberta-large (pretrained_model in {hub}/hparams.yaml) is not in the Hugging Face "
        f"cache ({tmp_path}/cache): set COMET_ENCODER to a folder with its config and tokenizer"
    )
    assert evaluate.comet_problem(hub / "checkpoints" / "model.ckpt", encoder=comet_model / "encoder") is None
    assert "not a folder with the encoder's config.json" in evaluate.comet_problem(
        checkpoint, encoder=tmp_path
    )
    # A COMET_PYTHON without unbabel-comet.
    problem = evaluate.comet_problem(checkpoint, environ={"COMET_PYTHON": sys.executable})
    assert problem.startswith(
        f"{sys.executable} has no unbabel-comet package: run `TRANSLATIONS_EXTRAS=comet"
    )


def test_a_model_that_cannot_score_fails_the_evaluation_unless_comet_is_optional(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(
        StepError, match=r"does not exist.*experiment.comet-optional: true skips COMET instead"
    ):
        score(missing, tmp_path)
    comet, skipped = score(missing, tmp_path, optional=True)
    assert comet is None and "does not exist" in skipped


def test_a_broken_checkpoint_fails_with_the_scorers_log(comet_model, tmp_path):
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "hparams.yaml").write_text((comet_model / "hparams.yaml").read_text())
    (broken / "checkpoints" / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(StepError, match="COMET scoring failed") as error:
        score(broken, tmp_path)
    assert str(tmp_path / "comet.log") in str(error.value)
    assert not (tmp_path / "comet.json").exists()


def test_the_scorer_killed_with_sigkill_leaves_no_result_and_a_rerun_gives_the_same(
    comet_model, perfect, tmp_path
):
    segments = tmp_path / "in.jsonl"
    segments.write_text(
        "".join(
            json.dumps({"src": s, "mt": r, "ref": r}) + "\n" for s, r in zip(SOURCES, REFERENCES, strict=True)
        )
    )
    output = tmp_path / "out.json"
    command = [
        str(PYTHON),
        str(evaluate.COMET_SCORER),
        "--checkpoint",
        str(comet_model / "checkpoints" / "model.ckpt"),
    ]
    command += ["--input", str(segments), "--output", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)  # loading torch and the model
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not output.exists() and not list(tmp_path.glob(".out.json*"))
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    assert round(json.loads(output.read_text())["system_score"], 4) == perfect  # as an unkilled run's


def test_an_empty_input_is_refused(comet_model, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = subprocess.run(
        [str(PYTHON), str(evaluate.COMET_SCORER), "--checkpoint", str(comet_model / "checkpoints" / "model.ckpt"),
         "--input", str(empty), "--output", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "holds no segment" in result.stderr
    assert not (tmp_path / "out.json").exists()
