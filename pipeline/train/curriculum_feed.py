"""Feed Marian a training stream from an OpusTrainer curriculum: exact resumes, counted skips, a wall-time cap.

OpusTrainer's own driver (`python -m opustrainer`) writes its data position to a state file every 60 s and at a
clean exit, in no relation to Marian's checkpoints: after a kill, the data resumed up to a minute ahead of (or
behind) the checkpoint Marian resumed from, and the curriculum ended early or late. This driver keeps no state
file. **It replays the seeded curriculum from its start every time**, and Marian, run without
`--no-restore-corpus`, skips the batches its checkpoint had trained on (`batchesEpoch` of
`model.npz.progress.yml`): the stream is one endless epoch to Marian, so its batch generator starts from the
same seed in both runs and rebuilds exactly the batches of the unkilled run. The cost is re-reading (not
re-training) the data up to the checkpoint after a kill, at the speed of OpusTrainer and Marian's batching.

Beside that it runs OpusTrainer's own curriculum loader, readers and modifiers, with two modifiers fixed
(pipeline/train/modifiers.py): RemoveEndPunct keeps the alignments of a token whose punctuation it removed, and
Tags passes a pair without alignments instead of dropping it. A line that a modifier still cannot handle is
counted: past `--max-skipped-fraction` of the lines fed (default 0: the first one), Marian is stopped and
the run fails, with the first skipped lines in `--report`.

`--wall-time S` stops the training after S seconds of training counted over every run of this task
(`--clock` keeps the count): Marian gets SIGTERM, saves its checkpoint and exits (`--sigterm
save-and-exit`, its default; its best checkpoint is that of its last validation, so train.py then validates the
last weights itself and keeps them if they are better). Writes `--report` (JSON): lines fed, lines skipped and the first of them,
why the feed ended, seconds of this run and of all runs. Exit status: Marian's, 3 when too many lines were
skipped, or 143 after a SIGTERM (Marian saved its checkpoint first).
"""

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from opustrainer import logger as opustrainer_logger
from opustrainer.trainer import AsyncDatasetReader, CurriculumLoader, Trainer

from pipeline.common.io import write_json
from pipeline.train.modifiers import SKIPPED_MARK, install

TOO_MANY_SKIPPED = 3
# How many skipped lines the report quotes.
QUOTED_SKIPS = 5
MIN_LINES_JUDGED = 10_000


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="the OpusTrainer curriculum")
    parser.add_argument("--report", required=True, type=Path, help="JSON written when the feed ends")
    parser.add_argument("--log-file", type=Path)
    parser.add_argument("--temporary-directory", type=Path)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-skipped-fraction", type=float, default=0.0)
    parser.add_argument("--wall-time", type=float, help="seconds of training over all runs, then stop")
    parser.add_argument(
        "--run-seconds",
        type=float,
        help="seconds this run may take (a Slurm job's time limit): then Marian saves and the feeder exits 143, "
        "as after a SIGTERM, for a later run to resume",
    )
    parser.add_argument("--clock", type=Path, help="JSON file counting the seconds of earlier runs")
    parser.add_argument("trainer", nargs=argparse.REMAINDER, help="-- the Marian command line")
    args = parser.parse_args(argv)
    if args.trainer[:1] == ["--"]:
        args.trainer = args.trainer[1:]
    if not args.trainer:
        parser.error("give the Marian command after --")
    if not 0 <= args.max_skipped_fraction < 1:
        parser.error("--max-skipped-fraction must be at least 0 and below 1")
    return args


class Clock:
    """Seconds of training over every run of the task, kept in a file so that a resumed run goes on counting."""

    def __init__(self, path: Path | None):
        self.path = path
        self.earlier = 0.0
        if path and path.exists():
            self.earlier = float(json.loads(path.read_text())["seconds"])
        self.start = time.monotonic()

    def run_seconds(self) -> float:
        return time.monotonic() - self.start

    def total(self) -> float:
        return self.earlier + self.run_seconds()

    def save(self):
        if self.path:
            write_json(self.path, {"seconds": round(self.total(), 1)})


def too_many_skipped(report: dict, fraction: float, final: bool) -> bool:
    """With a fraction of 0 the first skipped line is too many; otherwise the share is judged once enough lines
    were fed for it to mean something, and at the end."""
    seen = report["lines_fed"] + report["skipped_lines"]
    if fraction and not final and seen < MIN_LINES_JUDGED:
        return False
    return report["skipped_lines"] > fraction * seen


