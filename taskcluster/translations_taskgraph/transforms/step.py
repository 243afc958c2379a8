"""Turn a task's `step` (script, arguments, upstream artifacts, resources) into a runnable task.

The structured step is kept as `attributes.step`, which the local engine (`localrun`) executes; the same
step is rendered into a `run-task` command with `fetches` for Taskcluster. Neither holds training logic.

Argument values in a kind:
  - a string or number: passed as is;
  - `{config: experiment.spm-vocab-size}`: a value of the training config (a mapping is passed as JSON);
  - `{from: KIND, match: [ATTR, ...], category: CAT, artifact: NAME, multiple: BOOL, optional: BOOL}`: the
    artifacts folder (or one artifact) of the upstream task(s) of KIND whose attributes ATTR equal this
    task's (and, with `category`, whose dataset is of that category); `optional`: left out if none;
  - `{artifacts: true}`: this task's own artifacts folder.
"""

import glob
import hashlib
import json
import shlex

from taskgraph.transforms.base import TransformSequence
from voluptuous import ALLOW_EXTRA, Any, Optional, Required, Schema

from translations_taskgraph.parameters import training_config
from translations_taskgraph.step_args import render_args
from translations_taskgraph.training_config import REPO_ROOT, local_dataset_path, parse_dataset

upstream_ref = {
    Required("from"): str,
    Optional("match", default=[]): [str],
    # Only upstream datasets of this category (train, devtest, test, mono-src, mono-trg), or of any of these.
    Optional("category"): Any(str, [str]),
    Optional("artifact"): str,
    Optional("multiple", default=False): bool,
    # No such upstream task (e.g. no back-translations without mono-trg data): the argument is left out.
    Optional("optional", default=False): bool,
}
arg_value = Any(
    str,
    int,
    float,
    {Required("config"): str},
    upstream_ref,
    {Required("artifacts"): True},
)

step_schema = Schema(
    {
        Required("step"): {
            Required("script"): str,
            Required("args"): {str: arg_value},
            Required("outputs"): [str],
            Optional("resources", default={}): {
                # "all" = every core the engine can give.
                Optional("cpus", default=1): Any(int, "all"),
                Optional("mem-gb", default=2): Any(int, float),
                Optional("gpus", default=0): int,
            },
            Optional("env", default={}): {str: str},
            # Files of the repository the step reads (filter configs, ...): their digests join the step, so
            # that editing one re-runs the task on both engines.
            Optional("repo-inputs", default=[]): [str],
            # A training that publishes its checkpoints while it runs (pipeline/common/taskcluster_checkpoints.py)
            # needs the Taskcluster proxy to create artifacts of its own run.
            Optional("publishes-checkpoints", default=False): bool,
        },
        Optional("worker-type"): str,
    },
    extra=ALLOW_EXTRA,
)

transforms = TransformSequence()

# Exit statuses a task is retried on (a worker lost or preempted is retried by Taskcluster itself):
# 17 = a Taskcluster request failed (pipeline/common/taskcluster_resume.py), 75 = EX_TEMPFAIL,
# 128 = the checkout could not be cloned.
RETRY_EXIT_STATUSES = (17, 75, 128)

FETCHES_DIR = "$MOZ_FETCHES_DIR"
ARTIFACTS_DIR = "$TASK_WORKDIR/artifacts"


def _config_value(config, dotted):
    value = config
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"training config has no {dotted!r}")
        value = value[key]
    return value


def _in_category(dep, category) -> bool:
    categories = [category] if isinstance(category, str) else category
    return any(c in dep.attributes.get("dataset-categories", []) for c in categories)


def _upstream_tasks(config, task, ref):
    attributes = task.get("attributes", {})
    candidates = [
        dep
        for dep in config.kind_dependencies_tasks.values()
        if dep.kind == ref["from"]
        and all(dep.attributes.get(k) == attributes.get(k) for k in ref["match"])
        and ("category" not in ref or _in_category(dep, ref["category"]))
    ]
    candidates.sort(key=lambda dep: dep.label)
    if ref["optional"] and not candidates:
        return candidates
    if not ref["multiple"] and len(candidates) != 1:
        raise Exception(
            f"{config.kind}-{task.get('name')}: expected exactly one {ref['from']} task matching {ref['match']}, "
            f"found {[dep.label for dep in candidates]}"
        )
    return candidates


