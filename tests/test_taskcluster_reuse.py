"""previous-group-ids and start-task-prefix: which tasks of earlier task groups a new run reuses, and which
it runs again, against the fake Taskcluster API."""

import json
from pathlib import Path

import pytest
import slugid
import yaml
from fake_taskcluster import fake_tc_fixture  # noqa: F401  (the fake_tc fixture)
from taskgraph.actions.registry import trigger_action_callback

import taskcluster
from translations_taskgraph.render import TASKCLUSTER_DIR, build_parameters, generator_for
from translations_taskgraph.reuse import existing_tasks_from_groups
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent


def tiny():
    """The tiny config without monolingual data: the teacher path, without back-translation and distillation."""
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    config["datasets"]["mono-src"] = config["datasets"]["mono-trg"] = []
    return config


@pytest.fixture(scope="module")
def full_graph():
    return generator_for(validate_training_config(tiny())).full_task_graph


def seed_group(fake, graph, group_id, failed=()):
    """A finished task group of `graph` in the fake queue: label -> taskId. Tasks in `failed` failed, and
    what depends on them never ran."""
    decision = group_id
    fake.add_task(
        decision,
        {"metadata": {"name": "Decision Task (push)"}, "tags": {"kind": "decision-task"}},
        group=group_id,
    )
    ids = {label: slugid.nice() for label in graph.tasks}
    blocked = set(failed)
    for label in graph.graph.visit_postorder():
        task = graph.tasks[label]
        deps = [ids[d] for d in task.dependencies.values()] or [decision]
        if any(dep in blocked for dep in task.dependencies.values()):
            blocked.add(label)
        state = "failed" if label in failed else "pending" if label in blocked else "completed"
        fake.add_task(
            ids[label],
            {"metadata": {"name": label}, "tags": {"kind": task.kind}, "dependencies": deps},
            state=state,
            group=group_id,
        )
    return ids


def queue(fake):
    return taskcluster.Queue({"rootUrl": fake.root_url})


def with_descendants(graph, label) -> set:
    """The task and every task that depends on it, directly or not."""
    found = {label}
    for other in graph.graph.visit_postorder():
        if found & set(graph.tasks[other].dependencies.values()):
            found.add(other)
    return found


def pipeline_labels(graph):
    return {label for label, task in graph.tasks.items() if "stage" in task.attributes}


def test_completed_tasks_of_a_group_are_reused(fake_tc, full_graph):
    ids = seed_group(fake_tc, full_graph, "GroupA000000000000000A", failed={"train-teacher-en-fr-1"})
    reused = existing_tasks_from_groups(["GroupA000000000000000A"], queue=queue(fake_tc))
    never_ran = with_descendants(full_graph, "train-teacher-en-fr-1")
    assert {
        "report-en-fr",
        *(label for label in full_graph.tasks if "evaluate-teacher" in label),
    } <= never_ran
    assert set(reused) == set(full_graph.tasks) - never_ran
    assert all(reused[label] == ids[label] for label in reused)
    assert "Decision Task (push)" not in reused


def test_a_later_group_wins_and_ancestors_come_from_older_groups(fake_tc, full_graph):
    first = seed_group(fake_tc, full_graph, "GroupA000000000000000A")
    # Group B re-ran only the vocabulary (depending on group A's merge task, not listed below).
    fake_tc.add_task(
        "VocabB0000000000000000",
        {
            "metadata": {"name": "build-vocab-en-fr"},
            "tags": {"kind": "build-vocab"},
            "dependencies": [first["corpus-merge-parallel-en-fr"], first["docker-image-base"]],
        },
        group="GroupB000000000000000B",
    )
    reused = existing_tasks_from_groups(["GroupB000000000000000B"], queue=queue(fake_tc))
    assert reused["build-vocab-en-fr"] == "VocabB0000000000000000"
    assert reused["corpus-merge-parallel-en-fr"] == first["corpus-merge-parallel-en-fr"]
    assert "train-teacher-en-fr-1" not in reused
    both = existing_tasks_from_groups(
        ["GroupA000000000000000A", "GroupB000000000000000B"], queue=queue(fake_tc)
    )
    assert both["build-vocab-en-fr"] == "VocabB0000000000000000"
    assert both["train-teacher-en-fr-1"] == first["train-teacher-en-fr-1"]


