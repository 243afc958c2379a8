"""Target-tasks methods: which tasks of the full graph a run asks for."""

from taskgraph.target_tasks import register_target_task

from translations_taskgraph.parameters import training_config


@register_target_task("train-target-tasks")
def train_target_tasks(full_task_graph, parameters, graph_config):
    """Every task of the config's `target-stage` (`all-pipeline`: every stage); taskgraph adds what they depend on."""
    stage = training_config(parameters)["target-stage"]
    return [
        label
        for label, task in full_task_graph.tasks.items()
        if "stage" in task.attributes and stage in ("all-pipeline", task.attributes["stage"])
    ]