def resolve_args(config, task, run_config):
    """Returns the step's arguments as [flag, value] pairs with upstream refs made concrete."""
    resolved = []
    for flag, value in task["step"]["args"].items():
        if isinstance(value, dict) and "config" in value:
            value = _config_value(run_config, value["config"])
            if isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            elif value is None:
                continue
            value = str(value).lower() if isinstance(value, bool) else str(value)
        elif isinstance(value, dict) and "from" in value:
            # A task that downloads instead of producing (continuation) lacks the artifacts only its own training
            # writes (train.log, training.json): those inputs are left out for it.
            refs = [
                {"task": dep.label, "artifact": value.get("artifact")}
                for dep in _upstream_tasks(config, task, value)
                if not value.get("artifact")
                or value["artifact"] in dep.attributes.get("step", {}).get("outputs", [value["artifact"]])
            ]
            if not refs:
                continue
            value = refs if value["multiple"] else refs[0]
        elif isinstance(value, dict):
            value = {"artifacts": True}
        else:
            value = str(value)
        resolved.append([flag, value])
    return resolved


def local_input_digests(dataset: str) -> dict[str, str]:
    """{file: sha256} of the files a `local_` dataset reads (`<prefix>.<lang>[.gz|.zst|.txt]`), so that a task
    re-runs when they change (both engines key their caches on the step)."""
    _, prefix = parse_dataset(dataset)
    path = local_dataset_path(prefix)
    digests = {}
    if path.parent.is_dir():
        # Escaped: names may hold `[`, `]` and `?`, which would otherwise be read as a pattern matching nothing.
        for candidate in sorted(path.parent.glob(f"{glob.escape(path.name)}.*")):
            if candidate.is_file():
                sha = hashlib.sha256()
                with open(candidate, "rb") as data:
                    for block in iter(lambda: data.read(1 << 20), b""):
                        sha.update(block)
                digests[candidate.name] = sha.hexdigest()
    return digests


