"""The local engine end to end with real Marian: kill -9 and resume, re-runs that do nothing, dry runs."""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, finish, start_localrun

# Small enough to train in a minute or two on 2 cores; quality is not the point here.
QUICK_CONFIG = {
    "experiment": {
        "name": "quick",
        "src": "en",
        "trg": "fr",
        "spm-vocab-size": 1000,
        "spm-sample-size": 4000,
        "corpus-max-sentences": 3000,
        "dev-max-sentences": 40,
        "teacher-model": "tiny",
    },
    "datasets": {
        "train": ["local_data/l10n-en-fr/train"],
        "devtest": ["local_data/l10n-en-fr/dev"],
        "test": ["local_data/l10n-en-fr/test"],
    },
    "marian-args": {
        "training-teacher": {
            "after": "60u",
            "valid-freq": 20,
            "save-freq": 20,
            "disp-freq": 10,
            "beam-size": 1,
            "max-length-factor": 1.5,
        },
    },
    "target-stage": "train-teacher-model",
}


def done_records(run_dir: Path) -> dict:
    return {p.parent.name: p.read_text() for p in run_dir.glob("*/done.json")}


@pytest.fixture
def quick_config(tmp_path):
    path = tmp_path / "quick.yml"
    path.write_text(yaml.safe_dump(QUICK_CONFIG))
    return path


def test_dry_run_prints_the_plan_and_runs_nothing(quick_config, tmp_path):
    runs = tmp_path / "runs"
    code, output = finish(start_localrun(quick_config, runs, "--dry-run", "--dag", str(tmp_path / "dag.dot")))
    assert code == 0, output
    # the test set is imported before the merge (it decontaminates the corpus), and bicleaner-ai with its
    # default threshold 0 copies the cleaned corpus through; the teacher's curriculum gets word alignments
    assert "Plan: 10 tasks" in output
    assert "[pending] train-teacher-en-fr-1" in output
    assert output.index("build-vocab-en-fr") < output.index("train-teacher-en-fr-1  (stage")
    assert '"build-vocab-en-fr" -> "train-teacher-en-fr-1"' in (tmp_path / "dag.dot").read_text()
    assert not list((runs / "quick").glob("*/done.json"))


def test_an_invalid_config_is_refused_before_any_task(quick_config, tmp_path):
    config = yaml.safe_load(quick_config.read_text())
    config["datasets"]["train"] = ["local_data/x;reboot"]
    quick_config.write_text(yaml.safe_dump(config))
    code, output = finish(start_localrun(quick_config, tmp_path / "runs"))
    assert code == 2
    assert "datasets.train.0" in output and "not allowed" in output
    assert not (tmp_path / "runs").exists()


