"""The report's time per stage on Taskcluster (issues 20 and 22): the estimate the decision task published of
its graph, against the run times of the report's task group, read from a fake Queue on 127.0.0.1."""

from pathlib import Path

import yaml
from fake_taskcluster import fake_tc_fixture  # noqa: F401  (the fake_tc fixture)

from pipeline.eval import report
from translations_taskgraph.estimate_artifact import publish_estimate
from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent


def seed_group(fake, tmp_path, monkeypatch):
    """A decision task that published its estimate (the morph, as the decision runs it) and a group of tasks."""
    config = validate_training_config(yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text()))
    graph = generator_for(config).target_task_graph
    monkeypatch.chdir(tmp_path)  # the decision's artifacts/ folder
    assert publish_estimate(graph, {}, {"training_config": config}, None) == (graph, {})
    decision = {"metadata": {"name": "Decision Task"}, "tags": {"kind": "decision-task"}}
    fake.add_task("Decision0", decision, group="Group0", seconds=[60])
    fake.add_artifact(
        "Decision0", "public/estimate.json", (tmp_path / "artifacts" / "estimate.json").read_text()
    )
    # The teacher was preempted once: both runs cost worker time.
    fake.add_task(
        "Teacher0", {"metadata": {"name": "train-teacher-en-fr-1"}}, group="Group0", seconds=[3000, 1200]
    )
    fake.add_task("Vocab0", {"metadata": {"name": "build-vocab-en-fr"}}, group="Group0", seconds=[30])
    fake.add_task("Export0", {"metadata": {"name": "export-en-fr"}}, state="running", group="Group0")
    own = {"metadata": {"name": "report-en-fr"}, "extra": {"parent": "Decision0"}}
    fake.add_task("Report0", own, state="running", group="Group0", seconds=[5])


def test_the_report_task_reads_its_groups_times_against_the_estimate(fake_tc, tmp_path, monkeypatch):  # noqa: F811
    seed_group(fake_tc, tmp_path, monkeypatch)
    monkeypatch.setenv("TASK_ID", "Report0")
    times = report.read_stage_times(None)
    assert times["engine"] == "taskcluster"
    stages = {row["stage"]: row for row in times["stages"]}
    assert set(stages) == {
        "train-teacher-model",
        "build-vocab",
    }  # completed tasks only; not the report itself
    teacher = stages["train-teacher-model"]
    assert (teacher["finished"], teacher["tasks"], teacher["actual_s"]) == (1, 1, 4200.0)
    assert teacher["estimate_s"] > 0 and teacher["actual_over_estimate"] == 4200.0 / teacher["estimate_s"]
    assert stages["build-vocab"]["actual_s"] == 30.0
    assert times["not_in_graph"] == ["Decision Task"]
    section = "\n".join(report.stage_time_section(times))
    assert "Taskcluster's workers, one task each" in section
    assert "| train-teacher-model | 1/1 |" in section and "| 70.0 min |" in section


def test_a_queue_out_of_reach_leaves_the_section_saying_why(fake_tc, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TASK_ID", "NoSuchTask")
    times = report.read_stage_times(None)
    assert times["stages"] == [] and "could not be read" in times["unavailable"]
    assert report.stage_time_section(times)[3].startswith("Not available: the task group's times")


def test_outside_taskcluster_and_without_a_file_there_is_no_section(monkeypatch):
    monkeypatch.delenv("TASK_ID", raising=False)
    assert report.read_stage_times(None) is None and report.stage_time_section(None) == []
