"""Reading Marian's train.log: the progress line it writes every disp-freq updates and a line per validation
metric. Apart from pipeline.common.marian, so that what reads logs (the report) does not depend on how Marian
is run."""

import re
from pathlib import Path

from pipeline.common.io import task_name
from pipeline.common.step import StepError

TRAIN_LINE = re.compile(r"Ep\. (\d+) : Up\. (\d+) : .*?Cost ([0-9.]+).*?([0-9.]+) words/s")
VALID_LINE = re.compile(r"\[valid\] Ep\. (\d+) : Up\. (\d+) : ([\w-]+) : ([0-9.eE+-]+)")


def training_curve(log: Path) -> dict:
    """Cost and speed every disp-freq updates and each validation metric, from Marian's train.log."""
    if not log.is_file():
        raise StepError(f"{log} does not exist: expected the train.log of a trained model")
    # A training resumed from a checkpoint appends to its log and logs again the updates after that
    # checkpoint: the later line of an update wins.
    train, valid = {}, {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := VALID_LINE.search(line):
            epoch, update, metric, value = match.groups()
            point = {"epoch": int(epoch), "update": int(update), "value": float(value)}
            valid.setdefault(metric, {})[int(update)] = point
        elif match := TRAIN_LINE.search(line):
            epoch, update, cost, speed = match.groups()
            train[int(update)] = {
                "epoch": int(epoch),
                "update": int(update),
                "cost": float(cost),
                "words_per_second": float(speed),
            }
    return {
        "model": task_name(log.parent),
        "log": str(log),
        "train": [train[u] for u in sorted(train)],
        "valid": {metric: [points[u] for u in sorted(points)] for metric, points in valid.items()},
    }
