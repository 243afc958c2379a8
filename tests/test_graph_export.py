"""The student's last mile in the rendered graphs: shortlist, int8 quantization, evaluations, export, report."""

import json

import pytest
import yaml

from conftest import REPO_ROOT
from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import STAGES

LAST_MILE = [
    "distillation-corpus-build-shortlist",
    "distillation-student-model-quantize",
    "evaluate-student",
    "evaluate-finetuned-student",
    "evaluate-quantized",
    "export",
]


def load(name):
    return yaml.safe_load((REPO_ROOT / name).read_text())


@pytest.fixture(scope="module")
def full_graph():
    return generator_for(load("configs/en-fr.full.yml")).full_task_graph


def deps(graph, label):
    return set(graph.tasks[label].dependencies.values()) - {"docker-image-base"}


def test_last_mile_stages_follow_the_student_in_pipeline_order():
    assert all(stage in STAGES for stage in LAST_MILE)
    order = [STAGES.index(stage) for stage in ["distillation-student-model-finetune", *LAST_MILE, "report"]]
    assert STAGES.index("distillation-student-model-finetune") < min(order[1:])
    assert STAGES.index("export") < STAGES.index("report")


def test_full_graph_evaluates_every_model_on_every_test_set(full_graph):
    labels = set(full_graph.tasks)
    tests = sorted(
        t.attributes["dataset"]
        for t in full_graph.tasks.values()
        if t.kind == "dataset" and "test" in t.attributes.get("dataset-categories", [])
    )
    assert tests
    models = {
        t.attributes["model"]
        for t in full_graph.tasks.values()
        if t.kind.startswith("evaluate") and "model" in t.attributes
    }
    assert models == {"backward", "teacher", "teacher-ensemble", "student", "student-finetuned", "quantized"}
    for kind in ("evaluate-quantized", "evaluate-student"):
        evaluations = [t for t in full_graph.tasks.values() if t.kind == kind]
        assert len(evaluations) == len(tests) * (2 if kind == "evaluate-student" else 1)
    export = "export-en-fr"
    quantize = "distillation-student-model-quantize-en-fr"
    assert deps(full_graph, quantize) == {
        "distillation-student-model-finetune-en-fr",
        "distillation-corpus-build-shortlist-en-fr",
    }
    assert deps(full_graph, export) == {quantize} | {
        label for label in labels if label.startswith("evaluate-quantized-")
    }
    report = deps(full_graph, "report-en-fr")
    assert {label for label in labels if label.startswith("evaluate-")} <= report


def test_export_step_carries_the_config_and_the_quantized_evaluations(full_graph):
    task = full_graph.tasks["export-en-fr"]
    step = task.attributes["step"]
    args = dict((flag, value) for flag, value in step["args"])
    assert args["--model-dir"] == {"task": "distillation-student-model-quantize-en-fr", "artifact": None}
    assert {ref["artifact"] for ref in args["--metrics"]} == {"metrics.json"}
    config = load("configs/en-fr.full.yml")
    assert json.loads(args["--config-experiment"])["src"] == config["experiment"]["src"]
    assert json.loads(args["--config-datasets"])["train"] == config["datasets"]["train"]
    assert args["--architecture"] == config["experiment"].get("student-model", "tiny")
    assert "model.enfr.intgemm8.bin.gz" in step["outputs"] and "metadata.json" in step["outputs"]
    command = task.task["payload"]["command"][-1]
    assert "python3 -m pipeline.export.export" in command
    assert (
        '"$MOZ_FETCHES_DIR"/distillation-student-model-quantize-en-fr' in task.task["payload"]["command"][-1]
    )


def test_report_fetches_logs_and_evaluations_not_models(full_graph):
    task = full_graph.tasks["report-en-fr"]
    args = task.attributes["step"]["args"]
    for flag, value in args:
        if flag.endswith("-logs"):
            assert value and all(ref["artifact"] == "train.log" for ref in value), flag
        if flag.endswith("evaluations"):
            assert value and all(ref["artifact"] is None for ref in value), flag


@pytest.mark.parametrize("stage", ["distillation-student-model-quantize", "export"])
def test_target_stage_stops_at_the_last_mile(stage):
    config = load("configs/tiny.yml")
    config["target-stage"] = stage
    graph = generator_for(config).target_task_graph
    labels = set(graph.tasks)
    assert "distillation-student-model-quantize-en-fr" in labels
    assert ("export-en-fr" in labels) == (stage == "export")
    assert "report-en-fr" not in labels
