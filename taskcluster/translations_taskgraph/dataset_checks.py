"""Checks, before any task runs, that the datasets a config names exist where that can be known offline:
`local_` files by path (the import step's own rules), sacrebleu test sets and their language pair in
sacrebleu's registry, mtdata ids in mtdata's index. Other providers (opus, url, flores, news-crawl, hplt) are
only known to their servers: their import task says so if a name is wrong.

Used by the local engine (runs and `--dry-run`), `preflight-check` and the Taskcluster `train` action.
"""

import re
from pathlib import Path

from translations_taskgraph.training_config import (
    MONO_CATEGORIES,
    PARALLEL_CATEGORIES,
    ConfigError,
    parse_dataset,
)


def _langs(config: dict, category: str) -> list[str]:
    experiment = config["experiment"]
    if category == "mono-src":
        return [experiment["src"]]
    if category == "mono-trg":
        return [experiment["trg"]]
    return [experiment["src"], experiment["trg"]]


def _local(name: str, langs: list[str]) -> str | None:
    from pipeline.common.step import StepError
    from pipeline.data.providers.local import confined_local_prefix, dataset_file

    _, prefix = parse_dataset(name)
    try:
        base = confined_local_prefix(prefix)
        for lang in langs:
            dataset_file(base, lang)
    except StepError as error:
        return str(error).removeprefix("local dataset: ")
    return None


def _sacrebleu(name: str, langs: list[str]) -> str | None:
    from pipeline.common.step import StepError
    from pipeline.data.providers.sacrebleu import dataset_pair

    try:
        dataset_pair(parse_dataset(name)[1], langs)
    except StepError as error:
        return str(error)
    return None


def mtdata_ids_file() -> Path | None:
    """mtdata's index as one JSON line per entry, which mtdata writes beside its cached index (the id is
    found there in a fraction of a second; loading the index takes seconds)."""
    from mtdata import cached_index_file

    jsonl = cached_index_file.with_suffix(".jsonl")
    return jsonl if jsonl.exists() else None


def _mtdata(name: str, langs: list[str]) -> str | None:
    from pipeline.common.step import StepError
    from pipeline.data.providers.mtdata import dataset_id

    try:
        did = dataset_id(parse_dataset(name)[1])
    except StepError as error:
        return str(error)
    ids_file = mtdata_ids_file()
    if ids_file is None:
        from mtdata.index import Index  # builds and caches mtdata's index once (the jsonl with it)

        known = did in Index.get_instance()
    else:
        needle = re.compile(rb'"did": "' + re.escape(str(did).encode()) + rb'"')
        known = needle.search(ids_file.read_bytes()) is not None
    if not known:
        return f"mtdata has no dataset {str(did)!r} in its index (`mtdata list -id -l <l1>-<l2>` lists them)"
    return None


CHECKS = {"local": _local, "sacrebleu": _sacrebleu, "mtdata": _mtdata}


def dataset_problems(config: dict) -> list[str]:
    """One line per dataset of the config that cannot exist, naming its key: `datasets.test: sacrebleu_x: ...`."""
    problems = []
    for category in PARALLEL_CATEGORIES + MONO_CATEGORIES:
        for name in config["datasets"].get(category) or []:
            provider, _ = parse_dataset(name)
            check = CHECKS.get(provider)
            try:
                problem = check(name, _langs(config, category)) if check else None
            except (
                ImportError
            ):  # an environment without the provider's library (a decision task): its import task checks
                problem = None
            if problem:
                problems.append(f"datasets.{category}: {name}: {problem}")
    return problems


def check_datasets(config: dict) -> None:
    """Raises ConfigError with one line per dataset that cannot exist."""
    problems = dataset_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
