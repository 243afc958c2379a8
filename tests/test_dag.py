"""`--dag` stays readable for the full config (issue 22, item 4): a cluster per phase of the run, the tasks of a kind (chunks,
datasets, members) collapsed into one node with its counts; `--dag-every-task` keeps one node per task."""

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO_ROOT
from localrun.__main__ import render
from localrun.dag import dag_dot
from translations_taskgraph.training_config import validate_training_config


@pytest.fixture(scope="module")
def full_plan():
    config = validate_training_config(yaml.safe_load((REPO_ROOT / "configs" / "en-fr.full.yml").read_text()))
    _, plan, _ = render(config)
    return plan


def test_the_full_config_collapses_to_one_node_per_kind_in_phase_clusters(full_plan):
    states = dict.fromkeys(full_plan["order"], "pending")
    first = full_plan["order"][0]
    states[first] = "done"
    dot = dag_dot(full_plan, states)
    kinds = {task["kind"] for task in full_plan["tasks"].values()}
    nodes = re.findall(r'^    "([^"]+)" \[label=', dot, re.M)
    assert len(nodes) == len(kinds) < len(full_plan["order"]) / 3
    assert 'label="corpus-clean-parallel\\n' in dot and " tasks, " in dot
    clusters = re.findall(r'^    label="([^"]+)";', dot, re.M)
    assert clusters == [
        "data",
        "back-translation",
        "teacher",
        "distillation",
        "student",
        "evaluation",
        "results",
    ]
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)";$', dot, re.M)
    assert edges and len(edges) == len(set(edges)) and all(a != b for a, b in edges)
    assert set(a for a, _ in edges) | set(b for _, b in edges) <= set(nodes)


def test_every_task_keeps_a_node_per_task(full_plan):
    dot = dag_dot(full_plan, dict.fromkeys(full_plan["order"], "pending"), every_task=True)
    assert len(re.findall(r'^    "([^"]+)" \[label=', dot, re.M)) == len(full_plan["order"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_draws_it_at_a_readable_size(full_plan, tmp_path):
    dot = dag_dot(full_plan, dict.fromkeys(full_plan["order"], "pending"))
    svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True).stdout
    width, height = (
        float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    )
    print(f"full config: {len(full_plan['order'])} tasks drawn at {width:.0f} x {height:.0f} pt")
    assert width < 5000 and height < 3000
