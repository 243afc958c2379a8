"""`task tensorboard` (issue 22, item 3): a run's Marian logs become TensorBoard scalars, exported again as the
training goes on, and TensorBoard (its own environment, .venv-tensorboard) serves them."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_report_convergence import STUDENT, TEACHER, marian_log

from conftest import REPO_ROOT

ENVIRONMENT = REPO_ROOT / ".venv-tensorboard" / "bin" / "python"
needs_tensorboard = pytest.mark.skipif(
    not ENVIRONMENT.exists(),
    reason="TRANSLATIONS_EXTRAS=tensorboard scripts/setup.sh installs it (.ci/run does)",
)
READ_BACK = """
import json, sys
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
mux = EventMultiplexer().AddRunsFromDirectory(sys.argv[1])
mux.Reload()
print(json.dumps({run: {tag: [[e.step, e.value] for e in mux.Scalars(run, tag)] for tag in tags["scalars"]}
                  for run, tags in mux.Runs().items()}))
"""


def minimal_config(name: str) -> dict:
    return {
        "experiment": {"name": name, "src": "en", "trg": "fr", "spm-vocab-size": 1000},
        "datasets": {
            "train": ["local_data/l10n-en-fr/parallel"],
            "devtest": ["local_data/l10n-en-fr/dev"],
            "test": ["local_data/l10n-en-fr/test"],
        },
    }


@pytest.fixture
def run_dir(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(minimal_config("tb")))
    run = tmp_path / "runs" / "tb"
    marian_log(run / TEACHER / "artifacts", [(250, 8.2), (500, 16.5), (750, 24.9)])
    marian_log(run / STUDENT / "artifacts", [(250, 21.0), (500, 29.4)])
    return config, run


def tensorboard(config, run, *extra, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "localrun.tensorboard", "--config", str(config), "--runs-dir", str(run.parent), *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env, **kwargs,
    )  # fmt: skip


def read_back(logdir) -> dict:
    result = subprocess.run(
        [str(ENVIRONMENT), "-c", READ_BACK, str(logdir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


@needs_tensorboard
def test_every_validation_and_progress_line_becomes_a_scalar_and_later_ones_are_added(run_dir):
    config, run = run_dir
    result = tensorboard(config, run, "--export-only")
    assert result.returncode == 0, result.stderr
    scalars = read_back(run / "tensorboard")
    assert set(scalars) == {TEACHER, STUDENT}
    assert scalars[TEACHER]["valid/chrf"] == [
        [250, pytest.approx(8.2)],
        [500, pytest.approx(16.5)],
        [750, pytest.approx(24.9)],
    ]
    assert len(scalars[TEACHER]["valid/ce-mean-words"]) == 3
    assert [step for step, _ in scalars[TEACHER]["train/cost"]] == [100, 200, 300, 400, 500, 600, 700]
    assert len(scalars[STUDENT]["valid/chrf"]) == 2

    # Nothing new: nothing written again. A new validation: that point only.
    assert tensorboard(config, run, "--export-only").stdout.strip() == ""
    log = run / TEACHER / "artifacts" / "train.log"
    log.write_text(
        log.read_text() + "[2024-05-01 10:10:05] [valid] Ep. 2 : Up. 1000 : chrf : 30.5 : new best\n"
    )
    result = tensorboard(config, run, "--export-only")
    assert "1 new points" in result.stdout
    assert read_back(run / "tensorboard")[TEACHER]["valid/chrf"][-1] == [1000, pytest.approx(30.5)]


@needs_tensorboard
def test_tensorboard_serves_the_runs_curves(run_dir):
    config, run = run_dir
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "localrun.tensorboard", "--config", str(config), "--runs-dir", str(run.parent),
         "--port", str(port), "--refresh", "2"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        tags, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5
                ) as answer:
                    tags = json.loads(answer.read())
                if TEACHER in tags and STUDENT in tags:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert tags is not None and {"valid/chrf", "train/cost"} <= set(tags[TEACHER]), tags
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The TensorBoard server it started is gone with it.
    time.sleep(1)
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _serves(p, port)]
    assert not left, left


def _serves(cmdline: Path, port: int) -> bool:
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tensorboard.main" in args and str(port).encode() in args


def test_a_missing_environment_or_run_is_refused_with_what_to_do(run_dir, tmp_path):
    config, run = run_dir
    result = tensorboard(
        config, run, "--export-only", env={"TENSORBOARD_PYTHON": str(tmp_path / "none" / "python")}
    )
    assert result.returncode == 1
    assert "TensorBoard is not installed here" in result.stderr
    assert "TRANSLATIONS_EXTRAS=tensorboard scripts/setup.sh" in result.stderr
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump(minimal_config("never-run")))
    result = tensorboard(other, run, "--export-only")
    assert result.returncode == 2 and "no run of" in result.stderr and "task run-local" in result.stderr
