"""Every task of the rendered graph runs in an image that has what its step imports.

For each task of the CI graph and of configs/en-fr.full.yml: the third-party modules its step script needs (the
script and every `pipeline` module it imports, found by source_digest.script_sources; imports a step does
without, `try: import x / except ImportError: <go on>`, are left out) must be provided by a distribution
installed in the environment that `python3` runs in, in the image the task names, as that image's Dockerfile
declares it (tests/docker_images.py reads the Dockerfile, poetry.lock and pyproject.toml; nothing is built).
"""

import glob
import importlib.metadata
import re
from pathlib import Path

import pytest
import yaml
from docker_images import (
    IMPORT_NAMES,
    ImageEnvironment,
    PythonEnvironment,
    declared_environment,
    image_environment,
    import_names,
    lock_groups,
    missing_commands,
    missing_imports,
    module_imports,
    own_python_imports,
    step_imports,
)
from packaging.utils import canonicalize_name

from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent
GRAPH_CONFIGS = [REPO_ROOT / "taskcluster/configs/config.ci.yml", REPO_ROOT / "configs/en-fr.full.yml"]


@pytest.fixture(scope="module", params=GRAPH_CONFIGS, ids=lambda p: p.name)
def graph(request):
    config = validate_training_config(yaml.safe_load(request.param.read_text()))
    return generator_for(config).full_task_graph


def image_of(graph, task) -> str:
    return graph.tasks[task.dependencies["docker-image"]].attributes["image_name"]


def test_every_step_runs_in_an_image_that_has_what_it_imports(graph):
    problems, checked = [], 0
    for label, task in sorted(graph.tasks.items()):
        step = task.attributes.get("step")
        if step is None:
            continue
        image = image_of(graph, task)
        environment = declared_environment(image)
        checked += 1
        flags = {flag for flag, _value in step["args"]}
        missing = missing_imports(step["script"], environment)
        for line in missing + missing_commands(step["script"], environment, flags):
            problems.append(f"{label} ({image} image): {line}")
    assert checked > 30
    assert not problems, "\n".join(problems)


def test_the_checks_run_in_the_environment_they_link(graph):
    """lint and the fast tests link the image's environment as .venv and run its `task`, ruff and pytest."""
    for label, task in graph.tasks.items():
        if task.kind != "tests":
            continue
        python = declared_environment(image_of(graph, task)).python
        command = task.task["payload"]["command"][-1]
        linked = re.search(r"ln -s (\S+) \.venv", command).group(1)
        assert linked == python.prefix, label
        assert {"go-task-bin", "ruff", "pytest"} <= python.distributions, label
        if (
            "task test-fast" in command
        ):  # the checkout installed as the project's package first (no PYTHONPATH)
            assert "poetry install --only-root" in command.split("task test-fast")[0], label


def test_the_cleaners_are_placed_where_their_packages_are(graph):
    """The finding this file was written for (monocleaner ran in an image without monocleaner), and bicleaner-ai,
    whose scoring tasks (given a model pack) run where its command is."""
    monocleaner = [t for t in graph.tasks.values() if t.kind == "corpus-clean-mono-monocleaner"]
    assert monocleaner
    for task in monocleaner:
        assert "monocleaner" in step_imports(task.attributes["step"]["script"])
        assert declared_environment(image_of(graph, task)).python.provides("monocleaner")
    for task in graph.tasks.values():
        if task.kind == "corpus-clean-parallel-bicleaner-ai":
            scoring = any(flag == "--pack" for flag, _ in task.attributes["step"]["args"])
            has = declared_environment(image_of(graph, task)).has_command(
                "bicleaner-ai-classify", "bicleaner-ai"
            )
            assert has or not scoring, task.label
            assert scoring == (task.attributes["bicleaner-threshold"] > 0), task.label


