"""docs/config-reference.md is generated from the one training-config schema (issue 22, item 6) and cannot
drift from it."""

import subprocess
import sys

from conftest import REPO_ROOT
from translations_taskgraph.config_reference import render


def test_the_committed_reference_is_what_the_schema_gives():
    result = subprocess.run(
        [sys.executable, "-m", "translations_taskgraph.config_reference", "--check"],
        cwd=REPO_ROOT, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_every_key_is_listed_with_its_type_default_and_meaning():
    text = render()
    assert (
        "| `experiment.spm-vocab-size` | integer (min 64, max 256000, multiple of 8) (required) |  | Size of"
        in text
    )
    assert '| `experiment.teacher-model` | one of `tiny`, `base`, `big` | "big" |' in text
    assert (
        "| `experiment.cefilter-remove-fraction` | number (min 0, below 1) | 0.05 | Share of the distilled"
        in text
    )
    assert "| `datasets.mono-trg` | list of string |" in text and "back-translation" in text
    assert "- `experiment.min-fluency-threshold`: monocleaner fluency filtering" in text
    assert "| `experiment.spm-vocab-split` | boolean | false | One vocabulary per language" in text
    assert "- `experiment.vocab-size` -> `experiment.spm-vocab-size`" in text
    top_level = [
        line for line in text.splitlines() if line.startswith("| `experiment.") and line.count(".") == 1
    ]
    undocumented = [line.split("|")[1] for line in top_level if line.rstrip().endswith("|  |")]
    assert not undocumented, undocumented
