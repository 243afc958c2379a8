"""Run a training config's task graph on this machine with Snakemake.

    python -m localrun --config configs/tiny.yml [--target-stage STAGE] [--dry-run] [--dag FILE]

The graph is the one taskgraph renders for Taskcluster (same kinds, same transforms, same step scripts);
each task runs in `<runs>/<experiment>/<label>/` (artifacts/, task.log, done.json). A run that was
interrupted resumes from its unfinished tasks; a finished run does nothing.
"""

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from localrun.dag import dag_dot
from localrun.gpus import GpuError, check_cuda_marian, parse_gpus
from localrun.plan import build_plan, task_states, write_plan
from localrun.slurm import DEFAULT_PROFILE, ProfileError, job_resources, load_profile, slurm_arguments
from localrun.stage_times import ESTIMATE_FILE
from pipeline.common.io import write_json
from translations_taskgraph.component_checks import check_components
from translations_taskgraph.dataset_checks import check_datasets
from translations_taskgraph.training_config import (
    STAGE_ALIASES,
    STAGES,
    ConfigError,
    load_training_config,
    validate_training_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

SNAKEFILE = Path(__file__).parent / "Snakefile"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="localrun", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config (YAML)")
    parser.add_argument(
        "--runs-dir", type=Path, default=REPO_ROOT / "runs", help="runs go to RUNS_DIR/<experiment name>"
    )
    parser.add_argument(
        "--target-stage",
        choices=STAGES + list(STAGE_ALIASES),
        metavar="STAGE",
        help=f"run only up to this stage (overrides the config's): {', '.join(STAGES)}",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and what is already done; run nothing"
    )
    parser.add_argument(
        "--dag",
        type=Path,
        help="write the task graph as Graphviz DOT (or SVG/PNG if `dot` exists), grouped by stage, the tasks of a "
        "kind (chunks, datasets) collapsed into one node",
    )
    parser.add_argument("--dag-every-task", action="store_true", help="--dag with one node per task")
    parser.add_argument(
        "--cores",
        type=bounded(int, 1, "at least 1"),
        default=len(os.sched_getaffinity(0)),
        help="cores to use (default: all)",
    )
    parser.add_argument(
        "--mem-gb",
        type=bounded(float, 0.1, "at least 0.1"),
        default=None,
        help="memory the tasks may use together (default: 80%% of RAM)",
    )
    parser.add_argument(
        "--retries",
        type=bounded(int, 0, "0 or more"),
        default=None,
        help="times to retry a failed task (default 0; on Slurm, the profile's)",
    )
    parser.add_argument(
        "--gpus",
        default=os.environ.get("LOCALRUN_GPUS", ""),
        help="GPU device numbers for the GPU tasks (trainings, translation, scoring), e.g. 0,1; needs MARIAN "
        "(a CUDA Marian's binaries). Default: $LOCALRUN_GPUS, else none (CPU)",
    )
    slurm = parser.add_argument_group("Slurm (--executor slurm, or task run-slurm; localrun/slurm.py)")
    slurm.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="local: this machine; slurm: every task a Slurm job (snakemake-executor-plugin-slurm)",
    )
    slurm.add_argument(
        "--profile", type=Path, default=None, help="Slurm profile folder (default configs/slurm)"
    )
    slurm.add_argument("--account", help="Slurm account of every job (else the profile's)")
    slurm.add_argument("--partition", help="Slurm partition of every job (else the profile's)")
    slurm.add_argument(
        "--jobs", type=bounded(int, 1, "at least 1"), help="jobs queued at once (else the profile's)"
    )
    slurm.add_argument(
        "--cpu-only",
        action="store_true",
        help="submit the GPU tasks without GPUs (CPU Marian, pymarian), e.g. on a CPU partition",
    )
    return parser.parse_args(argv)


