"""The preflight cost model's arithmetic (taskcluster/translations_taskgraph/cost_model.py), not its constants:
per-line stages scale with the corpus, split-chunks shortens the translation stages' wall time and leaves their
GPU-hours alone, sizes come from the config's caps and are never silent, and a finished local run is compared
against the estimate per stage."""

import json
from pathlib import Path

import pytest
import yaml

from translations_taskgraph import cost_model, preflight
from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_fixed_costs(monkeypatch):
    """No task overhead or start-up: what is left is proportional to the work."""
    monkeypatch.setattr(cost_model, "TASK_OVERHEAD", {"taskcluster": (0, ""), "local": (0, "")})
    monkeypatch.setattr(cost_model, "START_UP", {"clean": (0, ""), "merge": (0, "")})


def full_config(**taskcluster) -> dict:
    config = yaml.safe_load((REPO_ROOT / "configs/en-fr.full.yml").read_text())
    config["taskcluster"].update(taskcluster)
    return validate_training_config(config)


def graph_of(config: dict) -> dict:
    generator = generator_for(config)
    return {task.task_id or task.label: task.to_json() for task in generator.target_task_graph.tasks.values()}


def sized(lines: int):
    """A `count` for estimate(): every training and mono dataset holds `lines` lines, as if counted; the
    evaluation sets keep their own sizes."""
    config = yaml.safe_load((REPO_ROOT / "configs/en-fr.full.yml").read_text())
    evaluation = set(config["datasets"]["devtest"]) | set(config["datasets"]["test"])
    return lambda name: None if name in evaluation else lines


@pytest.fixture(scope="module")
def graphs():
    return {chunks: (full_config(**{"split-chunks": chunks})) for chunks in (4, 8)}


@pytest.fixture(scope="module")
def rendered(graphs):
    return {chunks: graph_of(config) for chunks, config in graphs.items()}


def stage(estimate: dict, name: str) -> dict:
    return next(row for row in estimate["stages"] if row["stage"] == name)


TRANSLATION_STAGES = (
    "backtranslations-mono-trg-translate",
    "distillation-parallel-src-translate",
    "distillation-mono-src-translate",
)


def test_split_chunks_halves_the_wall_time_of_translation_but_not_its_gpu_hours(
    graphs, rendered, no_fixed_costs
):
    gpus = preflight.worker_gpu_counts()
    four, eight = (preflight.estimate(graphs[n], rendered[n], gpus, count=sized(1_000_000)) for n in (4, 8))
    for name in TRANSLATION_STAGES:
        assert stage(eight, name)["tasks"] == 2 * stage(four, name)["tasks"] == 8
        assert stage(eight, name)["wall_hours"] == pytest.approx(
            stage(four, name)["wall_hours"] / 2, rel=1e-3
        )
        assert stage(eight, name)["gpu_hours"] == pytest.approx(stage(four, name)["gpu_hours"], rel=1e-3)
    # Nothing else changes.
    assert stage(eight, "train-teacher-model") == stage(four, "train-teacher-model")


def test_doubling_the_corpus_doubles_the_per_line_stages(graphs, rendered, no_fixed_costs):
    gpus = preflight.worker_gpu_counts()
    config, graph = graphs[8], rendered[8]
    # The config caps the mono corpora, not the parallel one: mono sizes at half their caps, so they double too.
    one, two = (preflight.estimate(config, graph, gpus, count=sized(n)) for n in (5_000_000, 10_000_000))
    for name in (
        "corpus-clean-parallel",
        "corpus-merge-parallel",
        "corpus-align-parallel",
        "backtranslations-train-backwards-model",
        "distillation-parallel-src-translate",
        "distillation-corpus-final-filtering",
        "distillation-student-model-train",
    ):
        for key in ("gpu_hours", "cpu_hours", "wall_hours", "disk_gb"):
            if key == "disk_gb" and "model" in name:  # a training's artifacts are its checkpoints
                assert stage(two, name)[key] == stage(one, name)[key]
                continue
            assert stage(two, name)[key] == pytest.approx(2 * stage(one, name)[key], rel=1e-3), (name, key)
    assert two["corpora"]["train"] == 2 * one["corpora"]["train"]
    # Evaluation does not depend on the training corpus.
    assert stage(two, "evaluate-teacher") == stage(one, "evaluate-teacher")


def test_more_gpus_on_a_worker_shorten_a_training_but_cost_at_least_as_many_gpu_hours(no_fixed_costs):
    config = full_config()
    sizes, _ = cost_model.dataset_sizes(config, count=sized(1_000_000))
    flows = cost_model.corpus_sizes(config, sizes)
    task = {
        "label": "train-teacher-en-fr-1",
        "attributes": {
            "kind": "train-teacher",
            "stage": "train-teacher-model",
            "step": {"args": [["--architecture", "big"]], "resources": {"cpus": "all", "gpus": 1}},
        },
    }
    one, four = (
        cost_model.task_cost(task, config, sizes, flows, {"engine": "taskcluster", "gpus": n, "cores": 8})
        for n in (1, 4)
    )
    assert four["seconds"] < one["seconds"] / 3
    assert four["gpu_seconds"] >= one["gpu_seconds"]


