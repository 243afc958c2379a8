"""Digests that follow meaning (issue 20): what changes a task's digest, in both engines, and what does not."""

import re
from pathlib import Path

import pytest
import yaml

from conftest import descendants, write_corpus
from localrun.plan import build_plan
from pipeline.clean import runner
from translations_taskgraph import source_digest, training_config
from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent


def config() -> dict:
    return validate_training_config(yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text()))


def both_digests(graph) -> dict[str, tuple[str, str]]:
    """{label: (Taskcluster cache digest, local engine digest)} of every task that runs a step."""
    local = build_plan(graph)["tasks"]
    return {
        label: (task.attributes["cached_task"]["digest"], local[label]["digest"])
        for label, task in graph.tasks.items()
        if "cached_task" in task.attributes and label in local
    }


@pytest.fixture(scope="module")
def baseline():
    graph = generator_for(config()).full_task_graph
    return graph, both_digests(graph)


def read_edited(monkeypatch, edited: str, edit) -> None:
    """Makes the digests read the repository file `edited` as edit(its text)."""
    original = source_digest.read_bytes
    target = REPO_ROOT / edited
    assert target.is_file()

    def edited_read(path):
        data = original(path)
        if Path(path) != target:
            return data
        new = edit(data.decode())
        assert new != data.decode(), "the edit changed nothing"
        return new.encode()

    monkeypatch.setattr(source_digest, "read_bytes", edited_read)


def compare(before: dict, after: dict) -> tuple[set, set]:
    return (
        {label for label in before if before[label][0] != after[label][0]},
        {label for label in before if before[label][1] != after[label][1]},
    )


def runners_of(graph, path: str) -> set:
    return {
        label
        for label, task in graph.tasks.items()
        if "step" in task.attributes
        and path in source_digest.script_sources(task.attributes["step"]["script"])
    }


def change_a_comment(text: str) -> str:
    match = re.search(r"\n(\s*)# (\w+)", text)
    return text[: match.start(2)] + match[2] + "s" + text[match.end(2) :]


def change_the_docstring(text: str) -> str:
    return text.replace('"""', '"""Edited. ', 1)


def reformat(text: str) -> str:
    return text.replace("\n\n\ndef ", "\n\n\n\n# a new comment\ndef ", 1)


@pytest.mark.parametrize("path", ["pipeline/clean/clean_parallel.py", "pipeline/translate/translate.py"])
def test_comments_docstrings_and_layout_change_no_digest(baseline, monkeypatch, path):
    graph, before = baseline
    assert runners_of(graph, path)
    # All three at once (a graph takes seconds to render); each alone is checked to change the file's text.
    for edit in (change_a_comment, change_the_docstring, reformat):
        text = (REPO_ROOT / path).read_text()
        assert edit(text) != text, edit.__name__
    read_edited(monkeypatch, path, lambda text: reformat(change_the_docstring(change_a_comment(text))))
    tc_changed, local_changed = compare(before, both_digests(generator_for(config()).full_task_graph))
    assert tc_changed == set() and local_changed == set()


@pytest.mark.parametrize(
    ("path", "edit", "runners"),
    [
        # One token: the default number of lines per Marian part.
        (
            "pipeline/translate/translate.py",
            lambda text: text.replace("default=2000", "default=2001", 1),
            ("backtranslations-mono-trg-", "distillation-"),
        ),
        # Run by path (not imported): Marian's launcher.
        (
            "pipeline/common/pymarian_cli.py",
            lambda text: text.replace("signal.SIG_DFL", "signal.SIG_IGN"),
            ("train-", "evaluate-", "backtranslations-", "distillation-"),
        ),
        # Run by module name (python -m) from the training step: the curriculum's feeder.
        (
            "pipeline/train/curriculum_feed.py",
            lambda text: text + "\nEDITED = 1\n",
            ("train-", "backtranslations-train-", "distillation-student-model-"),
        ),
    ],
)
def test_a_code_edit_changes_exactly_the_tasks_that_run_it_and_their_descendants(
    baseline, monkeypatch, path, edit, runners
):
    graph, before = baseline
    runs_it = runners_of(graph, path)
    assert runs_it and all(label.startswith(runners) for label in runs_it), runs_it
    read_edited(monkeypatch, path, edit)
    tc_changed, local_changed = compare(before, both_digests(generator_for(config()).full_task_graph))
    expected = descendants(graph, runs_it) & set(before)
    assert tc_changed == expected and local_changed == expected


def test_editing_a_local_dataset_changes_its_import_tasks_digest_in_both_engines(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATIONS_DATA_ROOT", str(tmp_path))
    write_corpus(tmp_path / "corpus.en", ["Hello", "World"])
    write_corpus(tmp_path / "corpus.fr", ["Bonjour", "Monde"])
    edited = config()
    edited["datasets"]["train"] = [f"local_{tmp_path}/corpus"]
    edited = validate_training_config(edited)
    graph = generator_for(edited).full_task_graph
    before = both_digests(graph)
    name = f"local_{tmp_path}/corpus"
    (label,) = [
        label
        for label, task in graph.tasks.items()
        if task.kind == "dataset" and task.attributes.get("dataset") == name
    ]
    write_corpus(tmp_path / "corpus.fr", ["Bonjour", "le monde"])
    tc_changed, local_changed = compare(before, both_digests(generator_for(edited).full_task_graph))
    assert tc_changed == local_changed == descendants(graph, {label}) & set(before)


def test_one_dataset_slug_for_labels_and_filter_files():
    long_name = "mtdata_ELRC-" + "wikipedia_health-" * 5 + "1-eng-fra"
    assert runner.dataset_slug is training_config.dataset_slug
    slug = training_config.dataset_slug(long_name)
    assert len(slug) == 59 and slug != re.sub(r"[^A-Za-z0-9]+", "_", long_name)
    assert training_config.dataset_slug("opus_Books/v1") == "opus_Books_v1"
