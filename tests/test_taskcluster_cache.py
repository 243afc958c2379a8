"""Cached tasks: stable digests, a seeded index hit replacing a task, and editing one step script (or one
pipeline/common helper) changing only the digests of the tasks that run it and of their descendants."""

import json
from pathlib import Path

import pytest
import yaml
from fake_taskcluster import fake_tc_fixture  # noqa: F401  (the fake_tc fixture)

from conftest import descendants
from translations_taskgraph import source_digest
from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent


def config():
    return validate_training_config(yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text()))


def digests(graph) -> dict:
    return {
        label: task.attributes["cached_task"]["digest"]
        for label, task in graph.tasks.items()
        if "cached_task" in task.attributes
    }


@pytest.fixture(scope="module")
def baseline():
    return generator_for(config()).full_task_graph


def test_every_pipeline_task_is_cached_and_digests_are_stable(baseline):
    pipeline = {label for label, task in baseline.tasks.items() if "stage" in task.attributes}
    assert pipeline <= set(digests(baseline))
    assert digests(generator_for(config()).full_task_graph) == digests(baseline)
    task = baseline.tasks["build-vocab-en-fr"]
    routes = task.task["routes"]
    assert any(
        r.startswith("index.translations.cache.level-1.translations.v2.build-vocab.build-vocab-en-fr.hash.")
        for r in routes
    )


def test_sources_are_the_script_and_the_pipeline_modules_it_imports():
    sources = source_digest.script_sources("pipeline/train/train.py")
    assert "pipeline/train/train.py" in sources
    assert {"pipeline/common/marian.py", "pipeline/common/io.py", "pipeline/common/step.py"} <= set(sources)
    assert "pipeline/train/configs/model/teacher.tiny.yml" in sources
    assert "pipeline/clean/clean_parallel.py" not in sources
    clean = source_digest.script_sources("pipeline/clean/clean_parallel.py")
    assert "pipeline/common/marian.py" not in clean
    with pytest.raises(FileNotFoundError):
        source_digest.script_sources("pipeline/nope.py")


@pytest.mark.parametrize(
    "edited,runners",
    [
        ("pipeline/clean/clean_parallel.py", ("corpus-clean-parallel-",)),
        (
            "pipeline/common/marian.py",
            ("train-teacher-", "evaluate-", "backtranslations-", "distillation-"),
        ),
        ("pipeline/eval/report.py", ("report-",)),
    ],
)
def test_editing_one_source_changes_only_its_tasks_and_descendants(baseline, monkeypatch, edited, runners):
    original = source_digest.read_bytes

    def edited_read(path):
        data = original(path)
        return data + b"\nEDITED = 1\n" if Path(path) == REPO_ROOT / edited else data

    monkeypatch.setattr(source_digest, "read_bytes", edited_read)
    after = digests(generator_for(config()).full_task_graph)
    before = digests(baseline)
    changed = {label for label in before if before[label] != after[label]}
    runs_it = {
        label
        for label, task in baseline.tasks.items()
        if "step" in task.attributes
        and edited in source_digest.script_sources(task.attributes["step"]["script"])
    }
    assert runs_it and all(label.startswith(runners) for label in runs_it)
    assert changed == descendants(baseline, runs_it)
    assert "docker-image-base" not in changed


def test_a_config_value_changes_the_tasks_that_read_it(baseline):
    edited = config()
    edited["experiment"]["spm-vocab-size"] = 4000
    after = digests(generator_for(edited).full_task_graph)
    before = digests(baseline)
    changed = {label for label in before if before[label] != after[label]}
    assert changed == descendants(baseline, {"build-vocab-en-fr"})


def test_a_seeded_index_hit_replaces_the_task(fake_tc, baseline):
    label = "dataset-local_data_l10n_en_fr_dev-en-fr"
    task = baseline.tasks[label]
    namespace = task.optimization["index-search"][0]
    fake_tc.add_task("CachedDevset0000000000", {"metadata": {"name": label}}, state="completed")
    fake_tc.index[namespace] = "CachedDevset0000000000"
    # taskgraph replaces a task only if its dependencies are replaced too: the images are cached as well.
    for image in ("base", "train"):
        image_task = baseline.tasks[f"docker-image-{image}"]
        fake_tc.add_task(f"CachedImage{image:0<11}", {"metadata": {"name": image_task.label}})
        fake_tc.index[image_task.optimization["index-search"][0]] = f"CachedImage{image:0<11}"
    generator = generator_for(config())
    optimized = generator.optimized_task_graph
    labels = {t.label for t in optimized.tasks.values()}
    assert label not in labels
    assert generator.label_to_taskid[label] == "CachedDevset0000000000"
    # Its dependents fetch from the cached task.
    merge = next(t for t in optimized.tasks.values() if t.label == "corpus-merge-devset-en-fr")
    assert "CachedDevset0000000000" in json.dumps(merge.task["payload"]["env"]["MOZ_FETCHES"])
    assert "corpus-merge-parallel-en-fr" in labels
    assert "docker-image-base" not in labels and "dataset-local_data_l10n_en_fr_test-en-fr" in labels
