"""Fault injection: every step script is killed with SIGKILL at random points, then run again.

A rerun after the kill must give byte-identical outputs to an uninterrupted run (Marian training: resume and
finish). The whole local engine is also killed mid-run with `kill -9` of its process group, then rerun.

The short form (2 kill points per step) runs with the other tests; the long form is selected with
`task test-faults` (FAULT_SEEDS=8 kill points per step, or any number you set).
"""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_local_engine import QUICK_CONFIG

from conftest import (
    KILL_ATTEMPTS,
    REPO_ROOT,
    finish,
    kill_running,
    kill_step_after,
    read_corpus,
    start_localrun,
    step_env,
    write_corpus,
)

pytestmark = pytest.mark.faults

SEEDS = range(1, int(os.environ.get("FAULT_SEEDS", "2")) + 1)
CORPUS = REPO_ROOT / "data" / "l10n-en-fr"


def run(module: str, args: list, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        env=env or step_env(),
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    assert result.returncode == 0, f"{module} failed:\n{result.stderr[-3000:]}"
    return result


def outputs_of(folder: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def timed(module, args, env=None) -> float:
    start = time.time()
    run(module, args, env)
    return time.time() - start


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Inputs for every step: an imported, cleaned, merged 20k-pair corpus, a devset, and a vocabulary."""
    root = tmp_path_factory.mktemp("faults")
    pairs = list(zip(read_corpus(CORPUS / "train.en.gz"), read_corpus(CORPUS / "train.fr.gz"), strict=True))[
        :20000
    ]
    write_corpus(root / "raw" / "train.en.gz", [s for s, _ in pairs])
    write_corpus(root / "raw" / "train.fr.gz", [t for _, t in pairs])
    write_corpus(root / "dev" / "corpus.en.zst", [s for s, _ in pairs[-30:]])
    write_corpus(root / "dev" / "corpus.fr.zst", [t for _, t in pairs[-30:]])
    return root


STEPS = {
    # name: (module, args with {root} and {out}, outputs compared byte for byte)
    "import": (
        "pipeline.data.import_dataset",
        ["--dataset", "local_{root}/raw/train", "--langs", "en,fr", "--output-dir", "{out}"],
        ["corpus.en.zst", "corpus.fr.zst", "stats.json"],
    ),
    "clean": (
        "pipeline.clean.clean_parallel",
        ["--input-dir", "{root}/ref-import", "--src", "en", "--trg", "fr", "--output-dir", "{out}"],
        ["corpus.en.zst", "corpus.fr.zst", "stats.json"],
    ),
    "merge": (
        "pipeline.clean.merge_corpus",
        ["--input-dirs", "{root}/ref-clean", "{root}/ref-import", "--src", "en", "--trg", "fr", "--output-dir", "{out}"],
        ["corpus.en.zst", "corpus.fr.zst", "stats.json"],
    ),
    "vocab": (
        "pipeline.train.spm_vocab",
        ["--corpus-dir", "{root}/ref-merge", "--src", "en", "--trg", "fr", "--vocab-size", "1000", "--sample-size", "20000", "--output-dir", "{out}"],
        ["vocab.spm"],
    ),
    "vocab-split": (
        "pipeline.train.spm_vocab",
        ["--corpus-dir", "{root}/ref-merge", "--src", "en", "--trg", "fr", "--vocab-size", "1000", "--sample-size", "20000", "--split", "true", "--output-dir", "{out}"],
        ["vocab.en.spm", "vocab.fr.spm", "vocab.en.vocab", "vocab.fr.vocab"],
    ),
}  # fmt: skip


def expand(args, root, out):
    return [a.format(root=root, out=out) for a in args]


@pytest.fixture(scope="module")
def references(workdir):
    """Each step run once without interruption: its outputs and how long it took."""
    durations = {}
    for name, (module, args, _) in STEPS.items():
        durations[name] = timed(module, expand(args, workdir, workdir / f"ref-{name}"))
    return durations


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("step", list(STEPS))
def test_a_killed_step_reruns_to_identical_outputs(step, seed, workdir, references):
    module, args, outputs = STEPS[step]
    out = workdir / f"killed-{step}-{seed}"
    rng = random.Random(f"{step}-{seed}")
    # Fails unless the step was killed mid-run; one that finished first is run again with half the delay.
    after = kill_step_after(
        module, expand(args, workdir, out), rng.uniform(0.1, 0.9) * references[step], retry_dir=out
    )
    run(module, expand(args, workdir, out))
    assert outputs_of(out, outputs) == outputs_of(workdir / f"ref-{step}", outputs), (
        f"{step} killed after {after:.2f}s then rerun differs"
    )


@pytest.fixture(scope="module")
def trained_model(workdir, references):
    """A model trained through a SIGKILL: killed after its first checkpoint, then resumed to the end."""
    out = workdir / "train"
    args = [
        "--model-type", "teacher", "--architecture", "tiny", "--src", "en", "--trg", "fr",
        "--train-dir", workdir / "ref-merge", "--devset-dir", workdir / "dev",
        "--vocab", workdir / "ref-vocab" / "vocab.spm", "--output-dir", out,
        "--marian-args",
        '{"after": "40u", "valid-freq": 10, "save-freq": 10, "disp-freq": 5, "dim-emb": 64, '
        '"transformer-dim-ffn": 128, "enc-depth": 1, "dec-depth": 1, "valid-max-length": 20, '
        '"valid-mini-batch": 64, "lr-warmup": 0}',
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train.train", *map(str, args)],
        cwd=REPO_ROOT,
        env=step_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (out / "model.npz.progress.yml").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "training ended before its first checkpoint: make it longer"
    kill_running(process, what="the training")
    assert not (out / "final.model.npz").exists()
    result = run("pipeline.train.train", args)
    return out, result


def test_a_killed_training_resumes_and_finishes(trained_model):
    out, result = trained_model
    assert "resuming the training from the checkpoint" in result.stderr
    assert (out / "final.model.npz").exists() and (out / "final.model.npz.decoder.yml").exists()


def evaluate_args(workdir, model, out):
    return [
        "--model-dir", model, "--dataset-dir", workdir / "dev", "--dataset", "dev", "--src", "en", "--trg", "fr",
        "--output-dir", out,
    ]  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_a_killed_evaluation_reruns_to_identical_outputs(seed, workdir, trained_model):
    model, _ = trained_model
    reference = workdir / "ref-evaluate"
    if not (reference / "metrics.json").exists():
        references_duration = timed("pipeline.eval.evaluate", evaluate_args(workdir, model, reference))
        (workdir / "evaluate-seconds").write_text(str(references_duration))
    duration = float((workdir / "evaluate-seconds").read_text())
    out = workdir / f"killed-evaluate-{seed}"
    kill_step_after(
        "pipeline.eval.evaluate",
        evaluate_args(workdir, model, out),
        random.Random(seed).uniform(0.1, 0.9) * duration,
        retry_dir=out,
    )
    run("pipeline.eval.evaluate", evaluate_args(workdir, model, out))
    names = ["translation.fr.zst", "metrics.json"]
    assert outputs_of(out, names) == outputs_of(reference, names)


# The local engine's quick config, stopped once the data is ready.
FULL_RUN = {
    **QUICK_CONFIG,
    "experiment": {**QUICK_CONFIG["experiment"], "name": "faults"},
    "target-stage": "build-vocab",
}
del FULL_RUN["marian-args"]


def data_outputs(run_dir: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(run_dir.glob("*/artifacts/*")):
        if path.is_file() and not path.name.startswith("."):
            files[f"{path.parent.parent.name}/{path.name}"] = path.read_bytes()
    return files


@pytest.mark.parametrize("seed", SEEDS)
def test_the_local_engine_killed_with_its_process_group_reruns_to_the_same_data(seed, tmp_path):
    config = tmp_path / "faults.yml"
    config.write_text(yaml.safe_dump(FULL_RUN))
    start = time.time()
    code, output = finish(start_localrun(config, tmp_path / "reference"))
    assert code == 0, output
    duration = time.time() - start

    # The kill must come while the engine runs: one that finished first is run again with half the delay.
    delay = random.Random(seed).uniform(0.3, 0.9) * duration
    for attempt in range(KILL_ATTEMPTS):
        runs = tmp_path / f"killed-{attempt}"
        process = start_localrun(config, runs, stdout=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            kill_running(process, what="the local engine")
            break
        assert process.returncode == 0, f"the engine failed ({process.returncode}) before the kill"
        delay /= 2
    else:
        pytest.fail(f"the engine finished before every kill (the last after {delay * 2:.2f}s)")
    code, output = finish(start_localrun(config, runs))
    assert code == 0, output
    assert data_outputs(runs / "faults") == data_outputs(tmp_path / "reference" / "faults")


def test_the_inputs_of_the_fault_suite_are_a_real_corpus(workdir):
    # Guards against a fixture that silently became empty (every comparison would then pass).
    assert len(read_corpus(workdir / "raw" / "train.en.gz")) == 20000
