"""Fine-tuning takes the architecture from the model it continues, not from the preset: a student trained with
other sizes (`marian-args.training-student: {enc-depth: 3}`) fine-tunes as the model it is."""

import numpy as np
import pytest
import yaml

from pipeline.common.step import StepError
from pipeline.train.train import fine_tuning_architecture, load_preset


def marian_model(path, **options):
    """An .npz the way Marian saves one: its options as YAML bytes in `special:model.yml`."""
    saved = yaml.safe_dump({"type": "transformer", "dim-emb": 256, "version": "v1.12.42", **options}).encode()
    np.savez(
        path, **{"special:model.yml": np.frombuffer(saved + b"\0", dtype=np.int8), "Wemb": np.zeros((4, 4))}
    )
    return path


def test_the_pretrained_models_sizes_replace_the_presets(tmp_path):
    preset = load_preset("student", "tiny")
    assert (preset["enc-depth"], preset["transformer-dim-ffn"]) == (6, 1536)
    model = marian_model(
        tmp_path / "student.npz", **{"enc-depth": 3, "transformer-dim-ffn": 1024, "dec-depth": 2}
    )
    assert fine_tuning_architecture(preset, {}, model) == {"enc-depth": 3, "transformer-dim-ffn": 1024}


def test_a_model_of_the_presets_sizes_changes_nothing(tmp_path):
    preset = load_preset("student", "tiny")
    model = marian_model(tmp_path / "student.npz", **{"enc-depth": 6, "transformer-dim-ffn": 1536})
    assert fine_tuning_architecture(preset, {"learn-rate": 0.0003}, model) == {}


def test_an_explicit_option_that_contradicts_the_model_is_refused(tmp_path):
    model = marian_model(tmp_path / "student.npz", **{"enc-depth": 3})
    with pytest.raises(
        StepError, match=r"--marian-args enc-depth: 6 contradicts the pretrained model .*enc-depth: 3"
    ):
        fine_tuning_architecture(load_preset("student", "tiny"), {"enc-depth": 6}, model)


def test_a_file_that_is_no_marian_model_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(StepError, match="is not a Marian model with its options"):
        fine_tuning_architecture(load_preset("student", "tiny"), {}, bad)
