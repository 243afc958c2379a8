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
# monocleaner thresholds above 0 on this machine (pipeline/monocleaner/scorers.py). TRANSLATIONS_EXTRAS=bicleaner
# installs bicleaner-ai 3.6 (its `bicleaner-ai-classify` and `bicleaner-ai-train`) in an environment of its own,
# .venv-bicleaner/ (it pins numpy<2 and TensorFlow 2.16-2.20): the CPU build of TensorFlow (about 260 MB to
# download, 2 GB installed, about 75 s), which pipeline/bicleaner/scorers.py finds there when no other
# bicleaner-ai-classify is on PATH. bicleaner-ai and tf-keras go in without their dependencies, which name the
# CUDA build (`tensorflow`, 620 MB); fasttext-wheel is what bicleaner-ai-train imports (from the hardrules extra).
# TRANSLATIONS_EXTRAS=tensorboard installs TensorBoard in .venv-tensorboard/ for `task tensorboard`.
# TRANSLATIONS_EXTRAS=comet installs unbabel-comet (it pins numpy<2 and protobuf<5) with PyTorch in .venv-comet/,
# which pipeline/eval/evaluate.py runs for COMET scores (about 1.4 GB and a minute where pip finds PyTorch's CPU
# build; from PyPI, torch is the CUDA build, several GB). sentencepiece 0.2.0 and setuptools<81 because newer
# ones break it: sentencepiece 0.2.3's protobuf module needs protobuf 5, and torchmetrics 0.10 imports
# pkg_resources, which setuptools 81 removed.
# An environment of its own for an extra: made again when it cannot start Python, never part of the repository.
own_environment() {
    if ! "$1/bin/python" -c pass 2>/dev/null; then
        rm -rf "$1"
        python3 -m venv "$1"
    fi
    echo "*" >"$1/.gitignore"
}
extras="${TRANSLATIONS_EXTRAS:-}"
for extra in ${extras//,/ }; do
    case "$extra" in
        monocleaner)
            .venv/bin/pip install --quiet --disable-pip-version-check "kenlm==0.3.0" "sacremoses>=0.1" "toolwrapper>=2.1"
            .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "monocleaner==1.7.1"
            ;;
        bicleaner)
            own_environment .venv-bicleaner
            .venv-bicleaner/bin/pip install --quiet --disable-pip-version-check \
                "tensorflow-cpu==2.20.0" "numpy==1.26.4" "protobuf>=6.33" "transformers==4.57.6" \
                "huggingface-hub>=0.30,<1" "bicleaner-ai-glove==0.2.1" "fasttext-wheel==0.9.2" "scikit-learn" \
                "PyYAML>=5.1.2" "toolwrapper" "sentencepiece" "regex" "sacremoses" "fuzzywuzzy" \
                "python-Levenshtein" "zstandard"
            .venv-bicleaner/bin/pip install --quiet --disable-pip-version-check --no-deps \
                "tf-keras==2.20.1" "bicleaner-ai==3.6"
            ;;
        tensorboard)
            # `task tensorboard` (localrun/tensorboard.py): TensorBoard and tensorboardX need protobuf >= 5.29.5.
            own_environment .venv-tensorboard
            .venv-tensorboard/bin/pip install --quiet --disable-pip-version-check \
                "tensorboard>=2.18,<3" "tensorboardX>=2.6" "protobuf>=5.29.5" "setuptools"
            ;;
        comet)
            own_environment .venv-comet
            .venv-comet/bin/pip install --quiet --disable-pip-version-check \
                "torch==2.13.0" "unbabel-comet==2.2.7" "sentencepiece==0.2.0" "setuptools<81"
            ;;
        *)
            echo "setup: unknown extra '$extra' in TRANSLATIONS_EXTRAS (known: monocleaner, bicleaner, tensorboard, comet)" >&2
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
