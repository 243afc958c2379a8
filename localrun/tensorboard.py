"""Serve a local run's training curves in TensorBoard, while it runs or after:

    task tensorboard -- --config FILE [--port 6006] [--refresh 30] [--export-only]

Every training of the run (`runs/<experiment>/<task>/artifacts/train.log`: backward model, teachers, student,
fine-tuning) is read with the report's parser of Marian's log (train cost and words/s every disp-freq updates,
each validation metric) and written as TensorBoard scalars, one TensorBoard run per model, under
`runs/<experiment>/tensorboard/`; TensorBoard then serves that folder on 127.0.0.1 and the curves are read
again every --refresh seconds, so a running training's new points appear. TensorBoard and tensorboardX live in
their own environment (they need protobuf >= 5.29.5): `TRANSLATIONS_EXTRAS=tensorboard scripts/setup.sh`.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from localrun.plan import config_and_run_dir
from pipeline.common.marian_log import training_curve

REPO_ROOT = Path(__file__).resolve().parent.parent

ENVIRONMENT = REPO_ROOT / ".venv-tensorboard"
INSTALL = "TRANSLATIONS_EXTRAS=tensorboard scripts/setup.sh"


def environment_python() -> Path:
    python = Path(os.environ.get("TENSORBOARD_PYTHON") or ENVIRONMENT / "bin" / "python")
    if not python.exists():
        raise SystemExit(
            f"error: TensorBoard is not installed here ({python} does not exist): run `{INSTALL}`"
        )
    return python


def curve_points(run_dir: Path) -> dict:
    """{"<model>": {"<tag>": [[update, value], ...]}} for every training log of the run."""
    points = {}
    for log in sorted(run_dir.glob("*/artifacts/train.log")):
        curve = training_curve(log)
        tags = {
            "train/cost": [[p["update"], p["cost"]] for p in curve["train"]],
            "train/words_per_second": [[p["update"], p["words_per_second"]] for p in curve["train"]],
        }
        tags.update(
            {
                f"valid/{metric}": [[p["update"], p["value"]] for p in series]
                for metric, series in curve["valid"].items()
            }
        )
        points[curve["model"]] = tags
    return points


def export(run_dir: Path, python: Path) -> int:
    """Writes the run's new curve points as event files; returns how many models have a log."""
    logdir = run_dir / "tensorboard"
    logdir.mkdir(exist_ok=True)
    points = curve_points(run_dir)
    points_file = logdir / "points.json"
    points_file.write_text(json.dumps(points), encoding="utf-8")
    subprocess.run(
        [str(python), str(Path(__file__).with_name("tensorboard_events.py")), "--points", str(points_file),
         "--logdir", str(logdir)],
        check=True,
    )  # fmt: skip
    return len(points)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path, help="the run's training config")
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs")
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--refresh", type=float, default=30, help="seconds between reading the logs again")
    parser.add_argument("--export-only", action="store_true", help="write the event files, serve nothing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config, run_dir = config_and_run_dir(args.config, args.runs_dir)
    if not run_dir.is_dir():
        print(f"error: no run of {args.config} in {run_dir}: start it with `task run-local -- --config {args.config}`", file=sys.stderr)  # fmt: skip
        return 2
    python = environment_python()
    models = export(run_dir, python)
    if not models:
        print(
            f"tensorboard: no training of {run_dir.name} has a train.log yet; its curves appear once one starts"
        )
    if args.export_only:
        return 0
    server = subprocess.Popen(
        [str(python), "-m", "tensorboard.main", "--logdir", str(run_dir / "tensorboard"), "--host", "127.0.0.1",
         "--port", str(args.port), "--reload_interval", str(max(5, int(args.refresh)))],
    )  # fmt: skip
    print(f"tensorboard: serving http://127.0.0.1:{args.port}/ (Ctrl-C stops it)")
    # A SIGTERM (a test, a process manager) stops the server too, instead of leaving it running orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while server.poll() is None:
            time.sleep(args.refresh)
            export(run_dir, python)
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
