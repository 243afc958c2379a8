#!/usr/bin/env bash
# Sets up a fresh checkout: uv (the project's environment manager) in .tools/, then the locked Python
# environment in .venv/ (taskgraph, Snakemake, pymarian, sentencepiece, sacrebleu, pytest, ruff, and the
# `task` binary). Safe to run again: it only installs what changed in uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null; then
    echo "setup: python3 (3.11) is required" >&2
    exit 1
fi
if [ ! -x .tools/bin/uv ]; then
    python3 -m venv .tools
    .tools/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"
fi
.tools/bin/uv sync --frozen --python "$(command -v python3)"
echo "setup: done. Run tasks with .venv/bin/task (task --list-all shows them)."