def feed(args) -> int:
    install()
    opustrainer_logger.setup_logger(str(args.log_file) if args.log_file else None, "WARNING")
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    curriculum = CurriculumLoader().load(config, basepath=str(args.config.parent))
    for dataset in curriculum.datasets.values():
        if missing := [file for file in dataset.files if not os.path.exists(file)]:
            sys.exit(f"error: the curriculum's dataset {dataset.name} has no file {', '.join(missing)}")
    trainer = Trainer(
        curriculum,
        reader=AsyncDatasetReader,
        tmpdir=str(args.temporary_directory) if args.temporary_directory else None,
        shuffle=True,
    )
    clock = Clock(args.clock)
    report = {"lines_fed": 0, "skipped_lines": 0, "first_skipped": [], "ended_by": None}
    marian = subprocess.Popen(args.trainer, stdin=subprocess.PIPE, encoding="utf-8")
    stopped = threading.Event()

    def stop_marian(reason: str):
        if not stopped.is_set():
            stopped.set()
            report["ended_by"] = reason
            if marian.poll() is None:
                marian.send_signal(signal.SIGTERM)  # Marian saves its checkpoint, then exits

    timer = None
    if args.wall_time is not None:
        remaining = max(0.0, args.wall_time - clock.earlier)
        logging.warning("wall-time cap: %.0f s of training left of %.0f s", remaining, args.wall_time)
        timer = threading.Timer(remaining, stop_marian, args=("wall-time",))
        timer.daemon = True
        timer.start()

    # SIGTERM (a Slurm job at its time limit, a worker shutting down): Marian saves its checkpoint and exits, and
    # so does the feeder, with 128 + SIGTERM: the task is to be run again, and resumes from that checkpoint.
    signal.signal(signal.SIGTERM, lambda *_: stop_marian("terminated"))
    run_timer = None
    if args.run_seconds:
        run_timer = threading.Timer(args.run_seconds, stop_marian, args=("terminated",))
        run_timer.daemon = True
        run_timer.start()

    def tick():  # keeps the clock's file current, so that a kill -9 loses at most a minute of the count
        while not stopped.wait(30):
            clock.save()

    threading.Thread(target=tick, daemon=True).start()
    status = None
    try:
        for batch in trainer.run(
            batch_size=args.batch_size, chunk_size=args.chunk_size, processes=args.workers
        ):
            lines = []
            for line in batch:
                if line.startswith(SKIPPED_MARK):
                    report["skipped_lines"] += 1
                    if len(report["first_skipped"]) < QUOTED_SKIPS:
                        report["first_skipped"].append(line[len(SKIPPED_MARK) :].rstrip("\n"))
                else:
                    lines.append(line)
            report["lines_fed"] += len(lines)
            if too_many_skipped(report, args.max_skipped_fraction, final=False):
                stop_marian("too-many-skipped")
                status = TOO_MANY_SKIPPED
                break
            if stopped.is_set():
                break
            marian.stdin.writelines(lines)
        else:
            if too_many_skipped(report, args.max_skipped_fraction, final=True):
                stop_marian("too-many-skipped")
                status = TOO_MANY_SKIPPED
            elif report["ended_by"] is None:
                report["ended_by"] = "end-of-data"
        marian.stdin.close()
    except BrokenPipeError:
        if report["ended_by"] is None:
            report["ended_by"] = "marian-stopped"  # early stopping or its update limit
    except KeyboardInterrupt:
        report["ended_by"] = "interrupted"
        marian.terminate()
    except BaseException:
        # The curriculum failed (a dataset unreadable, a modifier crashing a whole batch): Marian saves its
        # checkpoint and exits instead of waiting for data that will not come.
        stop_marian("feeder-error")
        raise
    finally:
        code = marian.wait()
        stopped.set()
        for pending in (timer, run_timer):
            if pending:
                pending.cancel()
        trainer.close()
        clock.save()
        report.update(run_seconds=round(clock.run_seconds(), 1), wall_seconds=round(clock.total(), 1))
        report["marian_exit_status"] = code
        write_json(args.report, report)
    if status is not None:
        return status
    if report["ended_by"] == "terminated":
        return 128 + signal.SIGTERM
    if report["ended_by"] == "wall-time" and code in (0, 128 + signal.SIGTERM, -signal.SIGTERM):
        return 0  # Marian saved its checkpoint on our SIGTERM and exited as it does then
    return code


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return feed(args)


if __name__ == "__main__":
    sys.exit(main())
