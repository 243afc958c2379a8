"""`mtdata_<Group>-<name>-<version>-<l1>-<l2>`: a dataset of mtdata's index (`mtdata list -id`), e.g.
`mtdata_Statmt-news_commentary-16-eng-fra`. The entry (URL, archive members, format) comes from mtdata's own
index and the records from mtdata's own parsers (tsv, tmx, sgm, wmt xml, ...); the download is ours (resume,
retries, atomic). Mirror: MTDATA_MIRROR, served as <mirror>/<original host>/<original path>."""

import logging
from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError

KINDS = ("parallel",)
logger = logging.getLogger("import")


def dataset_id(name: str):
    """mtdata's DatasetId of `name` (checked before a run too: translations_taskgraph.dataset_checks)."""
    from mtdata.entry import DatasetId

    try:
        return DatasetId.parse(name)
    except Exception as error:
        raise StepError(
            f"mtdata dataset {name!r} is not an mtdata id <Group>-<name>-<version>-<l1>-<l2> ({error})"
        ) from None


def _entry(name: str):
    from mtdata.index import Index

    did = dataset_id(name)
    index = Index.get_instance()
    if did not in index:
        raise StepError(
            f"mtdata has no dataset {name!r} in its index (`mtdata list -id -l <l1>-<l2>` lists them)"
        )
    return index[did]


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    from mtdata.cache import Cache
    from mtdata.iso.bcp47 import bcp47
    from mtdata.parser import Parser

    entry = _entry(name)
    if entry.in_ext == "opus_xces":
        raise StepError(f"mtdata dataset {name!r} is an OPUS XCES corpus: use the opus_ provider for it")
    first, second = entry.did.langs
    wanted = [bcp47(lang) for lang in langs]
    if first.is_compatible(wanted[0]) and second.is_compatible(wanted[1]):
        swap = False
    elif first.is_compatible(wanted[1]) and second.is_compatible(wanted[0]):
        swap = True
    else:
        raise StepError(f"mtdata dataset {name!r} is {first}-{second}, not {langs[0]}-{langs[1]}")

    urls = list(entry.url) if isinstance(entry.url, list | tuple) else [entry.url]
    downloads = []
    for number, url in enumerate(urls):
        filename = entry.filename if len(urls) == 1 else f"{number}.{url.rsplit('/', 1)[-1]}"
        downloads.append(download(mirrored("mtdata", url, keep_host=True), workdir / "mtdata" / filename))
    paths = downloads
    if entry.is_archive:
        try:
            paths = Cache(workdir).get_local_in_paths(downloads[0], entry)
        except Exception as error:
            raise StepError(f"mtdata dataset {name!r}: cannot open the archive: {error}") from None
    files = {lang: workdir / f"mtdata.{lang}.txt" for lang in langs}
    count = 0
    try:
        parser = Parser(paths if len(paths) > 1 else paths[0], ext=entry.in_ext or None, ent=entry)
        with (
            open(files[langs[0]], "w", encoding="utf-8") as src,
            open(files[langs[1]], "w", encoding="utf-8") as trg,
        ):
            for record in parser.read_segs(show_pbar=False):
                if len(record) < 2:
                    continue
                one, two = record[0], record[1]
                if swap:
                    one, two = two, one
                src.write(" ".join((one or "").split()) + "\n")
                trg.write(" ".join((two or "").split()) + "\n")
                count += 1
    except StepError:
        raise
    except Exception as error:
        raise StepError(
            f"mtdata dataset {name!r}: its parser failed after {count} records: {error}"
        ) from None
    logger.info("mtdata parsed %d records of %s", count, entry.did)
    return files
