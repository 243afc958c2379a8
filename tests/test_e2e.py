"""The tiny demo config end to end through the local engine, shortened to keep CI fast: a real Marian model
must beat copying the source on the shipped test split (chrF 31.2)."""

import json
import subprocess

import pytest
import yaml

from conftest import REPO_ROOT, communicate, start_localrun

COPY_SOURCE_CHRF = 31.2
# Updates of the CI run; the demo (configs/tiny.yml) trains for 4 epochs. Its teacher's valid chrF was 22.3 at 600
# updates and 42.9 at 1,200 (2026-12-05), and passes 39 at 1,000, above copying the source (31.2): 1,000 keep a
# margin and CI under 45 minutes.
E2E_UPDATES = 1000
# The engine run's own limit, and the test's (pytest-timeout's global 1,800 s would stop the test first, without
# the engine's output): tests/test_test_suite.py checks that the test's limit stays above its subprocesses'.
ENGINE_TIMEOUT = 3600


@pytest.mark.e2e
@pytest.mark.timeout(ENGINE_TIMEOUT + 300)
def test_tiny_config_trains_a_model_that_beats_copying_the_source(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["experiment"]["name"] = "e2e"
    # The teacher alone, as before the model chain: no back-translations (tests/test_e2e_chain.py runs the
    # whole chain on the micro config).
    config["datasets"]["mono-src"] = config["datasets"]["mono-trg"] = []
    # The report reads every model's evaluation (student, int8): it is checked on the micro chain instead.
    config["target-stage"] = "evaluate-teacher"
    teacher = config["marian-args"]["training-teacher"]
    teacher.update({"after": f"{E2E_UPDATES}u", "valid-freq": 500, "save-freq": 500})
    # A fixed number of updates, so no wall-time cap for a cooldown to be a share of.
    teacher.pop("lr-cooldown"), teacher.pop("lr-cooldown-decays")
    config_path = tmp_path / "e2e.yml"
    config_path.write_text(yaml.safe_dump(config))

    process = start_localrun(config_path, tmp_path / "runs", stderr=subprocess.PIPE)
    stdout, stderr = communicate(process, ENGINE_TIMEOUT)
    assert process.returncode == 0, stdout[-5000:] + stderr[-5000:]
    run_dir = tmp_path / "runs" / "e2e"
    model_dir = run_dir / "train-teacher-en-fr-1" / "artifacts"
    assert (model_dir / "final.model.npz").stat().st_size > 1_000_000
    assert (model_dir / "final.model.npz.decoder.yml").exists()

    metrics_file = (
        run_dir / "evaluate-teacher-en-fr-1-local_data_l10n_en_fr_test" / "artifacts" / "metrics.json"
    )
    metrics = json.loads(metrics_file.read_text())
    assert metrics["sentences"] == 1000
    assert metrics["copy_source"]["chrf"] == pytest.approx(COPY_SOURCE_CHRF, abs=0.1)
    assert metrics["chrf"] > COPY_SOURCE_CHRF, metrics
    assert f"metrics: {metrics_file}" in stdout
