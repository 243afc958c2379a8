"""The demo chain as issue 24 measures it: a fresh local run, one `kill -9` of the whole run during a
training, the run again until it finishes; then one line per model from the run's report.

The kill comes when the training's Marian log (`<run>/<training task>/artifacts/train.log`) first shows
update --kill-at-update: every process of the run (the engine, Snakemake, the step, OpusTrainer, Marian) gets
SIGKILL, as a power cut would. Prints the wall time of both parts, and per model: updates, stop reason, dev
chrF of its last three validations, test chrF/BLEU; for the int8 student its share of the teacher's chrF and
its speed ratio. Writes the same as JSON to <run>/demo-run.json.

    task bench-demo -- --config configs/tiny.en-de.yml --kill-at-update 700
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def update_reached(log: Path, update: int) -> bool:
    if not log.exists():
        return False
    return re.search(rf"Up\. {update} :", log.read_text(errors="replace")) is not None


def run_local(config: Path, runs_dir: Path, kill_log: Path | None, kill_at: int | None) -> tuple[float, bool]:
    """Runs the local engine to its end, or until `kill_log` shows update `kill_at` (then kills it all).
    Returns (seconds, killed)."""
    command = [sys.executable, "-m", "localrun", "--config", str(config), "--runs-dir", str(runs_dir)]
    started = time.time()
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    while process.poll() is None:
        if kill_log is not None and update_reached(kill_log, kill_at):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return time.time() - started, True
        time.sleep(1)
    if process.returncode != 0:
        sys.exit(f"error: the run failed with exit status {process.returncode}")
    return time.time() - started, False


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs")
    parser.add_argument(
        "--kill-at-update", type=int, help="kill the whole run at this update (none: no kill)"
    )
    parser.add_argument(
        "--kill-task", default="train-teacher-{src}-{trg}-1", help="the training to kill the run in"
    )
    parser.add_argument(
        "--keep", action="store_true", help="resume an existing run instead of starting fresh"
    )
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    experiment = config["experiment"]
    run_dir = args.runs_dir.resolve() / experiment["name"]
    if run_dir.exists() and not args.keep:
        shutil.rmtree(run_dir)
    kill_log = None
    if args.kill_at_update:
        task = args.kill_task.format(src=experiment["src"], trg=experiment["trg"])
        kill_log = run_dir / task / "artifacts" / "train.log"
    first, killed = run_local(args.config, args.runs_dir.resolve(), kill_log, args.kill_at_update)
    second = 0.0
    if killed:
        print(
            f"killed the whole run with SIGKILL at update {args.kill_at_update} after {first:.0f} s",
            flush=True,
        )
        second, _ = run_local(args.config, args.runs_dir.resolve(), None, None)
    report_file = next(run_dir.glob("report-*/artifacts/report.json"))
    report = json.loads(report_file.read_text())
    summary = {
        "config": str(args.config),
        "killed_at_update": args.kill_at_update if killed else None,
        "seconds": round(first + second, 1),
        "seconds_before_kill": round(first, 1) if killed else None,
        "trainings": [
            {
                "model": row["model"],
                "updates": row["updates"],
                "stop_reason": row["stop_reason"],
                "verdict": row["verdict"],
                "last_dev": [p.get(row["metric"]) for p in row["last_validations"]],
                "wall_seconds": (row.get("training") or {}).get("wall_seconds"),
            }
            for row in report.get("convergence", [])
        ],
        "evaluations": [
            {
                "model": e.get("model"),
                "dataset": e.get("dataset"),
                "chrf": e.get("chrf"),
                "bleu": e.get("bleu"),
                "copy_source_chrf": (e.get("copy_source") or {}).get("chrf"),
                "words_per_second": (e.get("speed") or {}).get("words_per_second"),
            }
            for e in report.get("evaluations", [])
        ],
        "gaps": report.get("gaps"),
    }
    (run_dir / "demo-run.json").write_text(json.dumps(summary, indent=1))
    print(f"{args.config}: {summary['seconds'] / 60:.1f} minutes in all", flush=True)
    for row in summary["trainings"]:
        print(
            f"  {row['model']}: {row['updates']} updates, stopped by {row['stop_reason']} ({row['verdict']}), "
            f"last dev chrF {row['last_dev']}"
        )
    for e in summary["evaluations"]:
        print(
            f"  {e['model']} on {e['dataset']}: chrF {e['chrf']} BLEU {e['bleu']}, {e['words_per_second']} words/s"
        )
    print(json.dumps(summary["gaps"], indent=1))


if __name__ == "__main__":
    main()