def test_sizes_come_from_the_config_caps_and_say_so():
    config = full_config()
    config["experiment"]["corpus-max-sentences"] = 10_000_000
    counted = {"local_data/l10n-en-fr/train": 40_000}
    sizes, notes = cost_model.dataset_sizes(config, count=counted.get)
    train = [n for n in config["datasets"]["train"] if n not in counted]
    # The cap is shared by the datasets of unknown size; the local one is counted.
    assert sizes[("train", train[0])] == -(-10_000_000 // len(train))
    assert sizes[("train", "local_data/l10n-en-fr/train")] == 40_000
    # Mono: the per-dataset cap, the total cap after the merge.
    assert sizes[("mono-src", "news-crawl_news.2023")] == 70_000_000
    flows = cost_model.corpus_sizes(config, sizes)
    assert flows["mono-src"] == 100_000_000 and flows["mono-trg"] == 50_000_000
    assert flows["train"] == 10_000_000
    # Every size says where it comes from; an unknown one says "unknown, assumed".
    by_name = {(n["category"], n["dataset"]): n["size"] for n in notes}
    assert by_name[("train", train[0])].startswith("unknown, assumed")
    assert "corpus-max-sentences" in by_name[("train", train[0])]
    assert "per-dataset" in by_name[("mono-src", "news-crawl_news.2023")]
    assert "counted" in by_name[("train", "local_data/l10n-en-fr/train")]
    assert len(notes) == sum(len(names) for names in config["datasets"].values())


def test_after_caps_a_training():
    assert cost_model.parse_after("10e,20m") == {"e": 10, "s": 1200}
    assert cost_model.parse_after("2h, 500u") == {"s": 7200, "u": 500}
    config = full_config()
    config["marian-args"]["training-teacher"]["after"] = "1e"
    flows = {"train": 1000, "backtranslated": 0, "filtered": 0}
    plan = cost_model.training_plan("teacher", "big", config, flows)
    assert plan["lines"] == 1000 and not plan["epochs_assumed"]


def test_every_rate_states_its_source():
    for name, entry in cost_model.rates().items():
        entries = entry.values() if "source" not in entry else [entry]
        for item in entries:
            assert item["source"].startswith(("measured here", "assumed", "derived")), (name, item)


def test_preflight_compares_a_finished_local_run_per_stage(tmp_path, capsys):
    run = tmp_path / "runs" / "tiny"
    for label, seconds in (
        ("dataset-local_data_l10n_en_fr_parallel-en-fr", 2.0),
        ("corpus-merge-parallel-en-fr", 9.0),
    ):
        (run / label).mkdir(parents=True)
        (run / label / "done.json").write_text(json.dumps({"digest": "x", "seconds": seconds}))
    (run / "not-a-task-of-this-graph").mkdir()
    (run / "not-a-task-of-this-graph" / "done.json").write_text(json.dumps({"seconds": 1.0}))
    json_path = tmp_path / "estimate.json"
    argv = ["--config", str(REPO_ROOT / "configs/tiny.yml"), "--output-dir", str(tmp_path / "out")]
    assert preflight.main([*argv, "--run-dir", str(run), "--cores", "2", "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    assert "local engine, 2 cores" in out
    assert "estimate against actual" in out
    estimate = json.loads(json_path.read_text())
    rows = {row["stage"]: row for row in estimate["comparison"]["stages"]}
    assert rows["corpus-merge-parallel"]["actual_s"] == 9.0 and rows["corpus-merge-parallel"]["finished"] == 1
    assert rows["corpus-merge-parallel"]["actual_over_estimate"] == pytest.approx(
        9.0 / rows["corpus-merge-parallel"]["estimate_s"]
    )
    assert rows["dataset"]["finished"] == 1 and rows["dataset"]["tasks"] > 1
    assert estimate["comparison"]["not_in_graph"] == ["not-a-task-of-this-graph"]
    # The local engine runs no docker-image task and no GPU.
    assert all(row["stage"] != "docker-image" for row in estimate["stages"])
    assert estimate["gpu_hours"] == 0


def test_the_report_task_gets_the_stage_times_of_the_tasks_done_before_it(tmp_path):
    from localrun.stage_times import ESTIMATE_FILE, write_stage_times

    run_dir = tmp_path / "run"
    target = run_dir / "report-en-fr" / "stage-times.json"
    assert not write_stage_times(run_dir, target)  # a run without an estimate: no section, no file
    assert not target.exists()
    estimate = {
        "cores": 2,
        "tasks": {
            "train-teacher-en-fr-1": {"stage": "train-teacher-model", "seconds": 600.0},
            "train-teacher-en-fr-2": {"stage": "train-teacher-model", "seconds": 600.0},
            "export-en-fr": {"stage": "export", "seconds": 60.0},
            "report-en-fr": {"stage": "report", "seconds": 30.0},
        },
        "stages": [{"stage": "train-teacher-model"}, {"stage": "export"}, {"stage": "report"}],
    }
    (run_dir / "report-en-fr").mkdir(parents=True)
    (run_dir / ESTIMATE_FILE).write_text(json.dumps(estimate))
    for label, seconds in (("train-teacher-en-fr-1", 450.0), ("train-teacher-en-fr-2", "broken")):
        (run_dir / label).mkdir()
        (run_dir / label / "done.json").write_text(json.dumps({"seconds": seconds}))
    assert write_stage_times(run_dir, target)
    written = json.loads(target.read_text())
    assert written["cores"] == 2 and written["gpus"] == 0
    # Only finished tasks count, on both sides; a stage with none is left out.
    assert written["stages"] == [
        {
            "stage": "train-teacher-model",
            "tasks": 2,
            "finished": 1,
            "estimate_s": 600.0,
            "actual_s": 450.0,
            "actual_over_estimate": 0.75,
        }
    ]
