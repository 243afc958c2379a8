"""The benchmarks' own logic that can go wrong before any timing: what they hand to Marian."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from translations_taskgraph.marian_options import known_options

REPO = Path(__file__).resolve().parents[1]
# The pipeline's caps: the baseline trains for a wall time instead.
CAPS = {"after", "after-epochs", "early-stopping", "early-stopping-epsilon"}
CONFIGS = sorted((REPO / "configs").glob("*.yml"))


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("config_file", CONFIGS, ids=lambda path: path.name)
def test_plain_marian_baseline_passes_marian_only_its_own_options(config_file, tmp_path):
    config = yaml.safe_load(config_file.read_text())
    teacher_args = (config.get("marian-args") or {}).get("training-teacher") or {}
    options = load_benchmark("plain_marian_baseline").baseline_options(config, tmp_path, "en", "fr", 2)
    unknown = sorted(set(options) - set(known_options()["train"]))
    assert not unknown, f"{config_file.name}: Marian does not accept {unknown}"
    for option, value in teacher_args.items():
        if option in known_options()["train"] and option not in CAPS:
            assert options[option] == value, option
    assert not CAPS & set(options) - {"early-stopping"}, "the baseline runs for a wall time, uncapped"
    assert options["cpu-threads"] == 2 and options["train-sets"][0].endswith("train.en")


def test_augmented_eval_names_the_reference_aug_sets_and_needs_the_baseline(tmp_path, capsys):
    augmented_eval = load_benchmark("augmented_eval")
    assert augmented_eval.augmented_name("local_data/l10n-en-fr/test", "aug-upper") == (
        "local_aug-upper_data/l10n-en-fr/test"
    )
    assert augmented_eval.augmented_name("flores_devtest", "aug-mix") == "flores_aug-mix_devtest"
    teacher = tmp_path / "run" / "train-teacher-en-fr-1" / "artifacts"
    teacher.mkdir(parents=True)
    (teacher / "final.model.npz").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"no plain-marian model .* \(run task bench-baseline first\)"):
        augmented_eval.main(
            ["--config", str(REPO / "configs" / "tiny.yml"), "--run-dir", str(tmp_path / "run")]
        )


def test_bench_chain_keeps_its_folder_for_a_later_shortlist(tmp_path):
    """A kept --work-dir lets a second run measure the shortlist on the first run's alignments."""
    import json
    import subprocess
    import sys

    work, first, second = tmp_path / "work", tmp_path / "first.json", tmp_path / "second.json"
    bench = [sys.executable, "benchmarks/bench_chain.py", "--sizes", "300", "--work-dir", work]
    subprocess.run([*bench, "--stages", "split,align", "--output", first], cwd=REPO, check=True)
    rows = json.loads(first.read_text())
    assert [(row["stage"], row["corpus_lines"]) for row in rows] == [("split", 300), ("align", 300)]
    assert all(row["peak_rss_mb"] > 0 and row["lines_per_s"] > 0 for row in rows)
    alignments = work / "current-align-300" / "corpus.aln.zst"
    assert alignments.exists()
    subprocess.run([*bench, "--stages", "shortlist", "--output", second], cwd=REPO, check=True)
    assert [row["stage"] for row in json.loads(second.read_text())] == ["shortlist"]
    assert (work / "current-shortlist-300" / "lex.50.50.s2t.bin").stat().st_size > 0
    without_alignments = subprocess.run(
        [*bench[:-1], tmp_path / "empty", "--stages", "shortlist"], cwd=REPO, capture_output=True, text=True
    )
    assert without_alignments.returncode != 0
    assert "needs the align stage" in without_alignments.stderr
