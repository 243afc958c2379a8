"""`hfp_<repo>:<subset>:<split>:<src field>:<trg field>[@<revision>]` (parallel) and
`hf_<repo>:<subset>:<split>:<text field>[@<revision>]` (monolingual): a dataset of the Hugging Face Hub, as the
reference's configs name them (e.g. hfp_ZJaume/SciELO-GL:en-gl:train:frase_fonte:frase_galego@83fc003).

The reference loads them with the `datasets` library; this provider reads the Hub's files itself, with two of its
documented endpoints (the file tree of a revision, `/api/datasets/<repo>/tree/<revision>`, and each file,
`/datasets/<repo>/resolve/<revision>/<path>`), because `datasets` needs the whole Hub API and brings pandas and
a process pool with it. Which files hold a subset's split follows the Hub's own rules: the `configs:` section of
the dataset card (README.md), else the file names (`<subset>/...`, `data/<split>-*`, `<split>.*`, ...). Formats:
Parquet (pyarrow), JSON Lines, JSON, CSV/TSV (optionally .gz or .zst),
and plain text (one record a line, field `text`). A `translation` column (`{"en": ..., "gl": ...}`) is read as
the reference does. Records with an empty side are skipped, line breaks inside a record become spaces.
Mirror: HF_ENDPOINT (the Hub's own variable) or HF_MIRROR. A `<repo>` that is a folder of this repository (or
under TRANSLATIONS_DATA_ROOT), as `datasets` reads a local folder, is read from there (the revision is ignored).
"""

import csv
import fnmatch
import gzip
import io
import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from pipeline.common.download import download
from pipeline.common.step import StepError

KINDS = ("parallel", "mono")
SERVER = "https://huggingface.co"
NAME_RE = re.compile(
    r"^(?P<repo>(?:[\w.-]+/)*[\w.-]+):(?P<subset>[\w.-]+):(?P<split>[\w.-]+):(?P<fields>[\w.:-]+?)(@(?P<rev>[0-9a-fA-F]{6,40}))?$"
)
DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".txt")
COMPRESSIONS = ("", ".gz", ".zst")


def parse_name(name: str, fields: int) -> dict:
    """The name's parts: repo, subset, split, fields (1 or 2), revision."""
    match = NAME_RE.match(name)
    parts = match["fields"].split(":") if match else []
    if not match or len(parts) != fields:
        shape = "<repo>:<subset>:<split>:" + (
            ":".join(["<src field>", "<trg field>"] if fields == 2 else ["<text field>"])
        )
        raise StepError(f"a Hugging Face dataset is written {shape}[@<revision>], got {name!r}")
    return {"repo": match["repo"], "subset": match["subset"], "split": match["split"], "fields": parts,
            "revision": match["rev"] or "main"}  # fmt: skip


def endpoint() -> str:
    return (os.environ.get("HF_MIRROR") or os.environ.get("HF_ENDPOINT") or SERVER).rstrip("/")


def _get_json(url: str):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (an http(s) endpoint)
            return json.load(response), response.headers.get("Link", "")
    except urllib.error.HTTPError as error:
        raise StepError(f"{url}: HTTP {error.code} (is the dataset or its revision wrong?)") from None
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
        raise StepError(f"{url}: {error}") from None


def local_folder(repo: str) -> Path | None:
    """The local folder a `<repo>` names, if it is one (tests/data/corpus_samples/hfp_dataset)."""
    roots = [Path(__file__).resolve().parents[3]] + [
        Path(r) for r in [os.environ.get("TRANSLATIONS_DATA_ROOT")] if r
    ]
    for root in roots:
        folder = (root / repo).resolve()
        if folder.is_dir() and folder.is_relative_to(root.resolve()):
            return folder
    return None


def repo_files(repo: str, revision: str) -> list[str]:
    """Every file path of the dataset repository at `revision` (the tree API, following its pages)."""
    folder = local_folder(repo)
    if folder is not None:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    quoted = urllib.parse.quote(revision, safe="")
    url = f"{endpoint()}/api/datasets/{repo}/tree/{quoted}?recursive=true"
    files = []
    while url:
        entries, link = _get_json(url)
        if not isinstance(entries, list):
            raise StepError(f"{url}: not a file tree")
        files += [e["path"] for e in entries if isinstance(e, dict) and e.get("type") == "file"]
        following = re.search(r'<([^>]+)>;\s*rel="next"', link)
        url = following.group(1) if following else None
    return files


def fetch_file(repo: str, revision: str, path: str, destination: Path) -> Path:
    folder = local_folder(repo)
    if folder is not None:
        return folder / path
    return download(file_url(repo, revision, path), destination)


def file_url(repo: str, revision: str, path: str) -> str:
    quoted = urllib.parse.quote(revision, safe="")
    return f"{endpoint()}/datasets/{repo}/resolve/{quoted}/{urllib.parse.quote(path)}"


