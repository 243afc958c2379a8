"""`experiment.archive-corpora: true` (the reference's key) keeps the corpus tasks and their artifacts for a year
on Taskcluster instead of the tasks' 90 days; other tasks and configs without it keep the default."""

import pytest
from test_taskcluster_reuse import tiny

from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import validate_training_config


def expiries(archive: bool) -> dict:
    config = tiny()
    config["experiment"]["archive-corpora"] = archive
    graph = generator_for(validate_training_config(config)).full_task_graph
    return {
        label: (
            task.task["expires"],
            [a.get("expires") for a in task.task["payload"].get("artifacts", {}).values()],
        )
        for label, task in graph.tasks.items()
        if label.startswith(("corpus-merge-parallel", "build-vocab"))
    }


@pytest.mark.parametrize("archive", [True, False])
def test_the_corpora_are_kept_a_year_when_archived(archive):
    found = expiries(archive)
    merge = next(v for k, v in found.items() if k.startswith("corpus-merge-parallel"))
    vocab = next(v for k, v in found.items() if k.startswith("build-vocab"))
    expected = {"relative-datestamp": "1 year"} if archive else {"relative-datestamp": "90 days"}
    assert merge[0] == expected
    assert all(expires == expected for expires in merge[1])
    assert vocab[0] == {"relative-datestamp": "90 days"}
