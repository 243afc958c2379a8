"""The task graph on Slurm (issue 19, item 2; localrun/slurm.py), through the real snakemake-executor-plugin-slurm
and the fake Slurm of tests/fake_slurm/ (each job a local process, its sbatch options recorded). The GPU tasks
run a fake CUDA Marian (tests/test_local_gpus.py) that records its devices and hands off to pymarian."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_fake_slurm import FAKE_SLURM, records
from test_local_engine import QUICK_CONFIG
from test_local_gpus import fake_marian  # noqa: F401 - a fixture

from conftest import REPO_ROOT

SIGTERM_LEAD = yaml.safe_load((REPO_ROOT / "configs" / "slurm" / "resources.yaml").read_text())[
    "sigterm-lead-seconds"
]
# Short status-check cycles. The plugin waits this long before its first check after a submission, and 10 s more
# after each check that finds no job finished: 8 s is about a short job's life here (the job step's Snakemake
# starts in 5 to 7 s), so that most checks find it done (1 s made every wave of jobs 12 s).
FAST_CHECKS = {
    "slurm-init-seconds-before-status-checks": 8,
    "seconds-between-status-checks": 1,
    "latency-wait": 2,
    "slurm-keep-successful-logs": True,
}


def profile(tmp_path, retries=0, jobs=2, **resources) -> Path:
    folder = tmp_path / "profile"
    folder.mkdir(exist_ok=True)
    config = yaml.safe_load((REPO_ROOT / "configs" / "slurm" / "config.yaml").read_text())
    config.update(FAST_CHECKS, retries=retries, jobs=jobs)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    own = yaml.safe_load((REPO_ROOT / "configs" / "slurm" / "resources.yaml").read_text())
    own.update(resources)
    (folder / "resources.yaml").write_text(yaml.safe_dump(own))
    return folder


def slurm_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FAKE_SLURM_", "SBATCH_"))}
    env.update(
        PATH=f"{FAKE_SLURM}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        FAKE_SLURM_DIR=str(tmp_path / "slurm-state"),
        FAKE_SLURM_PARTITIONS="cpu,gpu",
        FAKE_SLURM_ACCOUNTS="acct",
    )
    env.update(extra)
    return env


def run_slurm(config, runs, env, *extra, timeout=1500):
    return subprocess.run(
        [sys.executable, "-m", "localrun", "--executor", "slurm", "--config", str(config), "--runs-dir", str(runs),
         *extra],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def option(record: dict, name: str):
    """The value of an sbatch option in a job's argv (`-t 5`, `--mem 4000`, `--gpus=1`)."""
    argv = record["argv"]
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


# ----- bad input, before anything is submitted -----


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"config.yaml": "executor: slurm\nslurm-no-such-setting: 1\n"},
            "unknown key 'slurm-no-such-setting'",
        ),
        (
            {"config.yaml": "executor: slurm\n", "resources.yaml": "gpus-per-node: 4\n"},
            "unknown key 'gpus-per-node'",
        ),
        (
            {"config.yaml": "executor: slurm\n", "resources.yaml": "runtime-minutes: {training: 5}\n"},
            "leaves no time to train before the checkpoint",
        ),
        ({"resources.yaml": "cpus-for-all: 8\n"}, "no config.yaml"),
    ],
)
def test_a_wrong_profile_is_refused_before_anything_is_submitted(tmp_path, files, message):
    folder = tmp_path / "bad-profile"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    config = tmp_path / "quick.yml"
    config.write_text(yaml.safe_dump(QUICK_CONFIG))
    result = run_slurm(config, tmp_path / "runs", slurm_env(tmp_path), "--profile", str(folder), "--cpu-only")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not list((tmp_path / "slurm-state").glob("jobs/*.json"))  # nothing submitted


def test_gpu_jobs_need_a_cuda_marian_and_gpus_name_no_devices(tmp_path):
    config = tmp_path / "quick.yml"
    config.write_text(yaml.safe_dump(QUICK_CONFIG))
    env = slurm_env(tmp_path)
    env.pop("MARIAN", None)
    result = run_slurm(config, tmp_path / "runs", env, "--profile", str(profile(tmp_path)))
    assert result.returncode == 2 and "needs a CUDA build of Marian: set MARIAN" in result.stderr
    result = run_slurm(config, tmp_path / "runs", env, "--profile", str(profile(tmp_path)), "--gpus", "0")
    assert result.returncode == 2 and "on Slurm the jobs get theirs" in result.stderr


