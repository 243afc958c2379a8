"""Checks, before any task runs, that the datasets a config names exist where that can be known offline:
`local_` files by path (the import step's own rules), sacrebleu test sets and their language pair in
sacrebleu's registry, mtdata ids in mtdata's index. Other providers are only known to their servers: with
DATASET_CHECKS_ONLINE=1 (a machine that reaches them), OPUS corpora are looked up in the OPUS API (the pair and
version), `url_` and news-crawl files get a HEAD request, Hugging Face datasets a listing of their revision, and
the addresses of `continuation` (pretrained models, vocabularies, corpora) a HEAD request, each with a timeout
(DATASET_CHECKS_TIMEOUT, 10 s); otherwise (and for flores and hplt) their import or download task says so if a name
is wrong.

Used by the local engine (runs and `--dry-run`), `preflight-check` and the Taskcluster `train` action.
"""

import functools
import os
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


def _head(url: str) -> str | None:
    """Why a HEAD request for `url` says it cannot be downloaded, or None (it can, or the server cannot tell)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "translations-dataset-check"})
    try:
        with urllib.request.urlopen(request, timeout=online_timeout()):
            return None
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            return f"{url} does not exist (HTTP {error.code})"
        return None  # 403, 405, 5xx: the server does not say; the import task will
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        return f"{url} cannot be reached ({getattr(error, 'reason', error)}); unset DATASET_CHECKS_ONLINE offline"


def _url(name: str, langs: list[str]) -> str | None:
    _, address = parse_dataset(name)
    return next((problem for lang in langs if (problem := _head(address.replace("[LANG]", lang)))), None)


def _news_crawl(name: str, langs: list[str]) -> str | None:
    from pipeline.common.download import mirrored
    from pipeline.data.langs import source_code
    from pipeline.data.providers.news_crawl import SERVER

    _, year = parse_dataset(name)
    (lang,) = langs
    code = source_code("news-crawl", lang)
    return _head(mirrored("news-crawl", f"{SERVER}/news-crawl/{code}/{year}.{code}.shuffled.deduped.gz"))


@functools.lru_cache(maxsize=8)
def _opus_listing(src: str, trg: str):
    from pipeline.data.find_corpus import opus

    return opus(src, trg)


def _opus(name: str, langs: list[str]) -> str | None:
    """Asks the OPUS API (find-corpus's query) whether the pair has the corpus in that version."""
    from pipeline.common.step import StepError

    if len(langs) != 2:
        return None  # monolingual OPUS files are not in the API's pair listing
    try:
        listing = _opus_listing(*langs)
    except StepError as error:
        return f"the OPUS API cannot be reached ({error}); unset DATASET_CHECKS_ONLINE offline"
    known = {d.name for d in listing.datasets}
    if name in known:
        return None
    same_corpus = sorted(k for k in known if k.split("/")[0] == name.split("/")[0])
    hint = f"; it has {', '.join(same_corpus)}" if same_corpus else ""
    return f"OPUS lists no {name.removeprefix('opus_')} for {'-'.join(langs)}{hint}"


def _hf(name: str, langs: list[str]) -> str | None:
    """The Hub's file tree of the dataset's revision (pipeline/data/providers/hf.py): a wrong repository or
    revision is a 404."""
    from pipeline.common.step import StepError
    from pipeline.data.providers.hf import local_folder, parse_name, repo_files

    provider, rest = parse_dataset(name)
    try:
        spec = parse_name(rest, 2 if provider == "hfp" else 1)
        if local_folder(spec["repo"]) is None:
            repo_files(spec["repo"], spec["revision"])
    except StepError as error:
        return str(error)
    return None


def continuation_problems(config: dict) -> list[str]:
    """With DATASET_CHECKS_ONLINE=1: each address of `continuation` (a pretrained model, a vocabulary, a corpus)
    that does not exist, naming its key. A task id is checked by its download task (Taskcluster's scopes)."""
    from pipeline.data.download_artifacts import REFERENCE_NAMES, TASK_ID_RE, file_urls, is_file_address

    continuation = config.get("continuation") or {}
    addresses = []  # (key, address, file name in a folder)
    for side in ("src", "trg"):
        if "vocab" in continuation:
            addresses.append((f"continuation.vocab.{side}", continuation["vocab"][side], "vocab.spm"))
    for role, model in (continuation.get("models") or {}).items():
        urls = model.get("urls") or [model.get("url")]
        for number, url in enumerate(urls):
            key = f"continuation.models.{role}." + (f"urls.{number}" if "urls" in model else "url")
            addresses.append((key, url, "final.model.npz"))
    for kind, corpus in (continuation.get("corpora") or {}).items():
        for side in ("src", "trg"):
            addresses.append(
                (
                    f"continuation.corpora.{kind}.{side}",
                    corpus[side],
                    f"corpus.{config['experiment'][side]}.zst",
                )
            )
    problems = []
    for key, address, name in addresses:
        if not isinstance(address, str) or TASK_ID_RE.match(address):
            continue
        # Addresses resolved as the download step resolves them (a file's own address, or a folder's file).
        problem = _head(file_urls(address, [name])[0][name])
        reference_name = REFERENCE_NAMES.get(name) if not is_file_address(address) else None
        if (
            problem
            and reference_name
            and _head(file_urls(address, [reference_name])[0][reference_name]) is None
        ):
            problem = None  # the reference's folder names the model its own way
        if problem:
            problems.append(f"{key}: {problem}")
    return problems


def online_timeout() -> float:
    return float(os.environ.get("DATASET_CHECKS_TIMEOUT") or 10)


CHECKS = {"local": _local, "sacrebleu": _sacrebleu, "mtdata": _mtdata}
# Asked of the providers' servers, with a timeout, where DATASET_CHECKS_ONLINE=1 (the machine can reach them).
ONLINE_CHECKS = {"opus": _opus, "url": _url, "news-crawl": _news_crawl, "hf": _hf, "hfp": _hf}


def checks_online() -> bool:
    return os.environ.get("DATASET_CHECKS_ONLINE") == "1"


def _without_augmentation(name: str) -> str:
    """`flores_aug-mix_devtest` -> `flores_devtest`: the augmented set exists where the set it augments does."""
    from pipeline.data.augment import split_augmentation

    provider, _, rest = name.partition("_")
    return f"{provider}_{split_augmentation(rest)[1]}"


def dataset_problems(config: dict) -> list[str]:
    """One line per dataset of the config that cannot exist, naming its key: `datasets.test: sacrebleu_x: ...`."""
    problems = []
    for category in PARALLEL_CATEGORIES + MONO_CATEGORIES:
        for name in config["datasets"].get(category) or []:
            provider, _ = parse_dataset(name)
            check = CHECKS.get(provider) or (ONLINE_CHECKS.get(provider) if checks_online() else None)
            try:
                problem = check(_without_augmentation(name), _langs(config, category)) if check else None
            except (
                ImportError
            ):  # an environment without the provider's library (a decision task): its import task checks
                problem = None
            if problem:
                problems.append(f"datasets.{category}: {name}: {problem}")
    if checks_online():
        problems += continuation_problems(config)
    return problems


def check_datasets(config: dict) -> None:
    """Raises ConfigError with one line per dataset that cannot exist."""
    problems = dataset_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
