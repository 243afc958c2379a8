#!/usr/bin/env bash
# Sets up a fresh checkout: Poetry (the project's environment manager) in .tools/, then the locked Python
# environment in .venv/ (taskgraph, Snakemake, pymarian, sentencepiece, sacrebleu, pytest, ruff, and the
# `task` binary). Safe to run again: it only installs what changed in poetry.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

POETRY_VERSION=2.5.1

if ! command -v python3 >/dev/null; then
    echo "setup: python3 (3.11) is required" >&2
    exit 1
fi
if ! .tools/bin/poetry --version 2>/dev/null | grep -q "$POETRY_VERSION"; then
    python3 -m venv .tools
    .tools/bin/pip install --quiet --disable-pip-version-check "poetry==$POETRY_VERSION"
fi
.tools/bin/poetry env use --quiet "$(command -v python3)"
# sync: installs every group of poetry.lock (main, steps, dev) and removes what the lock no longer lists.
.tools/bin/poetry sync --no-interaction
echo "setup: done. Run tasks with .venv/bin/task (task --list-all shows them)."
