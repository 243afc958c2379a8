"""`task train` against the fake Taskcluster API, and `task preflight-check` offline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_taskcluster import fake_tc_fixture  # noqa: F401  (the fake_tc fixture)
from taskgraph.actions.registry import render_actions_json
from taskgraph.config import load_graph_config

from translations_taskgraph import preflight, trigger_training
from translations_taskgraph.render import TASKCLUSTER_DIR, build_parameters
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DECISION_ID = "DecisionTask0000000000"
REVISION = "a" * 40


def actions_json(tasks_for="github-push"):
    """The actions.json a decision task of this checkout publishes."""
    graph_config = load_graph_config(str(TASKCLUSTER_DIR))
    graph_config.register()
    parameters = build_parameters(
        yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text()), tasks_for=tasks_for
    )
    return render_actions_json(parameters, graph_config, DECISION_ID)


@pytest.fixture
def decision(fake_tc, monkeypatch):
    fake_tc.add_task(
        DECISION_ID, {"metadata": {"name": "Decision Task (push)"}, "tags": {"kind": "decision-task"}}
    )
    fake_tc.add_artifact(DECISION_ID, "public/actions.json", json.dumps(actions_json()))
    fake_tc.index[f"translations.v2.translations.revision.{REVISION}.taskgraph.decision"] = DECISION_ID
    monkeypatch.setenv("TASKCLUSTER_CLIENT_ID", "dev")
    monkeypatch.setenv("TASKCLUSTER_ACCESS_TOKEN", "secret")
    return fake_tc


def test_task_train_triggers_the_hook_with_the_config_as_input(decision, capsys):
    config_path = REPO_ROOT / "configs/en-fr.full.yml"
    assert (
        trigger_training.main(["--config", str(config_path), "--revision", REVISION, "--branch", "main"]) == 0
    )
    (hook,) = decision.hooks
    assert hook["hookGroupId"] == "project-translations"
    assert hook["hookId"].startswith("in-tree-action-1-train/")
    payload = hook["payload"]
    assert payload["user"]["input"] == yaml.safe_load(config_path.read_text())
    assert payload["user"]["taskGroupId"] == DECISION_ID
    assert payload["user"]["taskId"] is None
    assert payload["decision"]["action"]["cb_name"] == "train"
    assert "action task ActionTaskId0000000000" in capsys.readouterr().out


def test_task_train_dry_run_prints_the_payload_and_tasks_and_triggers_nothing(decision, capsys):
    config_path = REPO_ROOT / "configs/tiny.yml"
    assert trigger_training.main(["--config", str(config_path), "--revision", REVISION, "--dry-run"]) == 0
    # Offline even with a reachable API and credentials: not one request, let alone a trigger.
    assert decision.requests == [] and decision.hooks == []
    out = capsys.readouterr().out
    payload = json.loads(out.split("would be triggered with:\n", 1)[1].split("\ntasks the action", 1)[0])
    assert payload["user"]["input"] == yaml.safe_load(config_path.read_text())
    assert payload["decision"]["action"]["cb_name"] == "train"
    # The hook rendered offline is the one a decision task of this checkout publishes.
    (published,) = [a for a in actions_json()["actions"] if a["name"] == "train"]
    assert f"hook {published['hookGroupId']}/{published['hookId']} would be triggered" in out
    assert f"translations.v2.translations.revision.{REVISION}.taskgraph.decision" in out
    assert "train-teacher-en-fr-1" in out and "report-en-fr" in out


# Runs `task train --dry-run` with every socket operation refused: any network use fails the run.
OFFLINE_GUARD = """
import socket, sys

def refuse(*args, **kwargs):
    raise OSError(f"network use in an offline dry run: {args!r}")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse
from translations_taskgraph import trigger_training

