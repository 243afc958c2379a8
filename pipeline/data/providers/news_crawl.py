"""`news-crawl_news.<year>`: the WMT news-crawl yearly monolingual files,
`news-crawl/<lang>/news.<year>.<lang>.shuffled.deduped.gz`. Mirror: NEWSCRAWL_MIRROR."""

import re
from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("mono",)
SERVER = "https://data.statmt.org"


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    if not re.fullmatch(r"news\.\d{4}", name):
        raise StepError(
            f"news-crawl dataset {name!r} must be written news-crawl_news.<year>, e.g. news-crawl_news.2021"
        )
    (lang,) = langs
    code = source_code("news-crawl", lang)
    url = mirrored("news-crawl", f"{SERVER}/news-crawl/{code}/{name}.{code}.shuffled.deduped.gz")
    return {lang: download(url, workdir / f"{name}.{code}.gz")}