def test_the_gpu_evaluations_score_comet_in_the_environment_comet_python_names(graph):
    """comet_scorer.py runs with COMET_PYTHON's interpreter (unbabel-comet pins numpy<2): the train image, where
    the teachers' and students' evaluations run, names an environment that has everything it imports."""
    evaluations = [
        t
        for t in graph.tasks.values()
        if t.attributes.get("step", {}).get("script") == "pipeline/eval/evaluate.py"
    ]
    assert evaluations
    assert not [w for w in step_imports("pipeline/eval/evaluate.py").values() if "comet_scorer" in w]
    train_evaluations = [t for t in evaluations if image_of(graph, t) == "train"]
    assert train_evaluations
    assert own_python_imports("pipeline/eval/comet_scorer.py", declared_environment("train")) == []


def test_the_check_finds_a_comet_environment_that_lacks_a_package():
    image = OLD_BASE + 'RUN python3 -m venv /opt/comet && /opt/comet/bin/pip install "unbabel-comet==2.2.7"\n'
    assert own_python_imports("pipeline/eval/comet_scorer.py", image_environment(image)) == [
        "COMET_PYTHON is not set"
    ]
    named = image_environment(image + "ENV COMET_PYTHON=/opt/comet/bin/python\n")
    assert sorted(
        line.split(" ")[0] for line in own_python_imports("pipeline/eval/comet_scorer.py", named)
    ) == [
        "torch",
        "yaml",
    ]


# --- the check itself ---

OLD_BASE = """\
FROM python:3.11-slim-bookworm
ENV POETRY_VERSION=2.5.1
RUN python3 -m venv /builds/worker/.tools \\
    && /builds/worker/.tools/bin/pip install --no-cache-dir "poetry==${POETRY_VERSION}"
WORKDIR /builds/worker/env
COPY topsrcdir/pyproject.toml topsrcdir/poetry.lock topsrcdir/poetry.toml ./
RUN /builds/worker/.tools/bin/poetry sync --no-interaction --no-root
ENV PATH=/builds/worker/env/.venv/bin:/usr/local/bin:/usr/bin:/bin
"""


def test_the_check_finds_a_step_whose_package_the_image_lacks():
    old = image_environment(OLD_BASE)
    assert old.python.prefix == "/builds/worker/env/.venv"
    assert "poetry" in old.environments["/builds/worker/.tools"].distributions  # ${POETRY_VERSION} expanded
    assert [line.split(" ")[0] for line in missing_imports("pipeline/monocleaner/monocleaner.py", old)] == [
        "monocleaner"
    ]
    assert missing_imports("pipeline/clean/clean_mono.py", old) == []
    with_it = image_environment(
        OLD_BASE + 'RUN /builds/worker/env/.venv/bin/pip install --no-deps "monocleaner==1.7.1"\n'
    )
    assert missing_imports("pipeline/monocleaner/monocleaner.py", with_it) == []
    # Installed in another environment than python3's: still missing.
    elsewhere = image_environment(
        OLD_BASE + 'RUN python3 -m venv /opt/m && /opt/m/bin/pip install "monocleaner==1.7.1"\n'
    )
    assert missing_imports("pipeline/monocleaner/monocleaner.py", elsewhere)


def test_the_check_finds_a_step_whose_command_the_image_lacks():
    """bicleaner-ai runs as a program from an environment of its own: it must be on PATH."""
    linked = OLD_BASE + (
        "RUN python3 -m venv /opt/b && /opt/b/bin/pip install bicleaner-ai==3.6 && mkdir -p /opt/bin "
        "&& ln -s /opt/b/bin/bicleaner-ai-classify /opt/bin/\nENV PATH=/opt/bin:$PATH\n"
    )
    assert missing_commands("pipeline/bicleaner/bicleaner.py", image_environment(linked)) == []
    assert missing_commands("pipeline/bicleaner/bicleaner.py", image_environment(OLD_BASE))
    not_on_path = linked.replace("ENV PATH=/opt/bin:$PATH\n", "")
    assert missing_commands("pipeline/bicleaner/bicleaner.py", image_environment(not_on_path))
    assert missing_commands("pipeline/clean/clean_parallel.py", image_environment(OLD_BASE)) == []
    # Without a model pack (threshold 0: copied through, on a CPU worker) the step does not run it.
    bicleaner_flags = {"--input-dir", "--threshold", "--output-dir"}
    assert (
        missing_commands("pipeline/bicleaner/bicleaner.py", image_environment(OLD_BASE), bicleaner_flags)
        == []
    )
    assert missing_commands("pipeline/bicleaner/bicleaner.py", image_environment(OLD_BASE), {"--pack"})


