"""The decision task (and the `train` action) publish preflight's estimate of the graph they create as
`public/estimate.json`: the report task sets its task group's run times against it (pipeline/eval/
taskcluster_times.py), on a worker that has the pipeline but not these extensions.

A taskgraph morph, as it sees the graph that will run (after optimization) with the parameters; it changes
nothing in the graph, and a failed estimate is logged, never a failed decision.
"""

import logging

from taskgraph.morph import register_morph

logger = logging.getLogger(__name__)

ESTIMATE_ARTIFACT = "estimate.json"


@register_morph
def publish_estimate(taskgraph, label_to_taskid, parameters, graph_config):
    from taskgraph.decision import write_artifact

    from translations_taskgraph import preflight

    try:
        estimate = preflight.estimate(
            parameters["training_config"], taskgraph.to_json(), preflight.worker_gpu_counts()
        )
        write_artifact(ESTIMATE_ARTIFACT, estimate)
    except Exception as error:  # the cost model must never stop a decision
        logger.warning("no %s for this graph: %r", ESTIMATE_ARTIFACT, error)
    return taskgraph, label_to_taskid
