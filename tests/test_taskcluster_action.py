"""The `train` action: listed by `taskgraph actions`, its generated schema, its callback in test mode and for
real against the fake Taskcluster API, and the permission check."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from fake_taskcluster import fake_tc_fixture  # noqa: F401  (the fake_tc fixture)
from taskgraph.actions.registry import trigger_action_callback

from translations_taskgraph.actions.train import train_input_schema
from translations_taskgraph.render import TASKCLUSTER_DIR, build_parameters
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKGRAPH = str(Path(sys.executable).parent / "taskgraph")
DECISION_ID = "DecisionTask0000000000"
GROUP_ID = "GroupId000000000000000"


def load(name):
    return yaml.safe_load((REPO_ROOT / name).read_text())


def env_for(fake, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    env.update(
        TASK_ID=DECISION_ID,
        TASKCLUSTER_ROOT_URL=fake.root_url,
        **extra,
    )
    return env


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "parameters.yml"
    path.write_text(yaml.safe_dump(dict(build_parameters(load("configs/tiny.yml")))))
    return path


def test_taskgraph_actions_lists_train_with_the_generated_schema(tmp_path, params_file):
    result = subprocess.run(
        [TASKGRAPH, "actions", "--root", str(TASKCLUSTER_DIR), "-p", str(params_file)],
        env=dict(os.environ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    actions = {action["name"]: action for action in json.loads(result.stdout)["actions"]}
    train = actions["train"]
    assert train["hookGroupId"] == "project-translations"
    assert train["hookId"].startswith("in-tree-action-1-train/")
    assert train["extra"]["actionPerm"] == "train"
    assert train["context"] == []
    assert train["schema"] == train_input_schema()
    # Its input goes through to the action task unchanged.
    assert train["hookPayload"]["user"]["input"] == {"$eval": "input"}
    validator = jsonschema.Draft7Validator(train["schema"])
    for config in [*REPO_ROOT.glob("configs/*.yml"), *REPO_ROOT.glob("taskcluster/configs/*.yml")]:
        assert not list(validator.iter_errors(yaml.safe_load(config.read_text()))), config
    broken = load("configs/tiny.yml")
    broken["experiment"]["teacher-ensemble"] = "two"
    assert list(validator.iter_errors(broken))


def run_test_action(fake, tmp_path, params_file, config):
    input_path = tmp_path / "input.yml"
    input_path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [
            TASKGRAPH,
            "test-action-callback",
            "--root",
            str(TASKCLUSTER_DIR),
            "--task-group-id",
            GROUP_ID,
            "--input",
            str(input_path),
            "-p",
            str(params_file),
            "train",
        ],
        env=env_for(fake),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def ancestors(graph: dict, labels) -> set:
    seen, pending = set(), list(labels)
    while pending:
        label = pending.pop()
        if label not in seen:
            seen.add(label)
            pending.extend(graph[label]["dependencies"].values())
    return seen


@pytest.mark.parametrize("stage_task", ["build-vocab-en-fr", "corpus-merge-devset-en-fr", "report-en-fr"])
def test_test_action_callback_renders_up_to_the_target_stage(fake_tc, tmp_path, params_file, stage_task):
    config = load("configs/tiny.yml")
    # The stage of a known task, so that the test follows renamed stages.
    from translations_taskgraph.render import generator_for

    full = generator_for(validate_training_config(config)).full_task_graph
    stage = full.tasks[stage_task].attributes["stage"]
    config["target-stage"] = stage
    result = run_test_action(fake_tc, tmp_path, params_file, config)
    assert result.returncode == 0, result.stderr[-3000:]
    artifacts = tmp_path / "artifacts"
    full_json = json.loads((artifacts / "full-task-graph.json").read_text())
    target = json.loads((artifacts / "target-tasks.json").read_text())
    assert set(target) == {
        label for label, task in full_json.items() if task["attributes"].get("stage") == stage
    }
    graph = json.loads((artifacts / "task-graph.json").read_text())
    labels = {task["label"] for task in graph.values()}
    assert labels == ancestors(full_json, target)
    parameters = yaml.safe_load((artifacts / "parameters.yml").read_text())
    assert parameters["target_tasks_method"] == "train-target-tasks"
    assert parameters["tasks_for"] == "action"
    assert parameters["training_config"] == validate_training_config(config)
    # Preflight's estimate of the graph it creates, for the report task (pipeline/eval/taskcluster_times.py).
    estimate = json.loads((artifacts / "estimate.json").read_text())
    assert set(estimate["tasks"]) == labels and all(
        cost["seconds"] > 0 for cost in estimate["tasks"].values()
    )
    # Test mode creates nothing.
    assert fake_tc.created == []


def test_test_action_callback_refuses_an_invalid_config_naming_the_key(fake_tc, tmp_path, params_file):
    config = load("configs/tiny.yml")
    config["experiment"]["teacher-ensemble"] = 0
    config["experiment"]["bogus-key"] = 1
    result = run_test_action(fake_tc, tmp_path, params_file, config)
    assert result.returncode == 1
    assert "experiment.teacher-ensemble" in result.stderr
    assert "experiment.bogus-key" in result.stderr
    assert not (tmp_path / "artifacts" / "full-task-graph.json").exists()
    assert fake_tc.requests == []


def test_the_action_needs_the_train_scope_then_creates_the_tasks(fake_tc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASK_ID", "ActionTask000000000000")
    config = load("configs/tiny.yml")
    parameters = dict(build_parameters(config, tasks_for="github-push"))
    repository = parameters["head_repository"].removeprefix("https://")
    with pytest.raises(ValueError, match="action:train"):
        trigger_action_callback(GROUP_ID, None, config, "train", parameters, str(TASKCLUSTER_DIR))
    assert fake_tc.created == []
    fake_tc.scopes = [f"assume:repo:{repository}:action:generic"]
    with pytest.raises(ValueError, match="action:train"):
        trigger_action_callback(GROUP_ID, None, config, "train", parameters, str(TASKCLUSTER_DIR))
    fake_tc.scopes = [f"assume:repo:{repository}:action:train"]
    trigger_action_callback(GROUP_ID, None, config, "train", parameters, str(TASKCLUSTER_DIR))
    labels = {fake_tc.tasks[task_id]["metadata"]["name"] for task_id in fake_tc.created}
    graph = json.loads((tmp_path / "artifacts" / "task-graph.json").read_text())
    assert labels == {task["label"] for task in graph.values()}
    full = json.loads((tmp_path / "artifacts" / "full-task-graph.json").read_text())
    assert {label for label, task in full.items() if "stage" in task["attributes"]} <= labels
    # The action task heads the new task group (what a later previous-group-ids names).
    assert {fake_tc.tasks[task_id]["taskGroupId"] for task_id in fake_tc.created} == {
        "ActionTask000000000000"
    }