def test_the_environment_python3_runs_in_follows_path():
    environments = {"/e": PythonEnvironment("/e", {"numpy"})}
    assert ImageEnvironment(environments, ["/opt/marian", "/e/bin", "/usr/bin"]).python.prefix == "/e"
    assert ImageEnvironment(environments, ["/usr/local/bin", "/e/bin"]).python is None
    assert ImageEnvironment(environments, []).python is None
    assert missing_imports("pipeline/clean/clean_mono.py", ImageEnvironment(environments, []))


def test_poetry_sync_installs_the_groups_it_selects():
    only_main = image_environment(OLD_BASE.replace("--no-root", "--no-root --only main"))
    distributions = only_main.python.distributions
    assert "taskcluster-taskgraph" in distributions and "pymarian" not in distributions
    without_dev = image_environment(OLD_BASE.replace("--no-root", "--no-root --without dev"))
    assert "pymarian" in without_dev.python.distributions and "ruff" not in without_dev.python.distributions


def test_unreadable_installs_are_refused():
    with pytest.raises(ValueError, match="name the distributions"):
        image_environment(OLD_BASE + "RUN /builds/worker/env/.venv/bin/pip install -r extra.txt\n")
    with pytest.raises(ValueError, match="by its path"):
        image_environment(OLD_BASE + "RUN pip install monocleaner\n")


def test_imports_a_step_does_without_are_left_out():
    source = """
import numpy
try:
    import comet
except ImportError:
    comet = None
try:
    from monocleaner.lm import LMFluencyFilter
except ImportError as error:
    raise SystemExit(f"install monocleaner: {error}")
from . import sibling
import os.path
"""
    assert set(module_imports(source)) == {"numpy", "monocleaner"}


# --- the distribution -> import name table ---


def installed_top_levels(distribution: importlib.metadata.Distribution) -> set[str]:
    """The top-level modules an installed distribution provides, from its RECORD."""
    names = set()
    for file in distribution.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".data", ".pth")):
            continue
        name = first.split(".")[0] if len(file.parts) == 1 else first
        if name.isidentifier():
            names.add(name)
    return names


INSTALLED = {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions()}


def test_the_import_name_table_matches_the_installed_distributions():
    """Every import name the table (or the default, `foo-bar` -> `foo_bar`) gives a locked distribution that is
    installed here is one that distribution really provides."""
    checked = 0
    for name in lock_groups():
        if name not in INSTALLED or not import_names(name):
            continue
        provided = installed_top_levels(INSTALLED[name])
        if not provided:
            continue  # installed without a RECORD (e.g. by a system package manager)
        assert import_names(name) <= provided, (
            f"{name}: table says {import_names(name)}, RECORD has {provided}"
        )
        checked += 1
    assert checked > 50
    for name in IMPORT_NAMES:
        if name in INSTALLED and import_names(name):
            assert import_names(name) <= installed_top_levels(INSTALLED[name]), name


def test_every_import_of_the_steps_maps_to_the_distribution_that_provides_it():
    """The other direction, for what the steps import: the distribution that provides a module here is the one
    the table maps to it."""
    providers = {}
    for name, distribution in INSTALLED.items():
        for module in installed_top_levels(distribution):
            providers.setdefault(module, set()).add(name)
    for script in sorted(glob.glob("pipeline/**/*.py", root_dir=REPO_ROOT, recursive=True)):
        for module, where in step_imports(script).items():
            if module not in providers:
                continue  # not installed here (monocleaner, kenlm: scripts/setup.sh extras)
            assert any(module in import_names(name) for name in providers[module]), (
                f"{module} ({where}) comes from {providers[module]}, which the table maps to "
                f"{[import_names(n) for n in providers[module]]}"
            )
