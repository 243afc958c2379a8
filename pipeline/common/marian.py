"""The one way steps run Marian.

By default Marian is the `pymarian` command from PyPI (a complete CPU Marian: train, decode, score,
convert, vocab). Set MARIAN to a folder with the `marian`, `marian-decoder`, ... binaries of a CUDA build
to use those instead (GPU workers). GPUS (e.g. "0 1") selects GPUs; otherwise Marian runs on THREADS CPU
threads.
"""

import json
import logging
import os
import shutil
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
    pymarian = shutil.which("pymarian") or str(Path(sys.executable).parent / "pymarian")
    if not os.access(pymarian, os.X_OK):
        raise StepError(
            "Marian is not installed: `pip install pymarian`, or set MARIAN to a folder of Marian binaries"
        )
    return [pymarian] if mode == "train" else [pymarian, mode]


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
