"""`local_<prefix>`: files `<prefix>.<lang>[.zst|.gz|.txt]`, relative to the repository, or under
$TRANSLATIONS_DATA_ROOT. The config schema refuses other paths; the step checks again, since it can be run
by hand, and resolves symbolic links, so that a link cannot bring in a file from outside those folders."""

import os
from pathlib import Path

from pipeline.common.step import StepError

KINDS = ("parallel", "mono")
DATA_ROOT_ENV = "TRANSLATIONS_DATA_ROOT"
SUFFIXES = (".zst", ".gz", ".txt", "")


def _allowed_roots() -> list[Path]:
    repo_root = Path(__file__).resolve().parents[3]
    return [repo_root] + (
        [Path(os.environ[DATA_ROOT_ENV]).resolve()] if os.environ.get(DATA_ROOT_ENV) else []
    )


def _outside_message(what: str, roots: list[Path]) -> str:
    return f"{what} is outside the repository" + (
        f" and {DATA_ROOT_ENV}" if len(roots) > 1 else f" (set {DATA_ROOT_ENV} to allow a data folder)"
    )


def confined_local_prefix(prefix: str) -> Path:
    roots = _allowed_roots()
    path = (roots[0] / prefix).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise StepError(_outside_message(f"local dataset {prefix!r}", roots))
    return path


def dataset_file(base: Path, lang: str) -> Path:
    """The one file of `base` for `lang`. Two candidates (`x.en.gz` beside `x.en`) are refused, not ranked: one
    is usually a stale copy of the other. A symbolic link must end inside the allowed folders."""
    candidates = [base.with_name(f"{base.name}.{lang}{suffix}") for suffix in SUFFIXES]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise StepError(f"local dataset: none of {', '.join(map(str, candidates))} exists")
    if len(found) > 1:
        raise StepError(
            f"local dataset: {' and '.join(map(str, found))} all exist and it is not clear which to read; "
            "remove or rename all but one"
        )
    roots = _allowed_roots()
    target = found[0].resolve()
    if not any(target.is_relative_to(root) for root in roots):
        raise StepError(_outside_message(f"local dataset file {found[0]} links to {target}, which", roots))
    return found[0]


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    base = confined_local_prefix(name)
    return {lang: dataset_file(base, lang) for lang in langs}
