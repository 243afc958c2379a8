"""After taskgraph's docker_image transforms: a pull request from a fork builds only the images its own tasks
need.

taskgraph marks every image task `always-target` (the decision task adds it to any graph; an image already built
is then optimized away by its index). A fork's pull request (target_tasks.UNTRUSTED_PULL_REQUEST) runs only lint
and the fast tests, so it should not build the CUDA training image as well: there the images are targeted only as
dependencies of the tasks that run.
"""

from taskgraph.transforms.base import TransformSequence

from translations_taskgraph.target_tasks import UNTRUSTED_PULL_REQUEST

transforms = TransformSequence()


@transforms.add
def only_needed_images_for_forks(config, tasks):
    for task in tasks:
        if config.params["tasks_for"] == UNTRUSTED_PULL_REQUEST:
            task["always-target"] = False
        yield task
