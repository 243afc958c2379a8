"""Run one task of a local run by hand, exactly as the engine runs it (same plan, step command, environment,
inputs and outputs), for debugging:

    task run-task -- --config FILE LABEL [--runs-dir runs] [--threads N] [--force]

The task's inputs must be done (the tasks it depends on); its output goes to the console (with --log, to its
task.log as under the engine). --force runs it again even if it is done (its done.json is set aside first).
Refused while a run of the same config is active (the run's lock).
"""

import argparse
import os
import sys
from pathlib import Path

from localrun.__main__ import render, run_lock
from localrun.plan import config_and_run_dir, task_state, task_threads, write_plan
from localrun.run_task import main as run_task

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("label", help="the task's label, as `task status` or `--dry-run` lists it")
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="cores it may use")
    parser.add_argument(
        "--log", action="store_true", help="write its output to its task.log, as the engine does"
    )
    parser.add_argument("--force", action="store_true", help="run it again even if it is done")
    args = parser.parse_args(argv)
    config, run_dir = config_and_run_dir(args.config, args.runs_dir)
    _, plan, _ = render(config)
    if args.label not in plan["tasks"]:
        near = [label for label in plan["order"] if args.label.split("-")[0] in label][:5]
        print(f"error: no task {args.label!r} in the plan of {args.config}; similar: {', '.join(near) or '-'}", file=sys.stderr)  # fmt: skip
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    task = plan["tasks"][args.label]
    not_done = [
        dep
        for dep in task["dependencies"]
        if task_state(run_dir, dep, plan["tasks"][dep]["digest"]) != "done"
    ]
    if not_done:
        print(f"error: {args.label} needs {', '.join(not_done)} done first (task run-local runs them)", file=sys.stderr)  # fmt: skip
        return 2
    with run_lock(run_dir):
        plan_path = run_dir / "plan.json"
        write_plan(plan, plan_path)
        done = run_dir / args.label / "done.json"
        if args.force and done.exists():
            done.replace(done.with_name("done.previous.json"))
        threads = task_threads(plan, args.label, args.threads)
        mem_mb = int(task["step"]["resources"]["mem-gb"] * 1024)
        command = [
            "--plan",
            str(plan_path),
            "--label",
            args.label,
            "--threads",
            str(threads),
            "--mem-mb",
            str(mem_mb),
        ]
        if args.log:
            command += ["--log", str(run_dir / args.label / "task.log")]
        return run_task(command)


if __name__ == "__main__":
    sys.exit(main())
