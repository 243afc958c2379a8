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
# Optional components outside the lock (their own pins conflict with it), on request, after the sync (which
# would remove them): TRANSLATIONS_EXTRAS=monocleaner installs KenLM (built from source: a C++ compiler, about
# 2 minutes the first time) and monocleaner's language-model filter without its fastspell dependency, for
# monocleaner thresholds above 0 on this machine (pipeline/monocleaner/scorers.py).
extras="${TRANSLATIONS_EXTRAS:-}"
for extra in ${extras//,/ }; do
    case "$extra" in
        monocleaner)
            .venv/bin/pip install --quiet --disable-pip-version-check "kenlm==0.3.0" "sacremoses>=0.1" "toolwrapper>=2.1"
            .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "monocleaner==1.7.1"
            ;;
        *)
            echo "setup: unknown extra '$extra' in TRANSLATIONS_EXTRAS (known: monocleaner)" >&2
            exit 1
            ;;
    esac
done
# Bytecode for every installed module, written now: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
# compile numpy, scipy, sacrebleu, ... from source in every step process (measured: 1.0 s against 0.3 s to import
# the language-ID module). Only files that changed are compiled again (1.6 s when nothing did).
site_packages="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
.venv/bin/python -m compileall -q -j 0 "$site_packages" >/dev/null
echo "setup: done. Run tasks with .venv/bin/task (task --list-all shows them)."
