"""How a training stops and resumes (issue 24): exact resume after kill -9 between two checkpoints, no line of a
curriculum silently dropped, caps in epochs, updates and wall time, and the stop reason in training.json."""

import json
import re

import numpy as np
from test_model_chain import data, kill_when, start, train_args  # noqa: F401 - `data` is a fixture

from conftest import run_step

TRAIN = "pipeline.train.train"


def weights(path):
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files if not name.startswith("special:")}


def progress(out):
    import yaml

    return yaml.safe_load((out / "model.npz.progress.yml").read_text())


def display_lines(out, after: int) -> list[str]:
    """Marian's progress and validation lines past update `after`, without times, speeds and the last digits
    of the cost (Marian's resume restores its optimizer state in float32)."""
    lines = []
    for line in (out / "train.log").read_text().splitlines():
        match = re.search(r"Ep\. \d+ : Up\. (\d+) : (.*)", line)
        if match and int(match[1]) > after:
            text = re.sub(r" : Time .*", "", match[2])
            lines.append(re.sub(r"Cost (\d+\.\d{4})\d*", r"Cost \1", text))
    return lines


def test_a_training_killed_between_checkpoints_resumes_where_its_checkpoint_was(data, tmp_path):  # noqa: F811
    aligned = ["--alignments", data / "corpus" / "corpus.aln.zst"]
    marian = {"save-freq": 15, "valid-freq": 15, "maxi-batch": 4}
    unkilled = tmp_path / "unkilled"
    run_step(TRAIN, train_args(data, unkilled, updates=45, extra=aligned, **marian))

    killed = tmp_path / "killed"
    args = train_args(data, killed, updates=45, extra=aligned, **marian)
    process = start(TRAIN, args)
    # After the first checkpoint (update 15), before the second: the data already fed beyond update 15
    # (Marian reads ahead, OpusTrainer's old state file ran ahead too) must be fed again.
    kill_when(process, lambda: (killed / "model.npz.progress.yml").exists())
    assert progress(killed)["batches"] == 15
    result = run_step(TRAIN, args)
    assert "resuming the training from the checkpoint" in result.stderr
    assert "Restoring the corpus state to epoch 1, batch 15" in (killed / "train.log").read_text()

    for key in ("batches", "samples", "labels-total"):  # same updates, same lines, same target tokens
        assert progress(killed)[key] == progress(unkilled)[key], key
    summary = json.loads((killed / "training.json").read_text())
    assert summary["updates"] == 45 and summary["stop_reason"] == "after-updates"
    # The same batches in the same order: every display line after the checkpoint (sentences, target labels,
    # cost) and every validation score is the unkilled run's.
    assert display_lines(killed, after=15) == display_lines(unkilled, after=15)
    expected, resumed = weights(unkilled / "model.npz"), weights(killed / "model.npz")
    assert expected.keys() == resumed.keys()
    for name in expected:
        # Attention key biases shift every logit of a query alike, which softmax ignores: their gradient is
        # rounding noise, which Adam scales up, so they differ even between a clean stop and resume and an
        # unstopped run. Every weight that the model's output depends on is the same within float tolerance.
        if not name.endswith("_bk"):
            np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
