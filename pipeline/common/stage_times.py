"""Each stage's actual seconds against preflight's estimate: the comparison the report and preflight print.

Shared by preflight (taskcluster/translations_taskgraph/preflight.py, `--run-dir`), the local engine and the report
step, which on a Taskcluster worker has the pipeline but not the taskgraph extensions.
"""

from collections import defaultdict


def compare_with_run(estimate: dict, actual: dict[str, float]) -> dict:
    """Estimate against actual per stage, over the tasks the run finished (sums of task seconds)."""
    rows = defaultdict(lambda: {"tasks": 0, "finished": 0, "estimate_s": 0.0, "actual_s": 0.0})
    for label, cost in estimate["tasks"].items():
        row = rows[cost["stage"]]
        row["tasks"] += 1
        if label in actual:
            row["finished"] += 1
            row["estimate_s"] += cost["seconds"]
            row["actual_s"] += actual[label]
    order = [s["stage"] for s in estimate["stages"]]
    result = []
    for stage in order:
        row = rows[stage]
        if row["finished"]:
            ratio = row["actual_s"] / row["estimate_s"] if row["estimate_s"] else None
            result.append({"stage": stage, **row, "actual_over_estimate": ratio})
    unknown = sorted(set(actual) - set(estimate["tasks"]))
    return {"stages": result, "not_in_graph": unknown}