def repo_input_digests(paths: list[str]) -> dict[str, str]:
    """{path relative to the repository: sha256} of every file under the given repository paths."""
    digests = {}
    for relative in paths:
        root = REPO_ROOT / relative
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                digests[str(path.relative_to(REPO_ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@transforms.add
def add_step_attribute(config, tasks):
    run_config = training_config(config.params)
    for task in tasks:
        task = step_schema(task)  # validates and fills in the defaults
        step = task["step"]
        args = resolve_args(config, task, run_config)
        task.setdefault("attributes", {})["step"] = {
            "script": step["script"],
            # Both engines run the step as a module from the repository root.
            "module": step["script"].removesuffix(".py").replace("/", "."),
            "args": args,
            "outputs": step["outputs"],
            "resources": step["resources"],
            "env": step["env"],
        }
        if step["repo-inputs"]:
            task["attributes"]["step"]["repo-inputs"] = repo_input_digests(step["repo-inputs"])
        if config.kind == "dataset" and task["attributes"].get("provider") == "local":
            task["attributes"]["step"]["local-inputs"] = local_input_digests(task["attributes"]["dataset"])
        yield task


def worker_class_suffix(config, run_config) -> str:
    """`-standard` where the config puts this kind on standard (on-demand) workers; spot by default."""
    classes = run_config["taskcluster"]["worker-classes"]
    chosen = classes.get(config.kind, classes.get("default", "gcp-spot"))
    return "-standard" if chosen == "gcp-standard" else ""


def _refs(value):
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and "task" in value:
        return [value]
    return []


def _quote(word):
    # Keep $VARIABLES expandable by the worker's shell; quote everything else.
    if word.startswith(("$MOZ_FETCHES_DIR/", "$TASK_WORKDIR/")) or word in (
        FETCHES_DIR,
        ARTIFACTS_DIR,
    ):
        head, _, tail = word.partition("/")
        return f'"{head}"/{shlex.quote(tail)}' if tail else f'"{head}"'
    return shlex.quote(word)


# The kinds whose outputs are the corpora (merged, aligned, back-translated, distilled), and how long they are
# kept with `experiment.archive-corpora: true` (the reference uploads them to long-term storage) instead of
# the task default (taskcluster/config.yml), so that later runs can reuse them (previous-group-ids).
CORPUS_KINDS = (
    "corpus-merge-parallel", "corpus-merge-mono", "corpus-merge-devset", "corpus-merge-distillation",
    "corpus-align-parallel", "corpus-align-backtranslations", "corpus-align-distillation",
    "backtranslations-mono-trg-dechunk-translations", "distillation-parallel-src-dechunk-translations",
    "distillation-mono-src-dechunk-translations", "distillation-corpus-final-filtering",
)  # fmt: skip
ARCHIVE_EXPIRES_AFTER = "1 year"


def archives_corpora(run_config) -> bool:
    return bool(run_config.get("experiment", {}).get("archive-corpora"))


@transforms.add
def add_taskcluster_run(config, tasks):
    """The Taskcluster form of the step: fetches of upstream artifacts and one run-task command."""
    dependency_outputs = {
        dep.label: dep.attributes["step"]["outputs"]
        for dep in config.kind_dependencies_tasks.values()
        if "step" in dep.attributes
    }
    run_config = training_config(config.params)
    for task in tasks:
        step = task.pop("step")
        args = task["attributes"]["step"]["args"]
        command = ["python3", "-m", task["attributes"]["step"]["module"]]
        command += render_args(args, lambda label: f"{FETCHES_DIR}/{label}", ARTIFACTS_DIR)
        dependencies = task.setdefault("dependencies", {})
        fetches = task.setdefault("fetches", {})
        for _flag, value in args:
            for ref in _refs(value):
                dependencies[ref["task"]] = ref["task"]
                artifacts = [ref["artifact"]] if ref["artifact"] else dependency_outputs[ref["task"]]
                entries = fetches.setdefault(ref["task"], [])
                for artifact in artifacts:
                    entry = {"artifact": artifact, "extract": False, "dest": ref["task"]}
                    if entry not in entries:
                        entries.append(entry)
        gpus = step["resources"]["gpus"]
        worker_type = task.get("worker-type") or ("b-largegpu" if gpus > 1 else "b-gpu" if gpus else "b-cpu")
        task["worker-type"] = worker_type + worker_class_suffix(config, run_config)
        worker = task.setdefault("worker", {})
        # GPU steps run in the image with the CUDA Marian, the others in the base image.
        worker.setdefault("docker-image", {"in-tree": "train" if gpus else "base"})
        worker.setdefault("max-run-time", 86400)
        worker.setdefault(
            "artifacts", [{"name": "public/build", "path": "/builds/worker/artifacts", "type": "directory"}]
        )
        if config.kind in CORPUS_KINDS and archives_corpora(run_config):
            task["expires-after"] = ARCHIVE_EXPIRES_AFTER  # docker-worker's artifacts expire with their task
        if step["publishes-checkpoints"]:
            worker["taskcluster-proxy"] = True
        # Retried on a new run: a failed Taskcluster request, a temporary failure, a failed clone.
        worker.setdefault("retry-exit-status", list(RETRY_EXIT_STATUSES))
        env = worker.setdefault("env", {})
        env.update(config.graph_config["worker-env"][worker_type])
        env["TASK_WORKDIR"] = "/builds/worker"
        env.update(step["env"])
        task["run"] = {
            "using": "run-task",
            "cwd": "{checkout}",
            "command": " ".join(['mkdir -p "$TASK_WORKDIR/artifacts" &&'] + [_quote(w) for w in command]),
        }
        yield task
