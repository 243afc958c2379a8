"""Run one task of a local run: what each Snakemake job executes.

Resolves the task's step into a command line (upstream artifacts are `<run>/<label>/artifacts/...`), gives
the step the threads and memory Snakemake granted (THREADS, WORKSPACE), runs it from the repository root,
and marks the task done (`<run>/<label>/done.json`, written atomically) only if it succeeded.
"""

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from localrun.gpus import acquire, device_environment, parse_gpus
from localrun.plan import task_state
from localrun.stage_times import STAGE_TIMES_FILE, write_stage_times
from pipeline.common.io import atomic_path
from translations_taskgraph.step_args import render_args

REPO_ROOT = Path(__file__).resolve().parent.parent


def step_command(step: dict, run_dir: Path, label: str) -> list[str]:
    def upstream_dir(dependency: str) -> str:
        return str(run_dir / dependency / "artifacts")

    args = render_args(step["args"], upstream_dir, str(run_dir / label / "artifacts"))
    return [sys.executable, "-m", step["module"], *args]


FINISHED_MARK = "[localrun] attempt finished:"


def start_attempt_log(log: Path, label: str) -> int:
    """Keeps the log of each earlier attempt (task.1.log is the first) and sends this process's output, and
    its step's, to a fresh `log`. Returns this attempt's number."""
    log.parent.mkdir(parents=True, exist_ok=True)
    earlier = sorted(log.parent.glob(f"{log.stem}.*{log.suffix}"))
    attempt = 1 + sum(
        1 for p in earlier if p.name.removeprefix(log.stem + ".").removesuffix(log.suffix).isdigit()
    )
    if log.exists():
        text = log.read_text(errors="replace")
        if FINISHED_MARK not in text:
            with open(log, "a") as previous:
                previous.write("\n[localrun] this attempt ended without a result: it was killed or lost\n")
        os.replace(log, log.with_name(f"{log.stem}.{attempt}{log.suffix}"))
        attempt += 1
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    earlier_note = (
        f"; earlier attempts: {log.stem}.1{log.suffix} .. {log.stem}.{attempt - 1}{log.suffix}"
        if attempt > 1
        else ""
    )
    print(f"[localrun] {label}: attempt {attempt}, started {started}{earlier_note}", flush=True)
    return attempt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--threads", required=True, type=int)
    parser.add_argument("--mem-mb", required=True, type=int)
    parser.add_argument("--log", type=Path, help="write the output here, keeping earlier attempts' logs")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs this task gets (0: CPU)")
    parser.add_argument(
        "--devices",
        default="none",
        help="the machine's GPU devices for the run (0,1,...), or `slurm`: those Slurm gave the job",
    )
    parser.add_argument(
        "--run-seconds",
        type=int,
        default=0,
        help="seconds this run of the task may take (a Slurm job's limit): a training saves and exits 75 before",
    )
    args = parser.parse_args(argv)
    task_dir = args.plan.resolve().parent / args.label
    task_dir.mkdir(parents=True, exist_ok=True)

    # A task process orphaned by a `kill -9` of the engine may still be running: wait for it.
    lock = open(task_dir / ".lock", "w")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"{args.label} is still running in an earlier process; waiting for it to end", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    if args.log:
        start_attempt_log(args.log, args.label)
    returncode = run(args)
    print(f"{FINISHED_MARK} exit status {returncode}", flush=True)
    # A step ended by a signal: the shell's convention (128 + signal), as sys.exit cannot take a negative.
    return 128 - returncode if returncode < 0 else returncode


def set_aside_earlier_definition(task_dir: Path) -> None:
    """The task's definition changed since its artifacts were made: they cannot be resumed from, but they may
    be a finished training, so they are moved to previous/ (replacing what an older change left there)."""
    previous = task_dir / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for name in ("artifacts", "task.json", "done.json"):
        if (task_dir / name).exists():
            os.replace(task_dir / name, previous / name)
    print(
        f"{task_dir.name}: definition changed; the earlier definition's artifacts are in {previous}",
        flush=True,
    )


def run_step(command: list[str], env: dict) -> int:
    """Runs the step and waits for it. A SIGTERM sent to this process is passed on to the step: Slurm's
    time-limit warning or `scancel` may reach this process alone, and the step (a training saves its
    checkpoint and exits 75) must get it, not be left running without its parent."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)

    def pass_on(signum, _frame):
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args):
    plan = json.loads(args.plan.read_text())
    task = plan["tasks"][args.label]
    run_dir = args.plan.resolve().parent
    task_dir = run_dir / args.label

    done = task_dir / "done.json"
    if task_state(run_dir, args.label, task["digest"]) == "done":
        print(f"{args.label} is already done", flush=True)
        return 0
    started = task_dir / "task.json"
    if started.exists() and json.loads(started.read_text()).get("digest") != task["digest"]:
        set_aside_earlier_definition(task_dir)
    with atomic_path(started) as tmp:
        tmp.write_text(json.dumps({"digest": task["digest"], "step": task["step"]}, indent=1))

    command = step_command(task["step"], run_dir, args.label)
    env = dict(os.environ)
    env.update(task["step"].get("env", {}))
    env.update(
        {
            "THREADS": str(args.threads),
            # Marian's workspace: half the task's memory grant, leaving room for the model and the data.
            "WORKSPACE": str(max(512, args.mem_mb // 2)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("GPUS", None)
    env.pop("STAGE_TIMES", None)
    if task["step"]["module"] == "pipeline.eval.report" and write_stage_times(
        run_dir, task_dir / STAGE_TIMES_FILE
    ):
        env["STAGE_TIMES"] = str(task_dir / STAGE_TIMES_FILE)
    env.pop("TASK_RUN_SECONDS", None)
    if args.run_seconds:
        env["TASK_RUN_SECONDS"] = str(args.run_seconds)
    if args.gpus and args.devices == "slurm":
        # Slurm gave the job its devices (CUDA_VISIBLE_DEVICES); Marian numbers them from 0.
        env["GPUS"] = " ".join(str(index) for index in range(args.gpus))
        print(
            f"GPUs: {args.gpus} from Slurm (CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '')})",
            flush=True,
        )
    elif args.gpus:
        devices, args.gpu_locks = acquire(run_dir, parse_gpus(args.devices.replace("none", "")), args.gpus)
        env.update(device_environment(devices))
        print(
            f"GPUs: {', '.join(map(str, devices))} (CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']})",
            flush=True,
        )
    print("running:", " ".join(command), flush=True)
    start = time.time()
    returncode = run_step(command, env)
    if returncode != 0:
        print(f"{args.label} failed with exit status {returncode}", flush=True)
        return returncode
    missing = [name for name in task["step"]["outputs"] if not (task_dir / "artifacts" / name).exists()]
    if missing:
        print(f"{args.label} finished but did not write {', '.join(missing)}", flush=True)
        return 1
    with atomic_path(done) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "digest": task["digest"],
                    "seconds": round(time.time() - start, 1),
                    "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
