"""Where a local run stands, from its folder (while it runs, or after it stopped or failed):

    task status -- --config FILE [--runs-dir runs] [--log-lines 12] [--no-eta] [--json FILE]

Per stage: tasks done / running / failed / interrupted / pending (and stale: done with an older definition);
for each running training its last update, words/s and last validation (from Marian's train.log); for each
failed or interrupted task the last lines of its log and the log's path (earlier attempts' logs beside it,
task.1.log, ...); and an ETA for the rest: preflight's cost model for this machine over the tasks not done
(an estimate from the config's sizes, not a promise).
"""

import argparse
import contextlib
import fcntl
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from localrun.plan import config_and_run_dir, task_state
from localrun.run_task import FINISHED_MARK
from pipeline.common.marian_log import TRAIN_LINE, VALID_LINE

REPO_ROOT = Path(__file__).resolve().parent.parent

STATES = ["done", "running", "failed", "interrupted", "stale", "pending"]


def is_running(task_dir: Path) -> bool:
    """A task's process holds an exclusive lock on its .lock file while it runs (localrun/run_task.py)."""
    lock_file = task_dir / ".lock"
    if not lock_file.exists():
        return False
    with open(lock_file) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
    return False


def detailed_state(run_dir: Path, label: str, digest: str) -> str:
    state = task_state(run_dir, label, digest)
    if state in ("done", "stale"):
        return state
    task_dir = run_dir / label
    if is_running(task_dir):
        return "running"
    log = task_dir / "task.log"
    if not log.exists():
        return "pending"
    finished = [
        line for line in log.read_text(errors="replace").splitlines() if line.startswith(FINISHED_MARK)
    ]
    # An attempt that ended (whatever its status) without done.json failed; one that never ended was killed.
    return "failed" if finished else "interrupted"


def training_progress(task_dir: Path) -> str | None:
    """`update 1,250, 1,630 words/s, last validation chrf 31.2 at update 1,000` from a running training's log."""
    log = task_dir / "artifacts" / "train.log"
    if not log.exists():
        return None
    last_train, last_valid = None, None
    for line in log.read_text(errors="replace").splitlines():
        if match := VALID_LINE.search(line):
            if last_valid is None or match.group(3) == "chrf" or last_valid.group(3) != "chrf":
                last_valid = match  # chrF where it is validated, the pipeline's metric
        elif match := TRAIN_LINE.search(line):
            last_train = match
    parts = []
    if last_train:
        # A validation between two display lines (valid-freq 250, disp-freq 100) is the later update.
        update = max(int(last_train.group(2)), int(last_valid.group(2)) if last_valid else 0)
        parts.append(f"update {update:,}, {float(last_train.group(4)):,.0f} words/s")
    if last_valid:
        parts.append(
            f"last validation {last_valid.group(3)} {float(last_valid.group(4)):g} at update {int(last_valid.group(2)):,}"
        )
    clock = task_dir / "artifacts" / "training-clock.json"
    if clock.exists():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            parts.append(f"{json.loads(clock.read_text()).get('seconds', 0) / 60:.0f} min trained so far")
    return ", ".join(parts) or "started, no progress line yet"


TRANSLATED_LINE = re.compile(r"part \d+ translated \(\d+ lines\): (\d+) of (\d+) lines done")


def translation_progress(task_dir: Path) -> str | None:
    """`6,000 of 12,158 lines (49%)` from a translation task's log."""
    log = task_dir / "task.log"
    if not log.exists():
        return None
    matches = TRANSLATED_LINE.findall(log.read_text(errors="replace"))
    if not matches:
        return None
    done, total = map(int, matches[-1])
    return f"{done:,} of {total:,} lines translated ({100 * done / max(total, 1):.0f}%)"


def wall_time_cap(plan_task: dict) -> float | None:
    """A training's wall-time cap in seconds, from the `after` of its --marian-args, read as the training step
    reads it (None without one)."""
    from pipeline.common.marian import parse_marian_args
    from pipeline.common.step import StepError
    from pipeline.train.train import training_caps

    for flag, *values in plan_task["step"]["args"]:
        if flag == "--marian-args" and values and isinstance(values[0], str):
            with contextlib.suppress(StepError):
                return training_caps(parse_marian_args(values[0]))[1]
    return None


