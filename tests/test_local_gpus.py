"""GPUs on the local engine (issue 19, item 1), tested with a fake CUDA Marian: a folder of `marian*` scripts
(MARIAN) that record their arguments and CUDA_VISIBLE_DEVICES, then hand off to the CPU Marian (pymarian) with
`--devices` replaced by one CPU thread (a CPU task's options pass as they are). With `--gpus 0,1` two teachers train side by side on different devices;
with `--gpus 0` they queue for it."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from test_local_engine import QUICK_CONFIG

from conftest import REPO_ROOT

FAKE_MARIAN = """#!{python}
import json, os, signal, subprocess, sys, time
MODES = {{"marian": [], "marian-decoder": ["decode"], "marian-scorer": ["score"], "marian-conv": ["convert"]}}
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
if args == ["--version"]:
    print("v1.12.42 (fake CUDA build)")
    sys.exit(0)
record = {{"binary": name, "args": args, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "model": next((args[i + 1] for i, a in enumerate(args) if a == "--model"), None), "start": time.time()}}
cpu_args, skipping = [], False
for arg in args:
    if arg == "--devices":
        skipping = True
        continue
    if skipping and not arg.startswith("--"):
        continue
    skipping = False
    cpu_args.append(arg)
# A GPU task's devices become one CPU thread; a CPU task (a real CUDA build runs those too) keeps its own.
on_devices = ["--cpu-threads", "1"] if "--devices" in args else []
child = subprocess.Popen([sys.executable, {cli!r}, *MODES[name], *cpu_args, *on_devices])
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda number, frame: child.send_signal(number))
returncode = child.wait()
record["end"] = time.time()
with open({record_file!r}, "a") as out:
    out.write(json.dumps(record) + "\\n")
sys.exit(returncode)
"""


@pytest.fixture
def fake_marian(tmp_path):
    folder = tmp_path / "marian-cuda"
    folder.mkdir()
    record_file = tmp_path / "marian-calls.jsonl"
    script = FAKE_MARIAN.format(
        python=sys.executable,
        cli=str(REPO_ROOT / "pipeline" / "common" / "pymarian_cli.py"),
        record_file=str(record_file),
    )
    for name in ("marian", "marian-decoder", "marian-scorer", "marian-conv"):
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    return folder, record_file


def two_teachers_config(tmp_path):
    config = json.loads(json.dumps(QUICK_CONFIG))
    config["experiment"]["teacher-ensemble"] = 2
    # Models of the micro config's size (tests/configs/micro.yml): the devices are the point, not the training.
    config["marian-args"]["training-teacher"].update(
        {"after": "30u", "dim-emb": 32, "transformer-dim-ffn": 64, "enc-depth": 1, "dec-depth": 1,
         "transformer-heads": 2, "mini-batch": 32, "valid-mini-batch": 32}
    )  # fmt: skip
    path = tmp_path / "two-teachers.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def localrun(config, runs, *extra, env=None):
    return subprocess.run(
        [sys.executable, "-m", "localrun", "--config", str(config), "--runs-dir", str(runs), *extra],
        cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def teacher_trainings(record_file) -> list[dict]:
    calls = [json.loads(line) for line in record_file.read_text().splitlines()]
    return [c for c in calls if c["binary"] == "marian" and "train-teacher" in (c["model"] or "")]


@pytest.mark.e2e
def test_two_gpus_train_two_teachers_side_by_side_one_gpu_queues_them(fake_marian, tmp_path):
    folder, record_file = fake_marian
    config = two_teachers_config(tmp_path)

    result = localrun(config, tmp_path / "two", "--gpus", "0,1", env={"MARIAN": str(folder)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    first, second = teacher_trainings(record_file)
    assert {first["cuda_visible_devices"], second["cuda_visible_devices"]} == {"0", "1"}
    for call in (first, second):
        assert call["args"][call["args"].index("--devices") + 1] == "0"  # Marian numbers its visible devices
    assert first["start"] < second["end"] and second["start"] < first["end"], (
        "they did not train side by side"
    )

    # The same run with one GPU: only the teachers again (the data tasks are done and do not depend on GPUs).
    record_file.unlink()
    for teacher in (tmp_path / "two" / "quick").glob("train-teacher-*"):
        shutil.rmtree(teacher)
    result = localrun(config, tmp_path / "two", "--gpus", "0", env={"MARIAN": str(folder)})
    assert "Running 2 of 11 tasks" in result.stdout, result.stdout[-2000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    first, second = sorted(teacher_trainings(record_file), key=lambda c: c["start"])
    assert first["cuda_visible_devices"] == second["cuda_visible_devices"] == "0"
    assert first["end"] <= second["start"], "two trainings shared the one GPU"


@pytest.mark.parametrize(
    "gpus, env, message",
    [
        ("0,0", {}, "error: --gpus: device 0 named twice"),
        ("0,x", {}, "error: --gpus: 'x' is not a device number (write them as 0,1,...)"),
        (
            "0",
            {"MARIAN": ""},
            "error: --gpus needs a CUDA build of Marian: set MARIAN to the folder of its binaries",
        ),
        ("0", {"MARIAN": "/nonexistent"}, "error: --gpus: MARIAN=/nonexistent has no executable marian, "),
    ],
)
def test_bad_gpu_settings_are_refused_in_one_line_before_anything_runs(tmp_path, gpus, env, message):
    started = time.monotonic()
    result = localrun(two_teachers_config(tmp_path), tmp_path / "runs", "--gpus", gpus, env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "runs").exists()
    assert time.monotonic() - started < 30


def test_a_broken_marian_build_is_refused(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("marian", "marian-decoder", "marian-scorer", "marian-conv"):
        (folder / name).write_text(
            "#!/bin/sh\necho 'error while loading shared libraries: libcudart.so.12' >&2\nexit 127\n"
        )
        (folder / name).chmod(0o755)
    result = localrun(
        two_teachers_config(tmp_path), tmp_path / "runs", "--gpus", "0", env={"MARIAN": str(folder)}
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --gpus: {folder}/marian --version failed (exit status 127): "
        "error while loading shared libraries: libcudart.so.12"
    )