def test_start_task_prefix_drops_the_stage_and_everything_after_it(fake_tc, full_graph):
    seed_group(fake_tc, full_graph, "GroupA000000000000000A")
    reused = existing_tasks_from_groups(["GroupA000000000000000A"], "build-vocab", queue=queue(fake_tc))
    rerun = with_descendants(full_graph, "build-vocab-en-fr")
    assert {"train-teacher-en-fr-1", "report-en-fr"} <= rerun
    assert set(reused) == set(full_graph.tasks) - rerun
    with pytest.raises(ValueError, match="matches no task"):
        existing_tasks_from_groups(["GroupA000000000000000A"], "nothing-", queue=queue(fake_tc))


def test_an_unknown_group_is_refused(fake_tc):
    with pytest.raises(ValueError, match="has no tasks"):
        existing_tasks_from_groups(["Unknown000000000000000"], queue=queue(fake_tc))


def test_the_train_action_links_to_reused_tasks_and_runs_the_rest(fake_tc, full_graph, tmp_path, monkeypatch):
    ids = seed_group(fake_tc, full_graph, "GroupA000000000000000A")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASK_ID", "ActionTask000000000000")
    config = tiny()
    config["previous-group-ids"] = ["GroupA000000000000000A"]
    config["start-task-prefix"] = "train-teacher"
    parameters = dict(build_parameters(validate_training_config(tiny())))
    trigger_action_callback(
        "GroupA000000000000000A", None, config, "train", parameters, str(TASKCLUSTER_DIR), test=True
    )
    graph = json.loads((tmp_path / "artifacts" / "task-graph.json").read_text())
    to_run = {task["label"] for task in graph.values()}
    assert to_run == with_descendants(full_graph, "train-teacher-en-fr-1")
    label_to_taskid = json.loads((tmp_path / "artifacts" / "label-to-taskid.json").read_text())
    for label in pipeline_labels(full_graph) - to_run:
        assert label_to_taskid[label] == ids[label], label
    # The new training task fetches its inputs from the reused tasks.
    teacher = next(task for task in graph.values() if task["label"] == "train-teacher-en-fr-1")
    assert ids["build-vocab-en-fr"] in json.dumps(teacher["task"]["payload"]["env"]["MOZ_FETCHES"])


def test_the_references_start_stage_restarts_a_kind_and_everything_after_it(fake_tc, full_graph):
    seed_group(fake_tc, full_graph, "GroupA000000000000000A")
    reused = existing_tasks_from_groups(
        ["GroupA000000000000000A"], queue=queue(fake_tc), start_stage="train-teacher-model"
    )
    rerun = with_descendants(full_graph, "train-teacher-en-fr-1")
    assert set(reused) == set(full_graph.tasks) - rerun
    with pytest.raises(ValueError, match="start-stage 'export-nothing' matches no task"):
        existing_tasks_from_groups(
            ["GroupA000000000000000A"], queue=queue(fake_tc), start_stage="export-nothing"
        )


def test_the_references_reuse_keys_are_read(fake_tc, full_graph, tmp_path, monkeypatch):
    """previous_group_ids (its spelling), start-stage (its stage names) and existing_tasks, as its train action
    stores them in the configs; the action links to the explicit tasks over the groups' ones."""
    from translations_taskgraph.actions.train import train_parameters

    ids = seed_group(fake_tc, full_graph, "GroupA000000000000000A")
    config = tiny()
    config.update(
        {
            "previous_group_ids": ["GroupA000000000000000A"],
            "start-stage": "train-teacher",  # the reference's older name of train-teacher-model
            "existing_tasks": {"build-vocab-en-fr": "ExplicitVocab000000000"},
        }
    )
    config = validate_training_config(config)
    assert (
        config["previous-group-ids"] == ["GroupA000000000000000A"]
        and config["start-stage"] == "train-teacher-model"
    )
    parameters = train_parameters(
        dict(build_parameters(validate_training_config(tiny()))), config, queue=queue(fake_tc)
    )
    existing = parameters["existing_tasks"]
    assert existing["build-vocab-en-fr"] == "ExplicitVocab000000000"
    assert existing["corpus-merge-parallel-en-fr"] == ids["corpus-merge-parallel-en-fr"]
    assert "train-teacher-en-fr-1" not in existing and "report-en-fr" not in existing


def test_every_stage_names_a_kind():
    from translations_taskgraph.reuse import kind_of
    from translations_taskgraph.training_config import STAGES

    kinds = {path.name for path in (TASKCLUSTER_DIR / "kinds").iterdir()}
    assert [stage for stage in STAGES if stage != "all-pipeline" and kind_of(stage) not in kinds] == []