def _card_configs(repo: str, revision: str, files: list[str], workdir: Path) -> list[dict]:
    if "README.md" not in files:
        return []
    card = fetch_file(repo, revision, "README.md", workdir / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", card, re.S)
    try:
        header = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return []
    configs = header.get("configs") if isinstance(header, dict) else None
    return configs if isinstance(configs, list) else []


def _patterns_of(data_files, split: str) -> list[str]:
    """The card's data_files for `split`: a string or list (the train split), or [{split, path}]."""
    if isinstance(data_files, str):
        return [data_files] if split == "train" else []
    patterns = []
    for entry in data_files or []:
        if isinstance(entry, str):
            patterns += [entry] if split == "train" else []
        elif isinstance(entry, dict) and entry.get("split") == split:
            path = entry.get("path")
            patterns += [path] if isinstance(path, str) else list(path or [])
    return patterns


def _is_data(path: str) -> bool:
    return any(path.endswith(s + c) for s in DATA_SUFFIXES for c in COMPRESSIONS)


def _named_for_split(path: str, split: str) -> bool:
    """The Hub's default layout: `<split>.jsonl`, `data/<split>-00000-of-00001.parquet`, `<split>/...`."""
    parts = path.split("/")
    return split in parts[:-1] or re.match(rf"^{re.escape(split)}([-._]|$)", parts[-1]) is not None


def data_files(repo: str, subset: str, split: str, revision: str, workdir: Path) -> list[str]:
    files = repo_files(repo, revision)
    configs = _card_configs(repo, revision, files, workdir)
    names = [c.get("config_name", "default") for c in configs if isinstance(c, dict)]
    if configs:
        chosen = next(
            (c for c in configs if isinstance(c, dict) and c.get("config_name", "default") == subset), None
        )
        if chosen is None:
            raise StepError(f"{repo} has no subset {subset!r} (its card names {', '.join(names)})")
        patterns = _patterns_of(chosen.get("data_files"), split)
        if not patterns:
            raise StepError(f"{repo}: subset {subset!r} has no split {split!r}")
        found = [f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)]
    else:
        candidates = [f for f in files if _is_data(f)]
        if subset != "default":
            candidates = [f for f in candidates if f.split("/")[0] == subset]
        found = [
            f for f in candidates if _named_for_split(f.split("/", 1)[1] if subset != "default" else f, split)
        ]
    found = sorted(f for f in found if _is_data(f))
    if not found:
        raise StepError(f"{repo}@{revision}: no data file for subset {subset!r}, split {split!r}")
    return found


def _text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8")
    if path.name.endswith(".zst"):
        import zstandard

        return io.TextIOWrapper(zstandard.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def records(path: Path) -> Iterator[dict]:
    name = re.sub(r"\.(gz|zst)$", "", path.name)
    if name.endswith(".parquet"):
        import pyarrow.parquet

        table = pyarrow.parquet.ParquetFile(path)
        for batch in table.iter_batches(batch_size=10_000):
            yield from batch.to_pylist()
        return
    with _text(path) as text:
        if name.endswith(".jsonl") or name.endswith(".json"):
            first = text.read(1)
            text.seek(0)
            if name.endswith(".json") and first == "[":
                yield from json.load(text)
                return
            for number, line in enumerate(text, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as error:
                        raise StepError(f"{path.name} line {number}: not JSON ({error})") from None
        elif name.endswith(".csv") or name.endswith(".tsv"):
            yield from csv.DictReader(text, delimiter="\t" if name.endswith(".tsv") else ",")
        else:
            for line in text:
                yield {"text": line.rstrip("\n")}


def _raw(record: dict, field: str, where: str) -> str:
    if "translation" in record and isinstance(record["translation"], dict):
        record = record["translation"]
    if field not in record:
        raise StepError(f"{where}: the records have no field {field!r} (they have {', '.join(record)})")
    value = record[field]
    return str(value) if value is not None else ""


def _value(record: dict, field: str, where: str) -> str:
    return " ".join(_raw(record, field, where).split())


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    spec = parse_name(name, len(langs))
    repo, revision = spec["repo"], spec["revision"]
    paths = data_files(repo, spec["subset"], spec["split"], revision, workdir)
    outputs = {lang: workdir / f"hf.{lang}.txt" for lang in langs}
    handles = {lang: open(path, "w", encoding="utf-8") for lang, path in outputs.items()}  # noqa: SIM115 (closed in finally)
    written = skipped = 0
    try:
        for number, path in enumerate(paths):
            local = fetch_file(repo, revision, path, workdir / f"part{number}{''.join(Path(path).suffixes)}")
            for record in records(local):
                if len(langs) == 1:
                    # A monolingual record is a document: one line of it per line, as the reference reads it.
                    values = [
                        [
                            " ".join(line.split())
                            for line in _raw(record, spec["fields"][0], path).splitlines()
                        ]
                    ]
                    values = [[line for line in values[0] if line]]
                else:
                    values = [[_value(record, field, f"{repo}/{path}")] for field in spec["fields"]]
                    if not all(v[0] for v in values):
                        skipped += 1
                        continue
                for row in zip(*values, strict=True):
                    for lang, value in zip(langs, row, strict=True):
                        handles[lang].write(value + "\n")
                    written += 1
                if options.get("max_lines") and written >= options["max_lines"]:
                    break
            if local.is_relative_to(workdir):
                local.unlink()
            if options.get("max_lines") and written >= options["max_lines"]:
                break
    finally:
        for handle in handles.values():
            handle.close()
    options.setdefault("stats", {}).update({"hf_files": paths, "hf_records_empty": skipped})
    return outputs
