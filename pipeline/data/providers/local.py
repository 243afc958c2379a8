"""`local_<prefix>`: files `<prefix>.<lang>[.zst|.gz|.txt]`, relative to the repository, or under
$TRANSLATIONS_DATA_ROOT. The config schema refuses other paths; the step checks again, since it can be run
by hand."""

import os
from pathlib import Path

from pipeline.common.step import StepError

KINDS = ("parallel", "mono")
DATA_ROOT_ENV = "TRANSLATIONS_DATA_ROOT"


def confined_local_prefix(prefix: str) -> Path:
    repo_root = Path(__file__).resolve().parents[3]
    roots = [repo_root] + ([Path(os.environ[DATA_ROOT_ENV]).resolve()] if os.environ.get(DATA_ROOT_ENV) else [])
    path = (repo_root / prefix).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise StepError(
            f"local dataset {prefix!r} is outside the repository"
            + (f" and {DATA_ROOT_ENV}" if len(roots) > 1 else f" (set {DATA_ROOT_ENV} to allow a data folder)")
        )
    return path


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    base = confined_local_prefix(name)
    files = {}
    for lang in langs:
        candidates = [base.with_name(f"{base.name}.{lang}{suffix}") for suffix in (".zst", ".gz", ".txt", "")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise StepError(f"local dataset: none of {', '.join(map(str, candidates))} exists")
        files[lang] = found
    return files