def bounded(kind, minimum, wanted: str):
    """An argparse type: a number of `kind` of at least `minimum` (`--cores 0` would wait forever for a core,
    holding the run's lock)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return parse


def total_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def render(config: dict):
    """The target task graph of `config`, its plan for this engine, and the seconds rendering took."""
    from translations_taskgraph.render import generator_for

    start = time.time()
    graph = generator_for(config).target_task_graph
    return graph, build_plan(graph), time.time() - start


def render_plan(config: dict) -> tuple[dict, float]:
    _, plan, seconds = render(config)
    return plan, seconds


def write_estimate(config: dict, graph, run_dir: Path, cores: int, gpus: int) -> dict | None:
    """Preflight's estimate for this machine, written to <run>/estimate.json before the tasks run: the report
    task (run_task) sets each stage's actual seconds against it."""
    from translations_taskgraph import preflight

    try:
        estimate = preflight.estimate(config, graph.to_json(), {}, engine="local", cores=cores, gpus=gpus)
    except Exception as error:  # a cost-model problem must not stop the run
        print(f"  (no estimate for this run: {type(error).__name__}: {error})")
        return None
    estimate.update(cores=cores, gpus=gpus)
    write_json(run_dir / ESTIMATE_FILE, estimate)
    return estimate


def estimate_against_actual(estimate: dict | None, run_dir: Path) -> None:
    """After a finished run: the estimate the run started with (write_estimate) against each stage's actual
    seconds, printed and written to <run>/estimate-vs-actual.json, so that the cost model is checked on every run."""
    from translations_taskgraph import preflight

    if estimate is None:  # write_estimate said why
        return
    comparison = preflight.compare_with_run(estimate, preflight.read_run(run_dir))
    (run_dir / "estimate-vs-actual.json").write_text(json.dumps(comparison, indent=1) + "\n")
    preflight.print_comparison(comparison, run_dir)


def print_plan(plan: dict, run_dir: Path) -> dict:
    states = task_states(plan, run_dir)
    print(f"Plan: {len(plan['order'])} tasks in {run_dir}")
    for index, label in enumerate(plan["order"], start=1):
        task = plan["tasks"][label]
        deps = ", ".join(task["dependencies"]) or "-"
        print(f"  {index:3d}. [{states[label]:>7}] {label}  (stage {task['stage']}; after: {deps})")
    return states


def report_progress(plan: dict, run_dir: Path, process: subprocess.Popen) -> None:
    """Every LOCALRUN_PROGRESS_SECONDS (60) while the run goes on: one line per running task saying how far it is
    (a training's update, words/s, last chrF and wall time against its cap; a translation's lines)."""
    from localrun.status import detailed_state, task_progress

    interval = float(os.environ.get("LOCALRUN_PROGRESS_SECONDS") or 60)
    while True:
        try:
            process.wait(timeout=interval)
            return
        except subprocess.TimeoutExpired:
            pass
        for label in plan["order"]:
            task = plan["tasks"][label]
            with contextlib.suppress(OSError, ValueError):
                if detailed_state(run_dir, label, task["digest"]) == "running":
                    print(f"[progress] {label}: {task_progress(run_dir / label, task)}", flush=True)


def write_dag(plan: dict, run_dir: Path, destination: Path, every_task: bool = False) -> None:
    dot_text = dag_dot(plan, task_states(plan, run_dir), every_task)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.suffix in (".svg", ".png", ".pdf") and shutil.which("dot"):
        subprocess.run(
            ["dot", f"-T{destination.suffix[1:]}", "-o", str(destination)],
            input=dot_text,
            text=True,
            check=True,
        )
    else:
        if destination.suffix in (".svg", ".png", ".pdf"):
            destination = destination.with_suffix(".dot")
            print("Graphviz `dot` is not installed: writing DOT text instead")
        destination.write_text(dot_text)
    print(f"DAG written to {destination}")


