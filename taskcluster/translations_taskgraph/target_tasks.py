"""Target-tasks methods: which tasks of the full graph a run asks for."""

from taskgraph.target_tasks import register_target_task
from taskgraph.util.attributes import match_run_on_tasks_for

from translations_taskgraph.parameters import training_config

# Kinds a push builds and runs: the images and the checks of the repository itself.
CI_KINDS = ("docker-image", "tests")

# A pull request from a fork, or from anyone without write access (.taskcluster.yml's `pullRequests:
# public_restricted` policy): its decision task has the pull-request-untrusted scopes. The same rule as the train
# action's (actions/train.py, can_train): it never schedules a GPU task, and of the CI tasks only those that name
# this trigger in their `run-on-tasks-for` run (lint and the fast tests; the default, `all`, does not count).
UNTRUSTED_PULL_REQUEST = "github-pull-request-untrusted"


def uses_gpu(task) -> bool:
    """A task that asks for a GPU or runs on a GPU worker type."""
    gpus = task.attributes.get("step", {}).get("resources", {}).get("gpus", 0)
    return gpus > 0 or "gpu" in task.task.get("workerType", "")


def runs_for(task, tasks_for: str) -> bool:
    """Whether a task's `run-on-tasks-for` lets this trigger run it."""
    run_on = task.attributes.get("run_on_tasks_for", ["all"])
    if tasks_for == UNTRUSTED_PULL_REQUEST:
        return tasks_for in run_on and not uses_gpu(task)
    return match_run_on_tasks_for(tasks_for, run_on)


def _for_trigger(labels, full_task_graph, parameters):
    return [label for label in labels if runs_for(full_task_graph.tasks[label], parameters["tasks_for"])]


@register_target_task("train-target-tasks")
def train_target_tasks(full_task_graph, parameters, graph_config):
    """Every task of the config's `target-stage` (`all-pipeline`: every stage); taskgraph adds what they depend on."""
    stage = training_config(parameters)["target-stage"]
    return [
        label
        for label, task in full_task_graph.tasks.items()
        if "stage" in task.attributes and stage in ("all-pipeline", task.attributes["stage"])
    ]


@register_target_task("push-ci")
def push_ci(full_task_graph, parameters, graph_config):
    """A push (and the cron job): build every docker image, run lint and the fast tests."""
    labels = [label for label, task in full_task_graph.tasks.items() if task.kind in CI_KINDS]
    return _for_trigger(labels, full_task_graph, parameters)


@register_target_task("pr-ci")
def pr_ci(full_task_graph, parameters, graph_config):
    """A pull request: what a push runs, plus the whole training pipeline of the CI config. An untrusted pull
    request gets only the tasks that opt in (lint and the fast tests), never a GPU task."""
    pipeline = [label for label, task in full_task_graph.tasks.items() if "stage" in task.attributes]
    labels = [label for label, task in full_task_graph.tasks.items() if task.kind in CI_KINDS] + pipeline
    return _for_trigger(labels, full_task_graph, parameters)
