"""`task status` and `task run-task` (issue 19, item 3): where a local run stands, per stage, with a failed task's
last log lines and log path, a running training's progress; and one task run by hand as the engine runs it."""

import fcntl
import json
import subprocess
import sys

import pytest
import yaml
from test_local_engine import QUICK_CONFIG
from test_report_convergence import marian_log

from conftest import REPO_ROOT
from localrun.__main__ import render
from localrun.plan import write_plan
from localrun.run_task import FINISHED_MARK
from translations_taskgraph.training_config import validate_training_config


@pytest.fixture(scope="module")
def quick_plan():
    _, plan, _ = render(validate_training_config(json.loads(json.dumps(QUICK_CONFIG))))
    return plan


@pytest.fixture
def run(tmp_path, quick_plan):
    config = tmp_path / "quick.yml"
    config.write_text(yaml.safe_dump(QUICK_CONFIG))
    run_dir = tmp_path / "runs" / "quick"
    run_dir.mkdir(parents=True)
    write_plan(quick_plan, run_dir / "plan.json")
    return config, run_dir, quick_plan


def command(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_status_shows_each_state_a_failed_tasks_log_and_a_trainings_progress(run):
    config, run_dir, plan = run
    done, failed, interrupted, running = (
        next(label for label in plan["order"] if label.startswith(prefix))
        for prefix in ("dataset-local_data_l10n_en_fr_train", "dataset-local_data_l10n_en_fr_dev", "build-vocab", "train-teacher")
    )  # fmt: skip
    (run_dir / done).mkdir()
    (run_dir / done / "done.json").write_text(json.dumps({"digest": plan["tasks"][done]["digest"]}))
    (run_dir / failed).mkdir()
    (run_dir / failed / "task.1.log").write_text("the first attempt\n")
    (run_dir / failed / "task.log").write_text(
        "running: python -m pipeline.data.import_dataset ...\nerror: local dataset: no such file\n"
        f"{FINISHED_MARK} exit status 1\n"
    )
    (run_dir / interrupted / "artifacts").mkdir(parents=True)
    (run_dir / interrupted / "task.log").write_text("[localrun] build-vocab: attempt 1, started\n")
    marian_log(run_dir / running / "artifacts", [(250, 3.5), (500, 7.25)])
    lock = open(run_dir / running / ".lock", "w")  # noqa: SIM115 (the task's process, as run_task.py holds it)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        result = command("localrun.status", "--config", config, "--runs-dir", run_dir.parent, "--no-eta",
                         "--json", run_dir / "status.json")  # fmt: skip
    finally:
        lock.close()
    assert result.returncode == 1, result.stderr  # a failed task
    out = result.stdout
    assert (
        f"{len(plan['order'])} tasks: 1 done, 1 running, 1 failed, 1 interrupted, {len(plan['order']) - 4} pending"
        in out
    )
    assert f"RUNNING {running}: update 500, 4,870 words/s, last validation chrf 7.25 at update 500" in out
    assert f"FAILED {failed}: log {run_dir / failed / 'task.log'}" in out
    assert f"earlier attempts: {run_dir / failed / 'task.1.log'}" in out
    assert "  | error: local dataset: no such file" in out
    assert f"INTERRUPTED {interrupted}" in out
    status = json.loads((run_dir / "status.json").read_text())
    assert status["stages"]["dataset"]["done"] == 1 and status["stages"]["dataset"]["failed"] == 1


def test_status_gives_an_eta_from_the_cost_model(run):
    config, run_dir, _ = run
    result = command("localrun.status", "--config", config, "--runs-dir", run_dir.parent)
    assert result.returncode == 0, result.stderr
    assert "ETA: about " in result.stdout and "of work left on this machine" in result.stdout


def test_status_of_a_config_never_run(tmp_path):
    config = tmp_path / "quick.yml"
    config.write_text(yaml.safe_dump(QUICK_CONFIG))
    result = command("localrun.status", "--config", config, "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2 and "holds no run yet" in result.stderr


def test_run_task_runs_one_task_as_the_engine_does_and_refuses_one_whose_inputs_are_missing(run):
    config, run_dir, plan = run
    label = next(label for label in plan["order"] if label.startswith("dataset-local_data_l10n_en_fr_dev"))
    result = command("localrun.run_one", "--config", config, label, "--runs-dir", run_dir.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((run_dir / label / "done.json").read_text())
    assert record["digest"] == plan["tasks"][label]["digest"]
    assert {"corpus.en.zst", "corpus.fr.zst"} <= {p.name for p in (run_dir / label / "artifacts").iterdir()}
    again = command("localrun.run_one", "--config", config, label, "--runs-dir", run_dir.parent)
    assert again.returncode == 0 and "is already done" in again.stdout

    teacher = next(label for label in plan["order"] if label.startswith("train-teacher"))
    refused = command("localrun.run_one", "--config", config, teacher, "--runs-dir", run_dir.parent)
    assert (
        refused.returncode == 2
        and f"error: {teacher} needs " in refused.stderr
        and "done first" in refused.stderr
    )
    unknown = command("localrun.run_one", "--config", config, "train-nothing", "--runs-dir", run_dir.parent)
    assert unknown.returncode == 2 and "no task 'train-nothing'" in unknown.stderr


def test_progress_lines_of_a_training_against_its_cap_and_of_a_translation(tmp_path):
    from localrun.status import task_progress

    training = tmp_path / "train-teacher-en-fr-1"
    marian_log(training / "artifacts", [(250, 8.5), (500, 17.0)])
    (training / "artifacts" / "training-clock.json").write_text(json.dumps({"seconds": 450.0}))
    teacher = {"step": {"args": [["--marian-args", json.dumps({"after": "10e,20m", "valid-freq": 250})]]}}
    assert task_progress(training, teacher) == (
        "update 500, 4,870 words/s, last validation chrf 17 at update 500, 8 min trained so far "
        "of a 20 min cap (ETA 12 min)"
    )
    # Validated at update 750, between the display lines of 700 and 800: the progress is at 750.
    marian_log(training / "artifacts", [(250, 8.5), (500, 17.0), (750, 21.0)])
    assert task_progress(training, teacher).startswith(
        "update 750, 4,870 words/s, last validation chrf 21 at update 750"
    )
    translation = tmp_path / "distillation-parallel-src-translate-en-fr-1-2"
    translation.mkdir()
    (translation / "task.log").write_text(
        "[2026-12-04 10:00:00] translate: part 0 translated (2000 lines): 2000 of 12158 lines done\n"
        "[2026-12-04 10:01:00] translate: part 1 translated (2000 lines): 4000 of 12158 lines done\n"
    )
    assert task_progress(translation, {"step": {"args": []}}) == "4,000 of 12,158 lines translated (33%)"
    assert task_progress(tmp_path / "nothing-yet", {"step": {"args": []}}) == "running"
