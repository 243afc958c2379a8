"""Target-tasks methods: which tasks of the full graph a run asks for."""

from taskgraph.target_tasks import register_target_task

from translations_taskgraph.parameters import training_config

# Kinds a push builds and runs: the images and the checks of the repository itself.
CI_KINDS = ("docker-image", "tests")


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
    return [label for label, task in full_task_graph.tasks.items() if task.kind in CI_KINDS]


@register_target_task("pr-ci")
def pr_ci(full_task_graph, parameters, graph_config):
    """A pull request: what a push runs, plus the whole training pipeline of the CI config."""
    pipeline = [label for label, task in full_task_graph.tasks.items() if "stage" in task.attributes]
    return push_ci(full_task_graph, parameters, graph_config) + pipeline