def task_progress(task_dir: Path, plan_task: dict) -> str:
    """What a running task has done: a training's update, speed, last validation and wall time against its cap;
    a translation's lines."""
    progress = training_progress(task_dir)
    if progress is not None:
        cap = wall_time_cap(plan_task)
        clock = task_dir / "artifacts" / "training-clock.json"
        if cap and clock.exists():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                trained = json.loads(clock.read_text()).get("seconds", 0)
                progress += f" of a {cap / 60:.0f} min cap (ETA {max(0.0, cap - trained) / 60:.0f} min)"
        return progress
    return translation_progress(task_dir) or "running"


def last_lines(path: Path, count: int) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-count:] if path.exists() else []


def eta_seconds(config: dict, states: dict[str, str], cores: int) -> float | None:
    """The cost model's seconds for the tasks not done, spread over this machine's cores."""
    from localrun.__main__ import render
    from translations_taskgraph import preflight

    graph, _, _ = render(config)
    costs = preflight.estimate(config, graph.to_json(), {}, engine="local", cores=cores)["tasks"]
    left = [cost for label, cost in costs.items() if states.get(label, "pending") not in ("done",)]
    if not left:
        return 0.0
    return max(max(c["seconds"] for c in left), sum(c["seconds"] * c["threads"] for c in left) / cores)


def status(config: dict, run_dir: Path, log_lines: int, eta: bool) -> dict:
    plan = json.loads((run_dir / "plan.json").read_text())
    states = {
        label: detailed_state(run_dir, label, plan["tasks"][label]["digest"]) for label in plan["order"]
    }
    stages: dict[str, Counter] = {}
    for label in plan["order"]:
        stages.setdefault(plan["tasks"][label]["stage"], Counter())[states[label]] += 1
    report = {
        "run": str(run_dir),
        "tasks": len(states),
        "counts": dict(Counter(states.values())),
        "stages": {stage: dict(counts) for stage, counts in stages.items()},
        "running": {},
        "failed": {},
        "eta_seconds": None,
    }
    for label, state in states.items():
        task_dir = run_dir / label
        if state == "running":
            report["running"][label] = task_progress(task_dir, plan["tasks"][label])
        elif state in ("failed", "interrupted"):
            earlier = sorted(task_dir.glob("task.*.log"))
            report["failed"][label] = {
                "state": state,
                "log": str(task_dir / "task.log"),
                "earlier_attempts": [str(p) for p in earlier],
                "last_lines": last_lines(task_dir / "task.log", log_lines),
            }
    if eta:
        report["eta_seconds"] = eta_seconds(config, states, len(os.sched_getaffinity(0)))
    return report


def print_status(report: dict) -> None:
    counts = report["counts"]
    summary = ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s))
    print(f"{report['run']}: {report['tasks']} tasks: {summary}")
    width = max(len(stage) for stage in report["stages"])
    for stage, stage_counts in report["stages"].items():
        cells = "  ".join(f"{s} {stage_counts[s]}" for s in STATES if stage_counts.get(s))
        print(f"  {stage.ljust(width)}  {cells}")
    for label, progress in report["running"].items():
        print(f"RUNNING {label}: {progress}")
    for label, failure in report["failed"].items():
        print(f"{failure['state'].upper()} {label}: log {failure['log']}")
        if failure["earlier_attempts"]:
            print(f"  earlier attempts: {', '.join(failure['earlier_attempts'])}")
        for line in failure["last_lines"]:
            print(f"  | {line}")
    if report["eta_seconds"] is not None:
        minutes = report["eta_seconds"] / 60
        left = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
        print(f"ETA: about {left} of work left on this machine (preflight's cost model)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs")
    parser.add_argument("--log-lines", type=int, default=12, help="lines of a failed task's log to show")
    parser.add_argument("--no-eta", action="store_true", help="skip the ETA (it renders the task graph)")
    parser.add_argument("--json", type=Path, help="also write the status as JSON")
    args = parser.parse_args(argv)
    config, run_dir = config_and_run_dir(args.config, args.runs_dir)
    if not (run_dir / "plan.json").exists():
        print(
            f"error: {run_dir} holds no run yet (start one: task run-local -- --config {args.config})",
            file=sys.stderr,
        )
        return 2
    report = status(config, run_dir, args.log_lines, not args.no_eta)
    print_status(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if any(f["state"] == "failed" for f in report["failed"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