sys.exit(trigger_training.main(sys.argv[1:]))
"""


def test_task_train_dry_run_is_offline_without_any_taskcluster_variable():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env[name] = "http://127.0.0.1:9"  # a dead port, should anything bypass the guard
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    config_path = REPO_ROOT / "configs/en-fr.full.yml"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            OFFLINE_GUARD,
            "--config",
            str(config_path),
            "--branch",
            "feature",
            "--dry-run",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "network use" not in result.stderr
    assert out.startswith("dry run (offline")
    assert "translations.v2.translations-pr.branch.feature.latest.taskgraph.decision" in out
    assert "hook project-translations/in-tree-action-1-train/" in out
    payload = json.loads(out.split("would be triggered with:\n", 1)[1].split("\ntasks the action", 1)[0])
    assert payload["user"]["input"] == yaml.safe_load(config_path.read_text())
    assert payload["user"]["taskGroupId"] == trigger_training.OFFLINE_DECISION_TASK_ID
    assert payload["decision"]["push"]["branch"] == "feature"
    assert "train-teacher-en-fr-1" in out and "report-en-fr" in out


def test_task_train_without_a_root_url_says_so_before_any_request(monkeypatch, capsys):
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    assert (
        trigger_training.main(["--config", str(REPO_ROOT / "configs/tiny.yml"), "--revision", REVISION]) == 1
    )
    err = capsys.readouterr().err
    assert "TASKCLUSTER_ROOT_URL is not set" in err and "--dry-run" in err


def test_task_train_without_credentials_says_so_before_any_request(fake_tc, capsys):
    assert (
        trigger_training.main(["--config", str(REPO_ROOT / "configs/tiny.yml"), "--revision", REVISION]) == 1
    )
    assert "no Taskcluster credentials" in capsys.readouterr().err
    assert fake_tc.requests == [] and fake_tc.hooks == []


def test_task_train_falls_back_to_the_branch_index(decision):
    decision.index.clear()
    decision.index["translations.v2.translations-pr.branch.feature.latest.taskgraph.decision"] = DECISION_ID
    assert (
        trigger_training.main(["--config", str(REPO_ROOT / "configs/tiny.yml"), "--branch", "feature"]) == 0
    )
    assert len(decision.hooks) == 1


def test_task_train_without_a_decision_task_says_so(decision, capsys):
    decision.index.clear()
    assert (
        trigger_training.main(["--config", str(REPO_ROOT / "configs/tiny.yml"), "--branch", "nowhere"]) == 1
    )
    assert "no decision task found" in capsys.readouterr().err
    assert decision.hooks == []


def test_task_train_refuses_a_wrong_config_before_any_request(decision, tmp_path, capsys):
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    config["experiment"]["teacher-model"] = "huge"
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(config))
    assert trigger_training.main(["--config", str(path), "--revision", REVISION]) == 1
    assert "experiment.teacher-model" in capsys.readouterr().err
    assert decision.requests == []


def test_task_train_reports_a_failed_request(decision, capsys):
    decision.fail.add("/api/hooks/")
    assert (
        trigger_training.main(["--config", str(REPO_ROOT / "configs/tiny.yml"), "--revision", REVISION]) == 1
    )
    assert "a Taskcluster request failed" in capsys.readouterr().err


def test_preflight_check_runs_offline_and_prints_the_plan(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    # A root URL no request can reach: the check must not make any.
    env["TASKCLUSTER_ROOT_URL"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "translations_taskgraph.preflight",
            "--config",
            "configs/en-fr.full.yml",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "en-fr-full (en-fr), target stage" in out
    assert "b-linux-gpu-4: 2" in out
    assert "GPU-hours" in out and "CPU-hours" in out and "h wall time" in out and "GB of artifacts" in out
    # Every GPU stage has its GPU-hours, the data stages their CPU-hours, in the table and in the JSON.
    estimate = json.loads((tmp_path / "estimate.json").read_text())
    rows = {row["stage"]: row for row in estimate["stages"]}
    for stage in (
        "backtranslations-train-backwards-model",
        "train-teacher-model",
        "backtranslations-mono-trg-translate",
        "distillation-parallel-src-translate",
        "distillation-mono-src-translate",
        "distillation-corpus-final-filtering",
        "distillation-student-model-train",
        "distillation-student-model-finetune",
        "corpus-clean-parallel-bicleaner-ai",
    ):
        assert rows[stage]["gpu_hours"] > 0, stage
        assert any(line.split()[:1] == [stage] for line in out.splitlines()), stage
    for stage in (
        "dataset",
        "corpus-clean-parallel",
        "corpus-clean-mono",
        "corpus-merge-parallel",
        "corpus-merge-mono",
    ):
        assert rows[stage]["cpu_hours"] > 0 and rows[stage]["gpu_hours"] == 0, stage
    assert estimate["teacher_share_of_gpu_hours"] < 0.9
    assert "unknown, assumed" in out
    for name in (
        "parameters.yml",
        "actions.json",
        "full-task-graph.json",
        "target-tasks.json",
        "task-graph.json",
    ):
        assert (tmp_path / "artifacts" / name).exists(), name
    graph = json.loads((tmp_path / "artifacts" / "task-graph.json").read_text())
    assert f"{len(graph)} tasks would run" in out


def test_preflight_check_refuses_a_wrong_config(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    config["datasets"]["train"] = ["nope_x"]
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(config))
    assert preflight.main(["--config", str(path), "--output-dir", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out" / "artifacts").exists()


def test_preflight_estimate_scales_with_the_config():
    graph_for = {}
    for teacher, ensemble in (("tiny", 1), ("big", 1), ("big", 2)):
        config = yaml.safe_load((REPO_ROOT / "configs/en-fr.full.yml").read_text())
        config["experiment"]["teacher-model"] = teacher
        config["experiment"]["teacher-ensemble"] = ensemble
        config = validate_training_config(config)
        from translations_taskgraph.render import generator_for

        generator = generator_for(config)
        graph = {
            task.task_id or task.label: task.to_json() for task in generator.target_task_graph.tasks.values()
        }
        for task in graph.values():
            task["dependencies"] = {}
        graph_for[(teacher, ensemble)] = preflight.estimate(config, graph, preflight.worker_gpu_counts())
    assert graph_for[("big", 1)]["gpu_hours"] > graph_for[("tiny", 1)]["gpu_hours"]
    # Every stage is costed now, not the teachers alone: a second member doubles the teachers' own stages.

    def stage_gpu(estimate, stage):
        return next(row["gpu_hours"] for row in estimate["stages"] if row["stage"] == stage)

    for stage in (
        "train-teacher-model",
        "distillation-parallel-src-translate",
        "distillation-mono-src-translate",
    ):
        assert stage_gpu(graph_for[("big", 2)], stage) > 1.9 * stage_gpu(graph_for[("big", 1)], stage), stage
    assert stage_gpu(graph_for[("big", 2)], "distillation-student-model-train") == pytest.approx(
        stage_gpu(graph_for[("big", 1)], "distillation-student-model-train")
    )
    assert graph_for[("big", 2)]["gpu_hours"] > graph_for[("big", 1)]["gpu_hours"]
    assert graph_for[("big", 2)]["disk_gb"] > graph_for[("big", 1)]["disk_gb"]
