"""The fake Slurm of tests/fake_slurm/ drives the real snakemake-executor-plugin-slurm on this machine: each
"job" a local background process, its record (sbatch options, state, exit code) under FAKE_SLURM_DIR."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

FAKE_SLURM = Path(__file__).resolve().parent / "fake_slurm"

# Short status-check cycles: the plugin waits `--seconds-between-status-checks` before its first check, then
# `--slurm-init-seconds-before-status-checks` after a round where a job finished (+10 s after a round where
# none did, capped at 180 s).
SNAKEMAKE_SLURM_ARGS = [
    "--executor", "slurm",
    "--jobs", "3",
    "--default-resources", "slurm_account=acct", "slurm_partition=part",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "1",
    "--slurm-keep-successful-logs",
    "--latency-wait", "2",
    "--retries", "0",
]  # fmt: skip


def fake_env(state: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FAKE_SLURM_", "SBATCH_"))}
    env.update(
        PATH=f"{FAKE_SLURM}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        FAKE_SLURM_DIR=str(state),
        FAKE_SLURM_PARTITIONS="part,gpu",
        FAKE_SLURM_ACCOUNTS="acct,other",
    )
    env.update(extra)
    return env


def records(state: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((state / "jobs").glob("*.json"))]


def run(cmd, env, cwd, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(state: Path, job_id: str, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rec = json.loads((state / "jobs" / f"{job_id}.json").read_text())
        if rec["state"] in states:
            return rec
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck in {rec['state']}")


def snakemake(workdir: Path, env: dict, *extra_args, timeout=120) -> subprocess.CompletedProcess:
    return run(
        [sys.executable, "-m", "snakemake", "--snakefile", "Snakefile", *SNAKEMAKE_SLURM_ARGS, *extra_args],
        env,
        workdir,
        timeout=timeout,
    )


def test_fake_commands(tmp_path):
    """The commands on their own, with the queries the plugin makes, in the formats it parses."""
    state = tmp_path / "state"
    env = fake_env(state)
    (tmp_path / "logs").mkdir()
    sub = run(
        ["sbatch", "--parsable", "--job-name", "uuid-1", "--output", str(tmp_path / "logs" / "%j.log"),
         "--export=ALL", "--comment", "rule_x", "-A", "acct", "-p", "part", "-t", "2", "--mem", "500",
         "--ntasks=1", "--cpus-per-task=2", "-D", str(tmp_path),
         "--wrap=echo job=$SLURM_JOB_ID cpus=$SLURM_CPUS_PER_TASK; "
         "srun -n1 --cpu-bind=q --cpus-per-task=2 --nodes=1 sh -c 'echo step cpus=$SLURM_CPUS_PER_TASK'"],
        env, tmp_path,
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip()
    assert job.isdigit() and int(job) >= 1000
    rec = wait_for(state, job)
    assert rec["state"] == "COMPLETED" and rec["exit_code"] == 0
    log = (tmp_path / "logs" / f"{job}.log").read_text()
    assert f"job={job} cpus=2" in log and "step cpus=2" in log

    failing = run(
        ["sbatch", "--parsable", "--job-name", "uuid-1", "-p", "part", "--wrap", "exit 3"], env, tmp_path
    )
    sleeper = run(["sbatch", "--job-name", "uuid-2", "--wrap", "sleep 30"], env, tmp_path)
    assert sleeper.stdout.startswith("Submitted batch job ")
    sleeper_id = sleeper.stdout.split()[-1]
    array = run(["sbatch", "--parsable", "--job-name", "uuid-3", "--array=1-2", "-o", "arr_%A_%a.log",
                 "--wrap", "echo task=$SLURM_ARRAY_TASK_ID"], env, tmp_path)  # fmt: skip
    failing_rec = wait_for(state, failing.stdout.strip())
    assert (failing_rec["state"], failing_rec["exit_code"]) == ("FAILED", 3)
    wait_for(state, sleeper_id, states=("RUNNING",))
    assert run(["scancel", sleeper_id], env, tmp_path).returncode == 0
    assert wait_for(state, sleeper_id)["state"] == "CANCELLED"
    array_id = array.stdout.strip()
    for task in (1, 2):
        assert wait_for(state, f"{array_id}_{task}")["state"] == "COMPLETED"
        assert (tmp_path / f"arr_{array_id}_{task}.log").read_text() == f"task={task}\n"

    # the plugin's status query (sacct) and its squeue alternative: "<id>|<STATE>" lines
    status = run(["sacct", "-X", "--parsable2", "--clusters", "all", "--noheader", "--format=JobIdRaw,State",
                  "--starttime", "2024-01-01T00:00", "--endtime", "now", "--name", "uuid-1"], env, tmp_path)  # fmt: skip
    assert status.stdout.split() == [f"{job}|COMPLETED", f"{failing.stdout.strip()}|FAILED"]
    squeue = run(
        ["squeue", "--format=%i|%T", "--states=all", "--noheader", "--name", "uuid-3"], env, tmp_path
    )
    assert squeue.stdout.split() == [f"{array_id}_1|COMPLETED", f"{array_id}_2|COMPLETED"]
    # accounts (sacctmgr, then sshare), the default partition (sinfo), MinJobAge/MaxArraySize (scontrol)
    accts = run(["sacctmgr", "-n", "-s", "list", "user", "me", "format=account%256"], env, tmp_path)
    assert accts.stdout.split() == ["acct", "other"]
    assert run(["sshare", "-U", "--format", "Account%256", "--noheader"], env, tmp_path).stdout.split() == [
        "acct",
        "other",
    ]
    assert run(["sinfo", "-o", "%P"], env, tmp_path).stdout.split() == ["PARTITION", "part*", "gpu"]
    config = run(["scontrol", "show", "config"], env, tmp_path).stdout
    assert "MinJobAge               = 300 sec" in config and "MaxArraySize            = 1001" in config
    # what sbatch refuses
    bad_partition = run(["sbatch", "-p", "nope", "--wrap", "true"], env, tmp_path)
    assert bad_partition.returncode == 1 and "invalid partition specified: nope" in bad_partition.stderr
    bad_account = run(["sbatch", "-A", "nope", "--wrap", "true"], env, tmp_path)
    assert bad_account.returncode == 1 and "Invalid account" in bad_account.stderr
    bad_option = run(["sbatch", "--no-such-option", "--wrap", "true"], env, tmp_path)
    assert bad_option.returncode == 1 and "unrecognized option" in bad_option.stderr


@pytest.mark.e2e
def test_snakemake_slurm_workflow(tmp_path):
    """Three rules through the real plugin: two independent jobs, then one needing both; the resources of
    one of them become sbatch options."""
    state = tmp_path / "state"
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            """
            localrules: all

            rule all:
                input: "c.txt"

            rule a:
                output: "a.txt"
                shell: "echo a > {output}"

            rule b:
                output: "b.txt"
                threads: 2
                resources:
                    mem_mb=500,
                    runtime=2,
                    gpu=1,
                    slurm_extra="--mail-type=NONE",
                shell: "echo b job=$SLURM_JOB_ID cpus=$SLURM_CPUS_PER_TASK > {output}"

            rule c:
                input: "a.txt", "b.txt"
                output: "c.txt"
                shell: "cat {input} > {output}"
            """
        )
    )
    result = snakemake(tmp_path, fake_env(state))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "a.txt").read_text() == "a\n"
    jobs = {rec["comment"]: rec for rec in records(state)}
    assert set(jobs) == {"rule_a", "rule_b", "rule_c"}
    assert all(rec["state"] == "COMPLETED" for rec in jobs.values())
    b = jobs["rule_b"]
    assert (tmp_path / "b.txt").read_text() == f"b job={b['raw_id']} cpus=2\n"
    assert (tmp_path / "c.txt").read_text() == (tmp_path / "a.txt").read_text() + (
        tmp_path / "b.txt"
    ).read_text()
    argv = b["argv"]
    for option in ("--cpus-per-task=2", "--mem", "-t", "--gpus=1", "-p", "-A", "--mail-type=NONE"):
        assert option in argv, argv
    assert (b["cpus_per_task"], b["mem_mb"], b["time_limit_minutes"], b["gpus"]) == (2, 500, 2, "1")
    assert (b["partition"], b["account"]) == ("part", "acct")
    # one run, one job name (the run's UUID), by which the plugin queries the status of its jobs
    assert len({rec["name"] for rec in jobs.values()}) == 1
    assert (tmp_path / ".snakemake" / "slurm_logs" / "rule_b" / f"{b['raw_id']}.log").exists()


@pytest.mark.e2e
def test_snakemake_slurm_timeout(tmp_path):
    """A job over its wall time gets SIGTERM, then SIGKILL, ends TIMEOUT, and Snakemake reports it failed."""
    state = tmp_path / "state"
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            """
            rule slow:
                output: "slow.txt"
                resources: runtime=1
                shell: "sleep 60; touch {output}"
            """
        )
    )
    env = fake_env(state, FAKE_SLURM_TIME_SCALE="0.5", FAKE_SLURM_KILL_GRACE="0.5")  # 1 minute = 0.5 s
    # After a round of status checks that saw no job succeed, the plugin sleeps 10 s more than the round
    # before, and Snakemake's shutdown waits that sleep out: the first check should already see the TIMEOUT.
    started = time.time()
    result = snakemake(tmp_path, env, "--seconds-between-status-checks", "3")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "TIMEOUT" in output, output
    assert time.time() - started < 55
    (rec,) = records(state)
    assert rec["state"] == "TIMEOUT" and rec["reason"] == "TimeLimit", rec
    assert not (tmp_path / "slow.txt").exists()
    # no process of the job survives it
    needle = f"FAKE_SLURM_JOB_TOKEN={rec['token']}\0".encode()
    survivors = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "environ").read_bytes():
                survivors.append(proc.name)
        except OSError:
            pass
    assert not survivors


@pytest.fixture(autouse=True)
def _no_stray_jobs(tmp_path):
    """Whatever a test leaves running in its fake Slurm is cancelled at its end."""
    yield
    state = tmp_path / "state"
    if (state / "jobs").is_dir():
        live = [r["job_id"] for r in records(state) if r["state"] in ("PENDING", "RUNNING")]
        if live:
            subprocess.run([str(FAKE_SLURM / "scancel"), *live], env=fake_env(state), capture_output=True)
