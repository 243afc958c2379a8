"""Lists the datasets every provider offers for a language pair, with sizes where the provider says them, and
the dataset names to put in a config:

    task find-corpus -- en fr [--providers opus,mtdata,...] [--json FILE]

Sources, each its provider's own catalog: the OPUS API (`opusapi/?source=..&target=..&preprocessing=moses&
version=latest`; pairs and bytes), mtdata's index (shipped inside the mtdata package, read offline; OPUS's own
entries are left to the OPUS API), sacrebleu's registry (offline), FLORES-200 (dev 997 and devtest 1,012
sentences for every language it has), the news-crawl directory listing of each language (bytes per year), HPLT
3.0's shard map of each language (shards), and the Hugging Face datasets API (datasets tagged with both
languages, by downloads; size categories from their tags; the pipeline has no Hugging Face importer yet, so
they are listed to look at, not as config names).

Every request goes to the provider's mirror variable when it is set (OPUS_API_MIRROR, NEWSCRAWL_MIRROR,
HPLT_MIRROR, HF_ENDPOINT), with a timeout (FIND_CORPUS_TIMEOUT, 20 s); a provider that cannot be reached is
reported as such and the others are still listed.
"""

import argparse
import html
import json
import logging
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.common.download import mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code
from pipeline.data.providers import hplt, news_crawl

OPUS_API = "https://opus.nlpl.eu/opusapi/"
HF_ENDPOINT = "https://huggingface.co"
FLORES_SPLITS = {"dev": 997, "devtest": 1012}
# Test sets that OPUS also distributes: in a training list they would leak into the evaluation.
OPUS_EVALUATION_CORPORA = ("WMT-News", "OPUS100", "flores", "NTREX", "newstest")
# mtdata entries whose name holds one of these are evaluation sets (newstest, tedtalks_dev, ntrex, wmt24pp, ...).
MTDATA_EVALUATION_WORDS = ("test", "dev", "ntrex", "flores", "wmt24pp")
# Hugging Face size_categories tags, from small to large.
HF_SIZES = ["n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "1B<n<10B"]


@dataclass
class Dataset:
    name: str  # the config's dataset name (provider_name), or a Hugging Face dataset id
    categories: list[str]  # train, devtest, test, mono-src, mono-trg
    lines: int | None = None
    bytes: int | None = None
    note: str = ""


@dataclass
class Listing:
    provider: str
    source: str  # where the list comes from
    datasets: list[Dataset] = field(default_factory=list)
    error: str | None = None


def timeout() -> float:
    return float(os.environ.get("FIND_CORPUS_TIMEOUT") or 20)


def http_get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "translations-find-corpus"})
    try:
        with urllib.request.urlopen(request, timeout=timeout()) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StepError(f"{url}: {reason}") from None


def opus(src: str, trg: str) -> Listing:
    codes = sorted([source_code("opus", src), source_code("opus", trg)])
    query = f"?source={codes[0]}&target={codes[1]}&preprocessing=moses&version=latest"
    url = mirrored("opus-api", OPUS_API) + query
    listing = Listing("opus", url)
    try:
        corpora = json.loads(http_get(url)).get("corpora", [])
    except (json.JSONDecodeError, AttributeError) as error:
        raise StepError(f"{url}: not the OPUS API's JSON ({error})") from None
    for corpus in corpora:
        if not corpus.get("alignment_pairs"):
            continue
        evaluation = any(name.lower() in corpus["corpus"].lower() for name in OPUS_EVALUATION_CORPORA)
        listing.datasets.append(
            Dataset(
                f"opus_{corpus['corpus']}/{corpus['version']}",
                ["train"],
                int(corpus["alignment_pairs"]),
                int(corpus["size"]) * 1024 if corpus.get("size") else None,
                "an evaluation set: keep it out of train" if evaluation else "",
            )
        )
    listing.datasets.sort(key=lambda d: -(d.lines or 0))
    return listing