def summarize(plan: dict, run_dir: Path) -> None:
    """Where the models, the metrics, the export for Firefox and the report are, with the scores."""
    for label in plan["order"]:
        task = plan["tasks"][label]
        artifacts = run_dir / label / "artifacts"
        if task["kind"].startswith("train-") and (artifacts / "final.model.npz").exists():
            print(f"  model:   {artifacts / 'final.model.npz'}")
        if task["kind"].startswith("evaluate-") and (artifacts / "metrics.json").exists():
            metrics = json.loads((artifacts / "metrics.json").read_text())
            print(
                f"  metrics: {artifacts / 'metrics.json'}  (BLEU {metrics['bleu']}, chrF {metrics['chrf']} on {metrics['dataset']})"
            )
        if task["kind"] == "export" and (artifacts / "metadata.json").exists():
            print(f"  export:  {artifacts}  (Firefox's files and metadata.json)")
        if task["kind"] == "report" and (artifacts / "report.md").exists():
            print(f"  report:  {artifacts / 'report.html'} (charts), {artifacts / 'report.md'}")
        if task["kind"] == "report" and (artifacts / "report.json").exists():
            for line in convergence_flags(json.loads((artifacts / "report.json").read_text())):
                print(f"  {line}")


def convergence_flags(report: dict) -> list[str]:
    """One line per model the report found still improving (with its numbers and what to change), and one
    per test set where the final model, accepted by the config, scores at or below copying the source."""
    lines = []
    for row in report.get("convergence", []):
        if row.get("still_improving"):
            lines.append(f"STILL IMPROVING: {row['advice']}")
        elif row.get("advice"):
            lines.append(f"NOT JUDGED: {row['advice']}")
    floor = report.get("copy_source_floor") or {}
    for below in floor.get("below", []):
        lines.append(
            f"BELOW COPYING THE SOURCE (accepted): {floor['model']} scores chrF {below['chrf']:g} on "
            f"{below['dataset']}, copying the source {below['copy_source_chrf']:g}"
        )
    return lines


def print_failed_logs(plan: dict, run_dir: Path, since: float, lines: int = 25) -> None:
    """The end of the log of each task whose last attempt, started after `since`, failed."""
    for label in plan["order"]:
        log = run_dir / label / "task.log"
        if (run_dir / label / "done.json").exists() or not log.exists() or log.stat().st_mtime < since:
            continue
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {label} failed; the end of {log}:", file=sys.stderr)
        print("\n".join(f"    {line}" for line in tail), file=sys.stderr)


def clear_stale(plan: dict, run_dir: Path, states: dict) -> None:
    # A task whose definition changed must run again; Snakemake then reruns what depends on it (mtime).
    for label, state in states.items():
        if state == "stale":
            (run_dir / label / "done.json").unlink()


@contextlib.contextmanager
def run_lock(run_dir: Path):
    with open(run_dir / ".run.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another run is active in {run_dir}; wait for it or stop it first") from None
        yield


def snakemake_command(plan_path: Path, run_dir: Path, args) -> list[str]:
    if getattr(args, "executor", "local") == "slurm":
        return slurm_snakemake_command(plan_path, run_dir, args)
    mem_gb = args.mem_gb or round(total_memory_gb() * 0.8, 1)
    gpu_devices = getattr(args, "gpu_devices", [])
    devices = ",".join(map(str, gpu_devices))
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(SNAKEFILE),
        "--directory", str(run_dir),
        "--config", f"plan={plan_path}", f"gpus={devices}",
        "--cores", str(args.cores),
        "--resources", f"mem_mb={int(mem_gb * 1024)}", f"gpu={len(gpu_devices)}",
        "--rerun-incomplete",
        "--rerun-triggers", "mtime",
        "--nolock",  # our own lock (run_lock) is released by the kernel even on kill -9
        "--retries", str(args.retries or 0),
        "--show-failed-logs",
        "--quiet", "host", "reason",
    ]  # fmt: skip


