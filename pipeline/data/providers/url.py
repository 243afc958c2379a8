"""`url_<address>`: one download per language, `[LANG]` in the address replaced; .gz/.zst/plain by suffix."""

from pathlib import Path

from pipeline.common.download import download

KINDS = ("parallel", "mono")


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    files = {}
    for lang in langs:
        url = name.replace("[LANG]", lang)
        suffix = next((s for s in (".zst", ".gz") if url.split("?")[0].endswith(s)), ".txt")
        files[lang] = download(url, workdir / f"download.{lang}{suffix}")
    return files
