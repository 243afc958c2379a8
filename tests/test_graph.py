"""The task graph taskgraph renders from a training config: labels, dependencies, steps, commands."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from localrun.plan import build_plan
from translations_taskgraph.render import build_parameters, generator_for
from translations_taskgraph.training_config import STAGES, dataset_slug

REPO_ROOT = Path(__file__).resolve().parent.parent


def load(name):
    return yaml.safe_load((REPO_ROOT / name).read_text())


@pytest.fixture(scope="module")
def tiny_graph():
    return generator_for(load("configs/tiny.yml")).full_task_graph


@pytest.fixture(scope="module")
def full_graph():
    return generator_for(load("configs/en-fr.full.yml")).full_task_graph


def deps(graph, label):
    return {dep for dep in graph.tasks[label].dependencies.values() if not dep.startswith("docker-image-")}


TINY_TRAIN = "local_data_l10n_en_fr_parallel"
TINY_DEV = "local_data_l10n_en_fr_dev"
TINY_TEST = "local_data_l10n_en_fr_test"
TINY_MONO = "local_data_l10n_en_fr_mono_slice"


def test_tiny_graph_labels_and_dependencies(tiny_graph):
    merged, devset, vocab = "corpus-merge-parallel-en-fr", "corpus-merge-devset-en-fr", "build-vocab-en-fr"
    backward, teacher = "backtranslations-train-backwards-model-en-fr", "train-teacher-en-fr-1"
    bt_chunks = [f"backtranslations-mono-trg-translate-en-fr-{c}-2" for c in (1, 2)]
    parallel_chunks = [f"distillation-parallel-src-translate-en-fr-{c}-2" for c in (1, 2)]
    mono_chunks = [f"distillation-mono-src-translate-en-fr-{c}-2" for c in (1, 2)]
    filtered = "distillation-corpus-final-filtering-en-fr"
    student, finetuned = "distillation-student-model-train-en-fr", "distillation-student-model-finetune-en-fr"
    shortlist, quantized = (
        "distillation-corpus-build-shortlist-en-fr",
        "distillation-student-model-quantize-en-fr",
    )
    expected = {
        f"dataset-{TINY_TRAIN}-en-fr": set(),
        f"dataset-{TINY_DEV}-en-fr": set(),
        f"dataset-{TINY_TEST}-en-fr": set(),
        f"dataset-{TINY_MONO}-en": set(),
        f"dataset-{TINY_MONO}-fr": set(),
        f"corpus-clean-parallel-{TINY_TRAIN}-en-fr": {f"dataset-{TINY_TRAIN}-en-fr"},
        merged: {f"corpus-clean-parallel-{TINY_TRAIN}-en-fr"},
        devset: {f"dataset-{TINY_DEV}-en-fr"},
        "corpus-merge-mono-src-en": {f"dataset-{TINY_MONO}-en", merged},
        "corpus-merge-mono-trg-fr": {f"dataset-{TINY_MONO}-fr", merged},
        vocab: {merged},
        "corpus-align-parallel-en-fr": {merged},
        backward: {merged, devset, vocab},
        f"evaluate-backwards-fr-en-{TINY_TEST}": {backward, f"dataset-{TINY_TEST}-en-fr"},
        "backtranslations-mono-trg-chunk-en-fr": {"corpus-merge-mono-trg-fr"},
        **{chunk: {backward, "backtranslations-mono-trg-chunk-en-fr"} for chunk in bt_chunks},
        "backtranslations-mono-trg-dechunk-translations-en-fr": {*bt_chunks, "corpus-merge-mono-trg-fr"},
        "corpus-align-backtranslations-en-fr": {
            "backtranslations-mono-trg-dechunk-translations-en-fr",
            "corpus-align-parallel-en-fr",
        },
        teacher: {
            merged,
            devset,
            vocab,
            "backtranslations-mono-trg-dechunk-translations-en-fr",
            "corpus-align-parallel-en-fr",
            "corpus-align-backtranslations-en-fr",
        },
        f"evaluate-teacher-en-fr-1-{TINY_TEST}": {teacher, f"dataset-{TINY_TEST}-en-fr"},
        f"evaluate-teacher-ensemble-en-fr-{TINY_TEST}": {teacher, f"dataset-{TINY_TEST}-en-fr"},
        "distillation-parallel-src-chunk-en-fr": {merged},
        "distillation-mono-src-chunk-en-fr": {"corpus-merge-mono-src-en"},
        **{chunk: {teacher, "distillation-parallel-src-chunk-en-fr"} for chunk in parallel_chunks},
        **{chunk: {teacher, "distillation-mono-src-chunk-en-fr"} for chunk in mono_chunks},
        "distillation-parallel-src-dechunk-translations-en-fr": {*parallel_chunks, merged},
        "distillation-mono-src-dechunk-translations-en-fr": {*mono_chunks, "corpus-merge-mono-src-en"},
        "corpus-merge-distillation-en-fr": {
            "distillation-parallel-src-dechunk-translations-en-fr",
            "distillation-mono-src-dechunk-translations-en-fr",
        },
        filtered: {"corpus-merge-distillation-en-fr", backward},
        "corpus-align-distillation-en-fr": {filtered, "corpus-align-parallel-en-fr"},
        "distillation-student-model-train-en-fr": {
            filtered,
            "corpus-align-distillation-en-fr",
            devset,
            vocab,
            teacher,  # student-init: teacher-encoder
        },
        "distillation-student-model-finetune-en-fr": {
            filtered,
            "corpus-align-distillation-en-fr",
            devset,
            vocab,
            "distillation-student-model-train-en-fr",
        },
        f"evaluate-student-en-fr-{TINY_TEST}": {student, f"dataset-{TINY_TEST}-en-fr"},
        f"evaluate-finetuned-student-en-fr-{TINY_TEST}": {finetuned, f"dataset-{TINY_TEST}-en-fr"},
        shortlist: {filtered, "corpus-align-distillation-en-fr", vocab},
        quantized: {finetuned, shortlist},
        f"evaluate-quantized-en-fr-{TINY_TEST}": {quantized, f"dataset-{TINY_TEST}-en-fr"},
        "export-en-fr": {quantized, f"evaluate-quantized-en-fr-{TINY_TEST}"},
        "report-en-fr": {
            f"dataset-{TINY_TRAIN}-en-fr",
            f"dataset-{TINY_DEV}-en-fr",
            f"dataset-{TINY_TEST}-en-fr",
            f"dataset-{TINY_MONO}-en",
            f"dataset-{TINY_MONO}-fr",
            f"corpus-clean-parallel-{TINY_TRAIN}-en-fr",
            merged,
            devset,
            teacher,
            backward,
            student,
            finetuned,
            f"evaluate-teacher-en-fr-1-{TINY_TEST}",
            f"evaluate-teacher-ensemble-en-fr-{TINY_TEST}",
            f"evaluate-backwards-fr-en-{TINY_TEST}",
            f"evaluate-student-en-fr-{TINY_TEST}",
            f"evaluate-finetuned-student-en-fr-{TINY_TEST}",
            f"evaluate-quantized-en-fr-{TINY_TEST}",
        },
        "docker-image-base": set(),
        "docker-image-train": set(),
        "tests-lint": set(),
        "tests-unit": set(),
    }
    # The data half: bicleaner-ai and monocleaner (threshold 0: pass-throughs, no model fetched), the devtest and
    # test sets decontaminating the merges, every monolingual dataset cleaned before its side's merge, and the
    # funnel in the report.
    bicleaned = f"corpus-clean-parallel-bicleaner-ai-{TINY_TRAIN}-en-fr"
    evaluation_sets = {f"dataset-{TINY_DEV}-en-fr", f"dataset-{TINY_TEST}-en-fr"}
    ui_text = "local_data_l10n_en_fr_mono-fr"
    clean_mono = {
        "en": {f"corpus-clean-mono-{TINY_MONO}-en"},
        "fr": {f"corpus-clean-mono-{TINY_MONO}-fr", f"corpus-clean-mono-{ui_text}"},
    }
    monocleaned = {
        lang: {label.replace("corpus-clean-mono-", "corpus-clean-mono-monocleaner-") for label in labels}
        for lang, labels in clean_mono.items()
    }
    expected.update(
        {
            bicleaned: {f"corpus-clean-parallel-{TINY_TRAIN}-en-fr"},
            merged: {bicleaned, *evaluation_sets},
            devset: evaluation_sets,
            f"dataset-{ui_text}": set(),
            f"corpus-clean-mono-{TINY_MONO}-en": {f"dataset-{TINY_MONO}-en"},
            f"corpus-clean-mono-{TINY_MONO}-fr": {f"dataset-{TINY_MONO}-fr"},
            f"corpus-clean-mono-{ui_text}": {f"dataset-{ui_text}"},
            **{
                monocleaner: {monocleaner.replace("-monocleaner-", "-")}
                for labels in monocleaned.values()
                for monocleaner in labels
            },
            "corpus-merge-mono-src-en": {*monocleaned["en"], merged, *evaluation_sets},
            "corpus-merge-mono-trg-fr": {*monocleaned["fr"], merged, *evaluation_sets},
        }
    )
    expected["report-en-fr"] |= {
        bicleaned,
        f"dataset-{ui_text}",
        *clean_mono["en"],
        *clean_mono["fr"],
        *monocleaned["en"],
        *monocleaned["fr"],
        "corpus-merge-mono-src-en",
        "corpus-merge-mono-trg-fr",
    }
    assert set(tiny_graph.tasks) == set(expected)
    for label, dependencies in expected.items():
        assert deps(tiny_graph, label) == dependencies, label


def test_full_graph_fans_out_per_dataset_and_teacher(full_graph):
    config = load("configs/en-fr.full.yml")
    train = config["datasets"]["train"]
    labels = set(full_graph.tasks)
    for name in train:
        slug = name.replace("/", "_").replace(".", "_").replace("-", "_")
        assert f"dataset-{slug}-en-fr" in labels
        assert deps(full_graph, f"corpus-clean-parallel-{slug}-en-fr") == {f"dataset-{slug}-en-fr"}
    evaluation_sets = {
        label
        for label in labels
        if label.startswith("dataset-")
        and any(
            label == f"dataset-{dataset_slug(n)}-en-fr"
            for n in config["datasets"]["devtest"] + config["datasets"]["test"]
        )
    }
    assert len(evaluation_sets) == len(config["datasets"]["devtest"]) + len(config["datasets"]["test"])
    bicleaned = {label for label in labels if label.startswith("corpus-clean-parallel-bicleaner-ai-")}
    assert deps(full_graph, "corpus-merge-parallel-en-fr") == bicleaned | evaluation_sets
    assert len(bicleaned) == len(train)
    fetch = "corpus-clean-parallel-fetch-bicleaner-model-en-fr"
    for name in train:
        task = full_graph.tasks[f"corpus-clean-parallel-bicleaner-ai-{dataset_slug(name)}-en-fr"]
        threshold = dict(task.attributes["step"]["args"])["--threshold"]
        expected = {"opus_ParaCrawl/v9": "0.7", "local_data/l10n-en-fr/train": "0.0"}.get(name)
        assert expected is None or threshold == expected, name
        uses_model = float(threshold) > 0
        assert (fetch in task.dependencies.values()) == uses_model, name
        assert (task.task["workerType"] == "b-linux-gpu") == uses_model, name
    # monocleaner: HPLT filtered on both sides (a pack per language), news-crawl copied through.
    for side, lang in (("src", "en"), ("trg", "fr")):
        fetch = f"corpus-clean-mono-fetch-monocleaner-model-{lang}"
        assert fetch in labels
        for name in config["datasets"][f"mono-{side}"]:
            task = full_graph.tasks[f"corpus-clean-mono-monocleaner-{dataset_slug(name)}-{lang}"]
            threshold = float(dict(task.attributes["step"]["args"])["--threshold"])
            assert (threshold > 0) == (name.startswith("hplt_") or "News-Commentary" in name), (name, lang)
            assert (fetch in task.dependencies.values()) == (threshold > 0), (name, lang)
        merge = deps(full_graph, f"corpus-merge-mono-{side}-{lang}")
        assert sum(d.startswith("corpus-clean-mono-monocleaner-") for d in merge) == len(
            config["datasets"][f"mono-{side}"]
        )
    members = config["experiment"]["teacher-ensemble"]
    for member in range(1, members + 1):
        assert f"train-teacher-en-fr-{member}" in labels
        assert deps(full_graph, f"evaluate-teacher-en-fr-{member}-{TINY_TEST}") == {
            f"train-teacher-en-fr-{member}",
            f"dataset-{TINY_TEST}-en-fr",
        }
    assert members >= 2
    chunks = config["taskcluster"]["split-chunks"]
    assert chunks >= 2
    stages = {task.attributes.get("stage") for task in full_graph.tasks.values()}
    assert stages == set(STAGES) - {"all-pipeline"} | {None}  # None: the docker image
    for kind in (
        "backtranslations-mono-trg-translate",
        "distillation-parallel-src-translate",
        "distillation-mono-src-translate",
    ):
        tasks = [f"{kind}-en-fr-{c}-{chunks}" for c in range(1, chunks + 1)]
        assert set(tasks) <= labels
        collect = kind.replace("-translate", "-dechunk-translations") + "-en-fr"
        assert set(tasks) <= deps(full_graph, collect)
        # Each translate task fetches its own chunk from the chunk task, not the whole corpus.
        split = kind.replace("-translate", "-chunk") + "-en-fr"
        assert full_graph.tasks[split].attributes["step"]["outputs"][1:] == [
            name for c in range(1, chunks + 1) for name in
            ([f"chunk.{c}.corpus.en.zst", f"chunk.{c}.corpus.fr.zst"] if "parallel" in kind
             else [f"chunk.{c}.corpus.{'fr' if 'mono-trg' in kind else 'en'}.zst"])
        ]  # fmt: skip
        for c in range(1, chunks + 1):
            args = dict(
                (flag, value) for flag, value in full_graph.tasks[tasks[c - 1]].attributes["step"]["args"]
            )
            assert args["--input"]["task"] == split and args["--input"]["artifact"].startswith(f"chunk.{c}.")
            assert args["--input-holds"] == "chunk"
    teachers = {f"train-teacher-en-fr-{member}" for member in range(1, members + 1)}
    for kind in ("distillation-parallel-src-translate", "distillation-mono-src-translate"):
        assert teachers <= deps(full_graph, f"{kind}-en-fr-1-{chunks}")
    assert deps(full_graph, f"evaluate-teacher-ensemble-en-fr-{TINY_TEST}") == {
        *teachers,
        f"dataset-{TINY_TEST}-en-fr",
    }


def test_mono_datasets_get_their_own_import_tasks():
    graph = generator_for(load("taskcluster/configs/config.ci.yml")).full_task_graph
    mono = [label for label in graph.tasks if label.startswith("dataset-url_") and label.endswith("-en")]
    assert len(mono) == 1
    step = graph.tasks[mono[0]].attributes["step"]
    assert ["--langs", "en"] in step["args"]


def test_tasks_carry_their_step_as_structured_data(tiny_graph):
    task = tiny_graph.tasks["train-teacher-en-fr-1"]
    step = task.attributes["step"]
    assert step["script"] == "pipeline/train/train.py"
    args = dict((flag, value) for flag, value in step["args"])
    assert args["--train-dir"] == {"task": "corpus-merge-parallel-en-fr", "artifact": None}
    # build-vocab's folder: vocab.spm, or one vocabulary per language (spm-vocab-split)
    assert args["--vocab"] == {"task": "build-vocab-en-fr", "artifact": None}
    assert args["--output-dir"] == {"artifacts": True}
    assert args["--architecture"] == "tiny"
    assert json.loads(args["--marian-args"]) == load("configs/tiny.yml")["marian-args"]["training-teacher"]
    assert step["resources"] == {"cpus": "all", "mem-gb": 8, "gpus": 1}
    assert "final.model.npz" in step["outputs"]


def test_taskcluster_command_fetches_upstream_artifacts(tiny_graph):
    task = tiny_graph.tasks["train-teacher-en-fr-1"].task
    command = task["payload"]["command"][-1]
    assert "python3 -m pipeline.train.train --model-type teacher" in command
    assert '--vocab "$MOZ_FETCHES_DIR"/build-vocab-en-fr ' in command
    assert '--output-dir "$TASK_WORKDIR"/artifacts' in command
    fetches = task["payload"]["env"]["MOZ_FETCHES"]["task-reference"]
    assert "public/build/vocab.spm" in fetches and "<build-vocab-en-fr>" in fetches
    assert task["workerType"] == "b-linux-gpu-4"
    assert task["payload"]["env"]["GPUS"] == "0 1 2 3"


def test_the_report_gets_the_configs_acceptance_of_a_model_below_copy_source(tiny_graph):
    task = tiny_graph.tasks["report-en-fr"]
    assert ["--accept-below-copy-source", "false"] in task.attributes["step"]["args"]
    assert "--accept-below-copy-source false" in task.task["payload"]["command"][-1]


def test_dataset_names_are_quoted_in_commands():
    config = load("configs/tiny.yml")
    config["datasets"]["train"] = ["url_https://example.org/c.[LANG].gz?x=1"]
    graph = generator_for(config).full_task_graph
    label = next(label for label in graph.tasks if label.startswith("dataset-url_"))
    command = graph.tasks[label].task["payload"]["command"][-1]
    assert "--dataset 'url_https://example.org/c.[LANG].gz?x=1'" in command


@pytest.mark.parametrize(
    "stage,expected",
    [
        (
            "dataset",
            {
                f"dataset-{TINY_TRAIN}-en-fr",
                f"dataset-{TINY_DEV}-en-fr",
                f"dataset-{TINY_TEST}-en-fr",
                f"dataset-{TINY_MONO}-en",
                f"dataset-{TINY_MONO}-fr",
                "dataset-local_data_l10n_en_fr_mono-fr",
            },
        ),
        (
            "build-vocab",
            {
                f"dataset-{TINY_TRAIN}-en-fr",
                f"dataset-{TINY_DEV}-en-fr",  # for decontamination
                f"dataset-{TINY_TEST}-en-fr",
                f"corpus-clean-parallel-{TINY_TRAIN}-en-fr",
                f"corpus-clean-parallel-bicleaner-ai-{TINY_TRAIN}-en-fr",
                "corpus-merge-parallel-en-fr",
                "build-vocab-en-fr",
            },
        ),
    ],
)
def test_target_stage_selects_a_stage_and_its_dependencies(stage, expected):
    config = load("configs/tiny.yml")
    config["target-stage"] = stage
    graph = generator_for(config).target_task_graph
    assert {label for label in graph.tasks if not label.startswith("docker-image-")} == expected


def test_parameters_refuse_an_invalid_training_config():
    config = load("configs/tiny.yml")
    parameters = build_parameters(copy.deepcopy(config))
    bad = dict(parameters)
    bad["training_config"] = {**config, "experiment": {**config["experiment"], "src": "english"}}
    from taskgraph.parameters import Parameters

    with pytest.raises(Exception, match="experiment.src"):
        Parameters(strict=True, **bad).check()


def test_local_plan_drops_taskcluster_only_tasks_and_orders_dependencies(tiny_graph):
    plan = build_plan(tiny_graph)
    assert "docker-image-base" not in plan["tasks"]
    # The leaves: the export for Firefox and the report (which reads every evaluation).
    assert sorted(plan["targets"]) == ["export-en-fr", "report-en-fr"]
    position = {label: index for index, label in enumerate(plan["order"])}
    for label, task in plan["tasks"].items():
        for dep in task["dependencies"]:
            assert position[dep] < position[label]


def test_plan_digests_change_with_the_config_downstream_only():
    config = load("configs/tiny.yml")
    before = build_plan(generator_for(copy.deepcopy(config)).full_task_graph)
    config["experiment"]["spm-vocab-size"] = 4000
    after = build_plan(generator_for(config).full_task_graph)
    changed = {
        label
        for label in before["tasks"]
        if before["tasks"][label]["digest"] != after["tasks"][label]["digest"]
    }
    downstream = {"build-vocab-en-fr"}
    for label in before["order"]:
        if downstream & set(before["tasks"][label]["dependencies"]):
            downstream.add(label)
    assert changed == downstream
    assert {
        "train-teacher-en-fr-1",
        "report-en-fr",
        "distillation-parallel-src-translate-en-fr-1-2",
        "distillation-student-model-train-en-fr",
    } <= changed
    assert not changed & {
        "corpus-merge-parallel-en-fr",
        "corpus-align-parallel-en-fr",
        "corpus-merge-mono-src-en",
    }


def test_taskgraph_validate_passes_shipped_configs_and_fails_a_bad_one(tmp_path, capsys):
    from translations_taskgraph.validate import main

    assert main([]) == 0
    output = capsys.readouterr().out
    assert "ok   taskcluster/configs/config.ci.yml" in output
    assert "ok   configs/en-fr.full.yml" in output

    bad = load("configs/tiny.yml")
    bad["experiment"]["teacher-ensemble"] = 0
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    assert main([str(tmp_path / "bad.yml"), str(REPO_ROOT / "configs" / "tiny.yml")]) == 1
    output = capsys.readouterr().out
    assert "FAIL" in output and "experiment.teacher-ensemble" in output
    assert "ok   configs/tiny.yml" in output
