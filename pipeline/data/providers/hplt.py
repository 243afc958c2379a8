"""`hplt_mono/v3.0` and `hplt_mono/v2.0`: HPLT web documents (2.0: the shards of `two/cleaned/<locale>_map.txt`,
same document format, see shard_urls). The map `three/sorted/<lang>_<Script>.map` lists the shards
`<score bucket>_<n>.jsonl.zst`; each line is a JSON document with `text` (segments separated by newlines),
`lang` (document languages, most likely first), `seg_langs` (one per segment) and `doc_scores` (the
web-docs-scorer score first, 0-10). Shards are read best bucket first; documents below the minimum document
score (config `hplt-min-doc-score`) or in another language are skipped, then each segment in the language
becomes a line, until --max-lines. Mirror: HPLT_MIRROR."""

import json
import logging
import math
import random
import re
from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.io import read_lines
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("mono",)
SERVER = "https://data.hplt-project.org"
VERSIONS = {"mono/v3.0": "three/sorted", "mono/v2.0": "two/cleaned"}
SHARD_RE = re.compile(r"/(\d+)_(\d+)\.jsonl\.zst$")
logger = logging.getLogger("import")


def shard_urls(name: str, locale: str, min_score: float, workdir: Path) -> list[str]:
    """The shards to read, in order. 3.0 sorts its shards by document-score bucket (`<score>_<n>.jsonl.zst`
    under `three/sorted/<locale>.map`): the best buckets first, none below the minimum. 2.0 lists unsorted
    shards (`two/cleaned/<locale>_map.txt`): all of them, in an order shuffled with the map's address as seed
    (as the reference reads them), the score checked per document."""
    if name == "mono/v2.0":
        address = f"{SERVER}/{VERSIONS[name]}/{locale}_map.txt"
        urls = [line.strip() for line in read_lines(download(mirrored("hplt", address), workdir / "map.txt"))]
        urls = [url for url in urls if url]
        random.Random(address).shuffle(urls)
        return urls
    shard_list = download(
        mirrored("hplt", f"{SERVER}/{VERSIONS[name]}/{locale}.map"), workdir / f"{locale}.map"
    )
    shards = []
    for line in read_lines(shard_list):
        match = SHARD_RE.search(line.strip())
        if match and int(match.group(1)) >= math.floor(min_score):
            shards.append((-int(match.group(1)), int(match.group(2)), line.strip()))
    return [url for _, _, url in sorted(shards)]


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    if name not in VERSIONS:
        raise StepError(
            f"hplt dataset {name!r} does not exist; known: {', '.join('hplt_' + v for v in VERSIONS)}"
        )
    (lang,) = langs
    locale = source_code("hplt", lang)
    min_score = float(options.get("min_doc_score") or 0.0)
    max_lines = options.get("max_lines")
    shards = shard_urls(name, locale, min_score, workdir)
    if not shards:
        raise StepError(f"HPLT lists no {locale} shard with a document score of at least {min_score}")
    output = workdir / f"hplt.{lang}.txt"
    stats = {
        "documents": 0,
        "documents_low_score": 0,
        "documents_other_language": 0,
        "segments_other_language": 0,
    }
    written = 0
    with open(output, "w", encoding="utf-8") as out:
        for url in shards:
            shard = download(mirrored("hplt", url), workdir / "shard.jsonl.zst")
            for number, line in enumerate(read_lines(shard), start=1):
                try:
                    document = json.loads(line)
                    score, doc_lang = document["doc_scores"][0], document["lang"][0]
                    segments = document["text"].split("\n")
                    seg_langs = document.get("seg_langs") or [doc_lang] * len(segments)
                except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
                    raise StepError(f"{url}: document {number} is not an HPLT document ({error!r})") from None
                stats["documents"] += 1
                if score < min_score:
                    stats["documents_low_score"] += 1
                    continue
                if doc_lang != locale:
                    stats["documents_other_language"] += 1
                    continue
                for segment, seg_lang in zip(segments, seg_langs, strict=False):
                    segment = " ".join(segment.split())
                    if seg_lang != locale:
                        stats["segments_other_language"] += 1
                    elif segment:
                        out.write(segment + "\n")
                        written += 1
                        if max_lines and written >= max_lines:
                            break
                if max_lines and written >= max_lines:
                    break
            shard.unlink()
            if max_lines and written >= max_lines:
                break
    options.setdefault("stats", {}).update(stats)
    logger.info("HPLT %s: %s, %d lines", locale, stats, written)
    return {lang: output}