@pytest.mark.e2e
# Up to 600 s for a checkpoint, then the engine's three waits (120 + 900 + 900 s): above the global 1,800 s.
@pytest.mark.timeout(2700)
@pytest.mark.parametrize("interruption", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_midway_then_resume_then_nothing_to_do(quick_config, tmp_path, interruption):
    runs = tmp_path / "runs"
    run_dir = runs / "quick"
    checkpoint = run_dir / "train-teacher-en-fr-1" / "artifacts" / "model.npz.progress.yml"

    process = start_localrun(quick_config, runs, start_new_session=True)
    deadline = time.time() + 600
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.time() < deadline, "training never wrote a checkpoint"
        time.sleep(0.5)
    # The whole process group, as a terminal's Ctrl-C does: the engine, Snakemake, the step and Marian.
    os.killpg(process.pid, interruption)
    code, output = finish(process, timeout=120)
    # A kill that came after the engine's end would test nothing: its exit status says it was running.
    if interruption == signal.SIGKILL:
        assert code == -signal.SIGKILL, f"the engine had ended ({code}) before the kill:\n{output}"
    if interruption == signal.SIGINT:
        assert code == 130, output
        assert "Interrupted: run the same command again to resume" in output
    finished_before_kill = done_records(run_dir)
    assert "build-vocab-en-fr" in finished_before_kill
    assert "train-teacher-en-fr-1" not in finished_before_kill
    assert not (run_dir / "train-teacher-en-fr-1" / "artifacts" / "final.model.npz").exists()

    code, output = finish(start_localrun(quick_config, runs))
    assert code == 0, output
    assert "[started] train-teacher-en-fr-1" in output
    task_log = (run_dir / "train-teacher-en-fr-1" / "task.log").read_text()
    assert "resuming the training from the checkpoint" in task_log
    records = done_records(run_dir)
    for label, record in finished_before_kill.items():
        assert records[label] == record, f"{label} ran again after the resume"
    assert (run_dir / "train-teacher-en-fr-1" / "artifacts" / "final.model.npz").exists()
    # The cost model's estimate for this machine against what each stage took, printed and kept.
    assert "estimate against actual" in output
    comparison = json.loads((run_dir / "estimate-vs-actual.json").read_text())
    teacher = next(row for row in comparison["stages"] if row["stage"] == "train-teacher-model")
    assert teacher["finished"] == 1 and teacher["actual_s"] > 0 and teacher["estimate_s"] > 0

    mtimes = {
        p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and "/.snakemake/" not in str(p)
    }
    code, output = finish(start_localrun(quick_config, runs))
    assert code == 0, output
    assert "Nothing to do: all 10 tasks of quick are already done." in output
    assert "Snakemake" not in output
    for path, mtime in mtimes.items():
        if path.name not in ("plan.json", ".run.lock"):
            assert path.stat().st_mtime_ns == mtime, f"{path} changed on a re-run of a finished run"


@pytest.mark.e2e
@pytest.mark.timeout(2 * 900 + 300)  # two engine runs of up to 900 s each (finish)
def test_a_changed_config_reruns_only_what_it_affects(quick_config, tmp_path):
    runs = tmp_path / "runs"
    config = yaml.safe_load(quick_config.read_text())
    config["target-stage"] = "build-vocab"
    quick_config.write_text(yaml.safe_dump(config))
    code, output = finish(start_localrun(quick_config, runs))
    assert code == 0, output
    first = done_records(runs / "quick")
    assert set(first) == {
        "dataset-local_data_l10n_en_fr_train-en-fr",
        "corpus-clean-parallel-local_data_l10n_en_fr_train-en-fr",
        "corpus-clean-parallel-bicleaner-ai-local_data_l10n_en_fr_train-en-fr",
        # the devtest and test sets decontaminate the corpus
        "dataset-local_data_l10n_en_fr_dev-en-fr",
        "dataset-local_data_l10n_en_fr_test-en-fr",
        "corpus-merge-parallel-en-fr",
        "build-vocab-en-fr",
    }
    config["experiment"]["spm-vocab-size"] = 800
    quick_config.write_text(yaml.safe_dump(config))
    code, output = finish(start_localrun(quick_config, runs))
    assert code == 0, output
    assert "[  stale] build-vocab-en-fr" in output
    progress = re.search(r"Running build-vocab-en-fr \(\d+ threads\), log: (\S+)", output)
    assert progress and progress.group(1) == str(runs.resolve() / "quick/build-vocab-en-fr/task.log")
    second = done_records(runs / "quick")
    assert second["corpus-merge-parallel-en-fr"] == first["corpus-merge-parallel-en-fr"]
    assert (
        json.loads(second["build-vocab-en-fr"])["digest"] != json.loads(first["build-vocab-en-fr"])["digest"]
    )
    import sentencepiece

    vocab = runs / "quick" / "build-vocab-en-fr" / "artifacts" / "vocab.spm"
    assert sentencepiece.SentencePieceProcessor(model_file=str(vocab)).get_piece_size() == 800
    # The earlier definition's outputs (a finished training, say) are set aside, not deleted.
    previous = runs / "quick" / "build-vocab-en-fr" / "previous"
    task_log = (runs / "quick" / "build-vocab-en-fr" / "task.log").read_text()
    assert f"definition changed; the earlier definition's artifacts are in {previous.resolve()}" in task_log
    earlier_digest = json.loads(first["build-vocab-en-fr"])["digest"]
    assert json.loads((previous / "task.json").read_text())["digest"] == earlier_digest
    earlier_vocab = str(previous / "artifacts" / "vocab.spm")
    assert sentencepiece.SentencePieceProcessor(model_file=earlier_vocab).get_piece_size() != 800


def test_trainings_ready_together_share_the_cores_and_others_get_what_they_ask():
    from localrun.__main__ import render_plan
    from localrun.plan import task_threads
    from translations_taskgraph.training_config import validate_training_config

    config = yaml.safe_load((REPO_ROOT / "tests" / "configs" / "micro.yml").read_text())
    plan, _ = render_plan(validate_training_config(config))
    members = [label for label in plan["tasks"] if label.startswith("train-teacher-")]
    assert len(members) == 2
    for cores, each in ((1, 1), (2, 1), (3, 1), (8, 4)):
        assert [task_threads(plan, label, cores) for label in members] == [each, each]
    backward = "backtranslations-train-backwards-model-en-fr"
    assert task_threads(plan, backward, 2) == 2  # a training alone gets every core
    assert task_threads(plan, "distillation-parallel-src-translate-en-fr-1-2", 2) == 2  # not a training
    assert task_threads(plan, "corpus-merge-devset-en-fr", 8) == 1  # asks for one
    config["experiment"]["teacher-ensemble"] = 1
    plan, _ = render_plan(validate_training_config(config))
    assert task_threads(plan, "train-teacher-en-fr-1", 2) == 2
