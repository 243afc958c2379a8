"""Docker images without a Docker engine: every Dockerfile parses (known instructions, FROM first, what it copies
exists), every image has its docker-image task, and every task of every config names an image that exists
(tests/test_image_environments.py checks that the image has what the task's step imports, and
tests/test_base_image_pins.py that every base image is pinned by digest)."""

from pathlib import Path

import pytest
import yaml
from docker_images import IMAGES_DIR, DockerfileError, parse_dockerfile

from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted([*IMAGES_DIR.glob("*/Dockerfile"), REPO_ROOT / "docker" / "Dockerfile"])


def test_the_parser_refuses_broken_dockerfiles():
    with pytest.raises(DockerfileError, match="FROM"):
        parse_dockerfile("RUN true\nFROM debian\n")
    with pytest.raises(DockerfileError, match="unknown instruction 'RUNN'"):
        parse_dockerfile("FROM debian\nRUNN true\n")
    with pytest.raises(DockerfileError, match="inside a continued"):
        parse_dockerfile("FROM debian\nRUN true \\\n")
    with pytest.raises(DockerfileError, match="without arguments"):
        parse_dockerfile("FROM debian\nWORKDIR\n")
    instructions, _ = parse_dockerfile("ARG V=1\nFROM debian:$V\nRUN a \\\n    # note\n    && b\n")
    assert instructions == [("ARG", "V=1"), ("FROM", "debian:$V"), ("RUN", "a && b")]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_dockerfile_parses_and_what_it_copies_exists(path):
    instructions, includes = parse_dockerfile(path.read_text())
    for include in includes:
        assert (REPO_ROOT / include).exists(), f"# %include {include}: no such path"
    stages = {args.split()[-1] for word, args in instructions if word == "FROM" and " AS " in args.upper()}
    in_tree = path.parent.parent == IMAGES_DIR
    for word, args in instructions:
        if word not in ("COPY", "ADD"):
            continue
        words = args.split()
        flags = [w for w in words if w.startswith("--")]
        sources = [w for w in words if not w.startswith("--")][:-1]
        if any(flag.startswith("--from=") for flag in flags):
            assert flags[0].split("=", 1)[1] in stages, f"{word} {args}: unknown stage"
            continue
        for source in sources:
            if in_tree and source.startswith("topsrcdir/"):
                # taskgraph puts the `# %include` paths under topsrcdir/ in the image's context.
                assert source.removeprefix("topsrcdir/") in includes, f"{source} is not included"
            elif in_tree:
                assert (path.parent / source).exists(), source
            else:
                assert (REPO_ROOT / source.rstrip("/")).exists() or source == ".", source


def test_every_image_folder_has_a_docker_image_task():
    kind = yaml.safe_load((REPO_ROOT / "taskcluster/kinds/docker-image/kind.yml").read_text())
    assert set(kind["tasks"]) == {path.parent.name for path in IMAGES_DIR.glob("*/Dockerfile")}


CONFIGS = sorted([*REPO_ROOT.glob("configs/*.yml"), *REPO_ROOT.glob("taskcluster/configs/*.yml")])


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
def test_every_task_names_an_image_that_exists(config_path):
    config = validate_training_config(yaml.safe_load(config_path.read_text()))
    graph = generator_for(config).full_task_graph
    for label, task in graph.tasks.items():
        if task.kind == "docker-image":
            continue
        image = task.task["payload"]["image"]
        assert image["type"] == "task-image", label
        dependency = task.dependencies["docker-image"]
        assert dependency in graph.tasks, f"{label}: image task {dependency} does not exist"
        name = graph.tasks[dependency].attributes["image_name"]
        assert (IMAGES_DIR / name / "Dockerfile").exists(), (
            f"{label}: no taskcluster/docker/{name}/Dockerfile"
        )
        # Whether that image has what the task's step imports: tests/test_image_environments.py.


def test_workers_classes_retries_and_resources():
    config = yaml.safe_load((REPO_ROOT / "configs/en-fr.full.yml").read_text())
    config["taskcluster"] = {"worker-classes": {"default": "gcp-spot", "train-teacher": "gcp-standard"}}
    graph = generator_for(validate_training_config(config)).full_task_graph
    teacher = graph.tasks["train-teacher-en-fr-1"].task
    assert teacher["workerType"] == "b-linux-gpu-4-standard"
    assert teacher["payload"]["env"]["GPUS"] == "0 1 2 3"
    assert (
        teacher["payload"]["env"]["THREADS"] == "auto" and teacher["payload"]["env"]["WORKSPACE"] == "12000"
    )
    evaluate = next(t for label, t in graph.tasks.items() if label.startswith("evaluate-teacher-")).task
    assert evaluate["workerType"] == "b-linux-gpu" and evaluate["payload"]["env"]["GPUS"] == "0"
    clean = next(t for label, t in graph.tasks.items() if label.startswith("corpus-clean-parallel-")).task
    assert clean["workerType"] == "b-linux-large" and "GPUS" not in clean["payload"]["env"]
    for label, task in graph.tasks.items():
        if "step" in task.attributes:
            assert set(task.task["payload"]["onExitStatus"]["retry"]) >= {17, 75, 128}, label
    # Trainings publish their checkpoints while they run, through the proxy (run-task gives it to every
    # docker-worker task; the step asks for it wherever it runs).
    with_proxy = {
        label
        for label, task in graph.tasks.items()
        if task.task["payload"].get("features", {}).get("taskclusterProxy")
    }
    trainings = {label for label, task in graph.tasks.items() if task.attributes.get("step", {}).get(
        "module") == "pipeline.train.train"}  # fmt: skip
    assert len(trainings) == 5 and trainings <= with_proxy
