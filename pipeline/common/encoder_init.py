"""Whether a student can start from a teacher's embeddings and encoder (experiment.student-init: teacher-encoder):
both encoders must compute the same function from the same weights. Used by the training step, on the teacher's
saved options, and by the config's validation, on the presets and marian-args, before any task runs."""

from pathlib import Path

import yaml

PRESETS = Path(__file__).resolve().parents[1] / "train" / "configs" / "model"

# Marian's defaults (`marian --help`) for the options that decide what a transformer encoder computes from its
# weights, for a side that leaves one of them out.
ENCODER_OPTIONS = {
    "type": "amun",
    "dim-emb": 512,
    "enc-depth": 1,
    "transformer-dim-ffn": 2048,
    "transformer-ffn-depth": 2,
    "transformer-ffn-activation": "swish",
    "transformer-heads": 8,
    "transformer-preprocess": "",
    "transformer-postprocess": "dan",
    "transformer-postprocess-emb": "d",
    "transformer-train-position-embeddings": False,
    "tied-embeddings-all": False,
}

# What Marian's `--task` aliases set of those (`marian --task transformer-base --dump-config expand`).
_TRANSFORMER = {"type": "transformer", "enc-depth": 6, "tied-embeddings-all": True, "transformer-ffn-activation": "relu",
                "transformer-preprocess": "", "transformer-postprocess": "dan"}  # fmt: skip
TASK_ALIASES = {
    "transformer-base": {**_TRANSFORMER, "dim-emb": 512, "transformer-heads": 8, "transformer-dim-ffn": 2048},
    "transformer-big": {
        **_TRANSFORMER,
        "dim-emb": 1024,
        "transformer-heads": 16,
        "transformer-dim-ffn": 4096,
    },
}


def encoder_differences(student: dict, teacher: dict) -> list[str]:
    """`option: student's value (the teacher's: value)` for each encoder option on which they differ."""
    return [
        f"{key}: {student.get(key, default)!r} (the teacher's: {teacher.get(key, default)!r})"
        for key, default in ENCODER_OPTIONS.items()
        if student.get(key, default) != teacher.get(key, default)
    ]


def preset_options(model_type: str, architecture: str, marian_args: dict | None) -> dict:
    """A preset (pipeline/train/configs/model/<type>.<architecture>.yml) with the config's marian-args over it,
    its `task` alias expanded."""
    options = yaml.safe_load((PRESETS / f"{model_type}.{architecture}.yml").read_text(encoding="utf-8")) or {}
    options = {**options, **(marian_args or {})}
    # As Marian expands `task`: the alias's values, under the explicit ones.
    return {**TASK_ALIASES.get(options.get("task"), {}), **options}
