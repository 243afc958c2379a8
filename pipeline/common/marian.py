"""The one way steps run Marian.

By default Marian is the `pymarian` command from PyPI (a complete CPU Marian: train, decode, score,
convert, vocab). Set MARIAN to a folder with the `marian`, `marian-decoder`, ... binaries of a CUDA build
to use those instead (GPU workers). GPUS (e.g. "0 1") selects GPUs; otherwise Marian runs on THREADS CPU
threads.
"""

import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline.common.step import StepError, threads, workspace_mb

logger = logging.getLogger("marian")

_BINARIES = {
    "train": "marian",
    "decode": "marian-decoder",
    "score": "marian-scorer",
    "convert": "marian-conv",
    "vocab": "marian-vocab",
}


def marian_command(mode: str) -> list[str]:
    """The command line prefix that runs Marian in `mode` (train, decode, score, convert, vocab)."""
    if mode not in _BINARIES:
        raise ValueError(f"unknown Marian mode {mode!r}")
    marian_dir = os.environ.get("MARIAN")
    if marian_dir:
        binary = Path(marian_dir) / _BINARIES[mode]
        if not os.access(binary, os.X_OK):
            raise StepError(f"MARIAN={marian_dir} has no executable {_BINARIES[mode]}")
        return [str(binary)]
    if importlib.util.find_spec("_pymarian") is None:
        raise StepError(
            "Marian is not installed: `pip install pymarian`, or set MARIAN to a folder of Marian binaries"
        )
    # pymarian's own command line, but ended by Ctrl-C (pipeline/common/pymarian_cli.py says why)
    launcher = [sys.executable, str(Path(__file__).with_name("pymarian_cli.py"))]
    return launcher if mode == "train" else [*launcher, mode]


def to_args(options: Mapping) -> list[str]:
    """{"dim-emb": 256, "tied-embeddings-all": True, "vocabs": [a, b]} -> --dim-emb 256 --tied-embeddings-all --vocabs a b"""
    args = []
    for key, value in options.items():
        if value is None or value is False or (isinstance(value, (list, tuple)) and not value):
            continue
        args.append(f"--{key}")
        if value is True:
            continue
        if isinstance(value, (list, tuple)):
            args.extend(str(v) for v in value)
        else:
            args.append(str(value))
    return args


def parse_marian_args(text: str) -> dict:
    """The --marian-args of a step: a JSON mapping of extra Marian options."""
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as error:
        raise StepError(f"--marian-args is not valid JSON: {error}") from None
    if not isinstance(extra, dict):
        raise StepError("--marian-args must be a JSON mapping of option names to values")
    return extra


def device_options() -> dict:
    """Marian's device options from the engine's grant: GPUS if set, else THREADS CPU threads."""
    gpus = os.environ.get("GPUS", "").split()
    if gpus:
        return {"devices": gpus, "workspace": workspace_mb()}
    return {"cpu-threads": threads(), "workspace": workspace_mb()}


# How a decoder batches sentences, per device; a model's decoder config carries no batch sizes (its training
# batches say nothing about decoding). CPU, measured with pymarian on 2 threads and the demo's 1,000 test
# sentences: sorting by source length and batches of 8 decode the beam-4 teacher in 15.8 s (31.5 s with
# batches of 64; 25.7 s unsorted) and the int8 student with its shortlist in 2.9 s (9.9 s at 64 unsorted).
# Small batches pay on CPU: a batch runs until its longest output ends, and a student's shortlist is the
# union over the batch. GPU: the reference's batches (mozilla/translations pipeline/translate/decoder.yml).
CPU_DECODING_BATCHES = {"mini-batch": 8, "maxi-batch": 1000, "maxi-batch-sort": "src"}
GPU_DECODING_BATCHES = {"mini-batch-words": 5000, "maxi-batch": 10000, "maxi-batch-sort": "src"}
BATCH_SIZE_KEYS = ("mini-batch", "mini-batch-words", "mini-batch-fit")


def decoding_batch_options(user_options: Mapping) -> dict:
    """The decoding batch defaults for the granted device, less those the user's own Marian options set
    (any batch size the user gives replaces all of ours)."""
    defaults = dict(GPU_DECODING_BATCHES if os.environ.get("GPUS", "").split() else CPU_DECODING_BATCHES)
    if any(key in user_options for key in BATCH_SIZE_KEYS):
        defaults = {k: v for k, v in defaults.items() if k not in BATCH_SIZE_KEYS}
    return {k: v for k, v in defaults.items() if k not in user_options}


def run_marian(
    mode: str, options: Mapping, log_path: Path | None = None, **kwargs
) -> subprocess.CompletedProcess:
    command = marian_command(mode) + to_args(options)
    logger.info("running: %s", " ".join(command))
    result = subprocess.run(command, **kwargs)
    if result.returncode != 0:
        hint = f"; see {log_path}" if log_path else ""
        raise StepError(f"Marian {mode} failed with exit status {result.returncode}{hint}")
    return result