def slurm_snakemake_command(plan_path: Path, run_dir: Path, args) -> list[str]:
    """Every task a Slurm job: the profile's settings, each task's resources from its kind (localrun/slurm.py)."""
    jobs_path = run_dir / "slurm-jobs.json"
    write_json(jobs_path, job_resources(json.loads(plan_path.read_text()), args.slurm_resources))
    config = [
        f"plan={plan_path}",
        f"slurm_jobs={jobs_path}",
        f"slurm_gpus={'none' if args.cpu_only else 'kinds'}",
    ]
    config += [f"slurm_{key}={value}" for key in ("account", "partition") if (value := getattr(args, key))]
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(SNAKEFILE),
        "--directory", str(run_dir),
        "--config", *config,
        *slurm_arguments(args.profile, args),
        "--rerun-incomplete",
        "--rerun-triggers", "mtime",
        "--nolock",  # our own lock (run_lock), on the shared filesystem
        "--show-failed-logs",
        "--quiet", "host", "reason",
    ]  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        args.gpu_devices = parse_gpus(args.gpus)
        if args.executor == "slurm":
            args.profile = (args.profile or DEFAULT_PROFILE).resolve()
            _, args.slurm_resources = load_profile(args.profile)
            if args.gpu_devices:
                raise GpuError(
                    "--gpus names this machine's devices; on Slurm the jobs get theirs (or --cpu-only)"
                )
            if not args.cpu_only and not args.dry_run:
                check_cuda_marian()  # the GPU jobs run the CUDA Marian of MARIAN (on the shared filesystem)
        elif args.gpu_devices and not args.dry_run:
            check_cuda_marian()
    except (GpuError, ProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        config = load_training_config(args.config)
        if args.target_stage:
            config["target-stage"] = args.target_stage
            config = validate_training_config(config)
        check_datasets(config)
        check_components(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    run_dir = (args.runs_dir / config["experiment"]["name"]).resolve()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        print(
            f"error: --runs-dir {args.runs_dir}: cannot make the run folder {run_dir} (a file is in the way)",
            file=sys.stderr,
        )
        return 2
    except PermissionError:
        print(f"error: --runs-dir {args.runs_dir}: no permission to create {run_dir}", file=sys.stderr)
        return 2
    graph, plan, seconds = render(config)
    print(
        f"Rendered the task graph for {args.config} in {seconds:.1f}s: {len(plan['order'])} tasks up to stage {config['target-stage']}"
    )
    plan_path = run_dir / "plan.json"

    if args.dag:
        write_dag(plan, run_dir, args.dag, args.dag_every_task)
    if args.dry_run:
        print_plan(plan, run_dir)
        return 0

    with run_lock(run_dir):
        write_plan(plan, plan_path)
        states = print_plan(plan, run_dir)
        if all(state == "done" for state in states.values()):
            print(f"Nothing to do: all {len(states)} tasks of {run_dir.name} are already done.")
            summarize(plan, run_dir)
            return 0
        clear_stale(plan, run_dir, states)
        estimate = write_estimate(config, graph, run_dir, args.cores, len(getattr(args, "gpu_devices", [])))
        left = sum(state != "done" for state in states.values())
        print(
            f"Running {left} of {len(states)} tasks with Snakemake; each task's log is {run_dir}/<task>/task.log"
        )
        started = time.time()
        process = subprocess.Popen(snakemake_command(plan_path, run_dir, args), cwd=REPO_ROOT)
        progress = threading.Thread(target=report_progress, args=(plan, run_dir, process), daemon=True)
        progress.start()
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            process.wait()
            print(
                "Interrupted: run the same command again to resume from the unfinished tasks.",
                file=sys.stderr,
            )
            return 130
    if returncode != 0:
        print_failed_logs(plan, run_dir, started)
        print(
            f"The run failed (Snakemake exit status {returncode}); see the task.log named above. "
            "Fix the cause and run the same command again to resume.",
            file=sys.stderr,
        )
        return returncode
    print(f"Run {run_dir.name} finished:")
    summarize(plan, run_dir)
    estimate_against_actual(estimate, run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
