"""Helpers for tests that load exported models in bergamot-translator (Firefox's engine) under node."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

BERGAMOT_VERSION = "0.4.9"
NODE_SCRIPT = REPO_ROOT / "pipeline" / "export" / "bergamot_translate.js"


def bergamot_package() -> Path:
    """The npm package of bergamot-translator (the WebAssembly engine Firefox uses), installed once into a
    cache folder (BERGAMOT_NPM_DIR, default ~/.cache/translations-pipeline/); skips the test if npm is absent."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm are not installed: cannot load the export in bergamot-translator")
    cache = Path(
        os.environ.get("BERGAMOT_NPM_DIR")
        or Path.home() / ".cache" / "translations-pipeline" / f"bergamot-translator-{BERGAMOT_VERSION}"
    )
    package = cache / "node_modules" / "@browsermt" / "bergamot-translator"
    if not (package / "worker" / "bergamot-translator-worker.wasm").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund",
             f"@browsermt/bergamot-translator@{BERGAMOT_VERSION}"],
            check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    return package


def bergamot_translate(
    package, lines, model, vocab, shortlist=None, trg_vocab=None
) -> subprocess.CompletedProcess:
    command = [
        "node",
        str(NODE_SCRIPT),
        "--package",
        str(package),
        "--model",
        str(model),
        "--vocab",
        str(vocab),
    ]
    if shortlist:
        command += ["--shortlist", str(shortlist)]
    if trg_vocab:
        command += ["--trg-vocab", str(trg_vocab)]
    return subprocess.run(
        command, input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, timeout=600
    )