# ----- a run -----


# The micro config (tests/configs/micro.yml): every stage of the chain, each model a few hundred updates.
MICRO = REPO_ROOT / "tests" / "configs" / "micro.yml"
# Files whose content is a timing or a log, different from run to run whatever the engine.
UNREPRODUCIBLE = {"speed.json", "training.json", "training-clock.json", "feed.json", "report.md", "report.json",
                  "report.html", "estimate.json", "stage-times.json"}  # fmt: skip


def task_of(record: dict, plan: dict) -> str:
    """The task a job ran: the longest label of the plan in its comment (the plugin names the rule's wildcards)."""
    return max((label for label in plan["tasks"] if label in record["comment"]), key=len)


def deterministic_tasks(plan: dict) -> set[str]:
    """The tasks whose outputs are the same on every engine: not an alignment (eflomal samples at random, without
    a seed), not a decoding on a GPU (GPU batches differ from CPU ones, and so may the translations), and
    nothing downstream of either. The trainings are deterministic on one thread."""
    random_or_batched = {
        label
        for label, task in plan["tasks"].items()
        if task["step"]["module"] == "pipeline.alignments.align"
        or (task["step"]["resources"].get("gpus") and task["step"]["module"] != "pipeline.train.train")
    }
    for label in plan["order"]:  # dependencies first
        if any(dependency in random_or_batched for dependency in plan["tasks"][label]["dependencies"]):
            random_or_batched.add(label)
    return set(plan["tasks"]) - random_or_batched


