"""Writes training curves into TensorBoard event files. Runs in the TensorBoard environment (.venv-tensorboard,
`TRANSLATIONS_EXTRAS=tensorboard scripts/setup.sh`): it imports only the standard library and tensorboardX.

    python localrun/tensorboard_events.py --points POINTS.json --logdir DIR

POINTS.json: {"<model>": {"<tag>": [[update, value], ...]}}. Each model gets its own folder under DIR (a run,
in TensorBoard's terms); only points after the last update already written for a tag are added, so that it can
be called again as a training goes on (the state is DIR/exported.json).
"""

import argparse
import json
import os
from pathlib import Path

from tensorboardX import SummaryWriter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", required=True, type=Path)
    parser.add_argument("--logdir", required=True, type=Path)
    args = parser.parse_args()
    points = json.loads(args.points.read_text(encoding="utf-8"))
    state_file = args.logdir / "exported.json"
    exported = json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}
    written = 0
    for model, tags in sorted(points.items()):
        done = exported.setdefault(model, {})
        new = {tag: [p for p in series if p[0] > done.get(tag, -1)] for tag, series in tags.items()}
        if not any(new.values()):
            continue
        with SummaryWriter(str(args.logdir / model)) as writer:
            for tag, series in sorted(new.items()):
                for update, value in series:
                    writer.add_scalar(tag, value, update)
                    written += 1
                if series:
                    done[tag] = series[-1][0]
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(exported, indent=1), encoding="utf-8")
    os.replace(tmp, state_file)
    if written:
        print(f"tensorboard: {written} new points in {args.logdir}")


if __name__ == "__main__":
    main()