def mtdata(src: str, trg: str) -> Listing:
    from mtdata.entry import BCP47Tag
    from mtdata.index import get_entries

    logging.getLogger().setLevel(logging.WARNING)  # mtdata's import sets the root logger to INFO

    listing = Listing("mtdata", "mtdata's index (in the mtdata package)")
    langs = (BCP47Tag(source_code("mtdata", src)), BCP47Tag(source_code("mtdata", trg)))
    for entry in get_entries(langs, None, None, True):
        did = entry.did
        if did.group.lower() == "opus":  # the OPUS API lists them, with sizes
            continue
        test_like = any(word in did.name.lower() for word in MTDATA_EVALUATION_WORDS)
        listing.datasets.append(
            Dataset(f"mtdata_{did}", ["devtest", "test"] if test_like else ["train"], note=entry.url or "")
        )
    listing.datasets.sort(key=lambda d: d.name)
    return listing


def sacrebleu_sets(src: str, trg: str) -> Listing:
    import sacrebleu

    listing = Listing("sacrebleu", "sacrebleu's registry (in the sacrebleu package)")
    pairs = {f"{src}-{trg}", f"{trg}-{src}"}
    for name, dataset in sacrebleu.DATASETS.items():
        if pairs & set(dataset.langpairs):
            listing.datasets.append(
                Dataset(f"sacrebleu_{name}", ["devtest", "test"], note=dataset.description)
            )
    return listing


def flores(src: str, trg: str) -> Listing:
    listing = Listing("flores", "FLORES-200 (every language it has: dev 997, devtest 1,012 sentences)")
    try:
        source_code("flores", src), source_code("flores", trg)
    except StepError as error:
        listing.error = str(error)
        return listing
    listing.datasets = [
        Dataset(f"flores_{split}", ["devtest" if split == "dev" else "test"], lines)
        for split, lines in FLORES_SPLITS.items()
    ]
    return listing


NEWS_CRAWL_ROW = re.compile(
    r'href="news\.(\d{4})\.(\w+)\.shuffled\.deduped\.gz".*?<td[^>]*>\s*([\d.]+)\s*([KMG]?)\s*</td>', re.S
)
UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}


def news_crawl_years(lang: str, category: str) -> Listing:
    code = source_code("news-crawl", lang)
    url = mirrored("news-crawl", f"{news_crawl.SERVER}/news-crawl/{code}/")
    listing = Listing(f"news-crawl ({lang})", url)
    page = http_get(url).decode("utf-8", errors="replace")
    for year, _, number, unit in NEWS_CRAWL_ROW.findall(page):
        size = int(float(number) * UNITS[unit])
        listing.datasets.append(Dataset(f"news-crawl_news.{year}", [category], bytes=size))
    listing.datasets.sort(key=lambda d: d.name, reverse=True)
    return listing


def hplt_shards(lang: str, category: str) -> Listing:
    locale = source_code("hplt", lang)
    url = mirrored("hplt", f"{hplt.SERVER}/{hplt.VERSIONS['mono/v3.0']}/{locale}.map")
    listing = Listing(f"hplt ({lang})", url)
    shards = [line for line in http_get(url).decode("utf-8", errors="replace").split() if line.strip()]
    scores = sorted({int(m.group(1)) for line in shards if (m := hplt.SHARD_RE.search(line))}, reverse=True)
    if shards:
        listing.datasets.append(
            Dataset(
                "hplt_mono/v3.0",
                [category],
                note=f"{len(shards)} shards, document scores {scores[-1]} to {scores[0]}" if scores else "",
            )
        )
    return listing