def reproducible_digests(run_dir: Path, tasks: set[str]) -> dict:
    """{task/file: sha256} of the outputs of `tasks` that do not record time, logs or paths."""
    found = {}
    for label in sorted(tasks):
        for path in sorted((run_dir / label / "artifacts").rglob("*")):
            if (
                path.is_file()
                and path.name not in UNREPRODUCIBLE
                and not path.name.endswith((".log", ".yml", ".yaml"))
            ):
                found[str(path.relative_to(run_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.mark.e2e
@pytest.mark.timeout(1900)  # above its subprocesses' own limits (30 + 1200 + 600 s): tests/test_test_suite.py
def test_the_micro_chain_to_its_end_as_slurm_jobs_with_a_training_resumed_after_its_signal(
    tmp_path,
    fake_marian,  # noqa: F811
):
    """The whole micro chain (backward model, back-translation, two teachers, distillation, student, fine-tuning,
    int8, export, evaluations, report), every task a Slurm job: each job submitted with the resources its kind
    asks for, the GPU tasks on a (fake) CUDA Marian, and every reproducible output byte-identical to a plain local
    run's (every task but the alignments, whose eflomal has no seed, the GPU decodings, whose batches are not the
    CPU's, and what depends on them). Once the first teacher has a checkpoint, it gets what Slurm sends `sigterm-lead-seconds` before a job's
    time limit (`scancel --signal=TERM`, which signals without cancelling): the training saves its checkpoint and
    exits 75, the job fails, Snakemake submits it again, and the next job resumes from the checkpoint and the same
    place in the data, so that the chain's outputs are those of an unkilled run."""
    import time

    marian, calls = fake_marian
    config = yaml.safe_load(MICRO.read_text())
    config["marian-args"]["training-teacher"] = {**config["marian-args"]["training-teacher"], "save-freq": 10}
    path = tmp_path / "micro.yml"
    path.write_text(yaml.safe_dump(config))
    env = slurm_env(tmp_path, MARIAN=str(marian))
    # One CPU per job, as the local run below has one core: SentencePiece's vocabulary and Marian's trainings
    # depend on their thread count (the fake CUDA Marian trains on one thread).
    folder = profile(tmp_path, retries=2, jobs=4, **{"cpus-for-all": 1})
    process = subprocess.Popen(
        [sys.executable, "-m", "localrun", "--executor", "slurm", "--config", str(path), "--runs-dir",
         str(tmp_path / "runs"), "--profile", str(folder), "--account", "acct", "--partition", "gpu"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run_dir = tmp_path / "runs" / "micro"
    model = run_dir / "train-teacher-en-fr-1"
    deadline = time.time() + 600
    while not (model / "artifacts" / "model.npz.progress.yml").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.1)
    state = tmp_path / "slurm-state"
    (job,) = [
        r for r in records(state) if "train-teacher-en-fr-1" in r["comment"] and r["state"] == "RUNNING"
    ]
    subprocess.run(["scancel", "--signal=TERM", job["job_id"]], env=env, check=True, timeout=30)
    stdout, stderr = process.communicate(timeout=1200)
    assert process.returncode == 0, stdout[-3000:] + stderr[-5000:]

    # Every task a job, with the resources its kind asks for; the signalled teacher twice (failed, then resumed).
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["tasks"].keys() >= {"export-en-fr", "distillation-student-model-finetune-en-fr"}
    jobs = records(state)
    resources = yaml.safe_load((folder / "resources.yaml").read_text())
    assert len(jobs) == len(plan["order"]) + 1
    signalled = [r for r in jobs if task_of(r, plan) == "train-teacher-en-fr-1"]
    assert [r["state"] for r in signalled] == ["FAILED", "COMPLETED"]
    assert all(r["state"] == "COMPLETED" for r in jobs if r not in signalled)
    for record in jobs:
        label = task_of(record, plan)
        task_resources = plan["tasks"][label]["step"]["resources"]
        training = plan["tasks"][label]["step"]["module"] == "pipeline.train.train"
        assert option(record, "-A") == "acct" and option(record, "-p") == "gpu"
        assert option(record, "--mem") == str(int(task_resources["mem-gb"] * 1024)), label
        cpus = resources["cpus-for-all"] if task_resources["cpus"] == "all" else int(task_resources["cpus"])
        assert option(record, "--cpus-per-task") == str(cpus), label
        assert option(record, "--gpus") == (
            str(task_resources["gpus"]) if task_resources.get("gpus") else None
        ), label
        assert option(record, "-t") == str(
            resources["runtime-minutes"]["training" if training else "default"]
        ), label
        assert (f"--signal=TERM@{SIGTERM_LEAD}" in record["argv"]) == training, label
    assert sum(bool(option(r, "--gpus")) for r in jobs) >= 8  # trainings, translations, scoring
    # The GPU tasks ran the CUDA Marian, each device numbered from 0 on its node.
    used = [json.loads(line) for line in calls.read_text().splitlines()]
    assert {r["binary"] for r in used} >= {"marian", "marian-decoder"}
    assert all(r["args"][r["args"].index("--devices") + 1] == "0" for r in used if "--devices" in r["args"])
    logs = "".join(p.read_text() for p in model.glob("task*.log"))
    assert "resuming the training from the checkpoint" in logs
    progress = yaml.safe_load((model / "artifacts" / "model.npz.progress.yml").read_text())
    assert progress["batches"] == 100 and (model / "artifacts" / "final.model.npz").exists()
    assert (run_dir / "export-en-fr" / "done.json").exists()

    # Every reproducible output is byte-identical to a plain local run's (CPU pymarian, nothing signalled), on
    # one core as the jobs had, up to the backward model (what comes after it is an alignment's or a GPU
    # decoding's descendant).
    local = tmp_path / "local"
    result = subprocess.run(
        [sys.executable, "-m", "localrun", "--config", str(path), "--runs-dir", str(local), "--cores", "1",
         "--target-stage", "backtranslations-train-backwards-model"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    compared = deterministic_tasks(plan) & {p.parent.name for p in (local / "micro").glob("*/done.json")}
    assert {
        "build-vocab-en-fr",
        "backtranslations-train-backwards-model-en-fr",
        "corpus-merge-parallel-en-fr",
    } <= compared
    expected = reproducible_digests(local / "micro", compared)
    assert len(expected) > 20 and any("final.model.npz" in name for name in expected)
    actual = reproducible_digests(run_dir, compared)
    assert actual.keys() == expected.keys()
    assert [name for name in expected if actual[name] != expected[name]] == []