def hugging_face(src: str, trg: str, limit: int = 30) -> Listing:
    from huggingface_hub import HfApi

    endpoint = os.environ.get("HF_ENDPOINT") or HF_ENDPOINT
    listing = Listing("hugging face", f"{endpoint}/api/datasets (language:{src}, language:{trg})")
    try:
        found = list(
            HfApi(endpoint=endpoint).list_datasets(language=[src, trg], sort="downloads", limit=limit)
        )
    except Exception as error:  # huggingface_hub raises requests', httpx' or its own errors by version
        raise StepError(f"{listing.source}: {error}") from None
    for info in found:
        tags = info.tags or []
        if "task_categories:automatic-speech-recognition" in tags:
            continue
        size = next(
            (t.removeprefix("size_categories:") for t in tags if t.startswith("size_categories:")), ""
        )
        listing.datasets.append(
            Dataset(
                info.id,
                ["train"],
                note=f"size {size or 'unknown'}, {info.downloads or 0:,} downloads; no importer yet (look, copy)",
            )
        )
    listing.datasets.sort(key=lambda d: -HF_SIZES.index(s) if (s := _hf_size(d.note)) in HF_SIZES else 1)
    return listing


def _hf_size(note: str) -> str:
    return note.removeprefix("size ").split(",")[0]


PROVIDERS = ("opus", "mtdata", "sacrebleu", "flores", "news-crawl", "hplt", "huggingface")


def find(src: str, trg: str, providers=PROVIDERS) -> list[Listing]:
    """Every provider's listing for the pair; a provider that fails is a listing with its error."""
    calls = {
        "opus": [lambda: opus(src, trg)],
        "mtdata": [lambda: mtdata(src, trg)],
        "sacrebleu": [lambda: sacrebleu_sets(src, trg)],
        "flores": [lambda: flores(src, trg)],
        "news-crawl": [lambda: news_crawl_years(src, "mono-src"), lambda: news_crawl_years(trg, "mono-trg")],
        "hplt": [lambda: hplt_shards(src, "mono-src"), lambda: hplt_shards(trg, "mono-trg")],
        "huggingface": [lambda: hugging_face(src, trg)],
    }
    listings = []
    for provider in providers:
        for call in calls[provider]:
            try:
                listings.append(call())
            except StepError as error:
                listings.append(Listing(provider, "", error=str(error)))
    return listings


def human_bytes(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def render(listings: list[Listing]) -> str:
    out = []
    for listing in listings:
        out.append(
            f"\n## {listing.provider}  ({listing.source})" if listing.source else f"\n## {listing.provider}"
        )
        if listing.error:
            out.append(f"   not listed: {listing.error}")
            continue
        if not listing.datasets:
            out.append("   (nothing for this pair)")
            continue
        width = min(48, max(len(d.name) for d in listing.datasets))  # ELRC's names run to 90 characters
        for d in listing.datasets:
            lines = f"{d.lines:,} lines" if d.lines else ""
            cells = [
                d.name.ljust(width),
                ",".join(d.categories).ljust(14),
                lines.rjust(18),
                human_bytes(d.bytes).rjust(9),
            ]
            out.append("   " + "  ".join(cells) + (f"  {html.unescape(d.note)}" if d.note else ""))
    return "\n".join(out).lstrip("\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", help="source language (ISO 639-1 where one exists)")
    parser.add_argument("trg", help="target language")
    parser.add_argument(
        "--providers", default=",".join(PROVIDERS), help=f"comma-separated, of {', '.join(PROVIDERS)}"
    )
    parser.add_argument("--json", type=Path, help="also write the listings as JSON to this file")
    args = parser.parse_args(argv)
    args.providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in args.providers if p not in PROVIDERS]
    if unknown:
        parser.error(f"--providers: unknown {', '.join(unknown)}; known: {', '.join(PROVIDERS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        source_code("mtdata", args.src), source_code("mtdata", args.trg)  # an ISO 639-3 code is known
    except StepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    listings = find(args.src, args.trg, args.providers)
    print(render(listings))
    if args.json:
        args.json.write_text(json.dumps([asdict(listing) for listing in listings], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
