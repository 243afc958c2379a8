"""`ntrex_test`: NTREX-128, the WMT19 news test set translated into 128 languages (Microsoft,
github.com/MicrosoftTranslator/NTREX, at the revision the reference pins): English is `newstest2019-src.eng.txt`,
every other language `newstest2019-ref.<code>.txt`, aligned by line. An evaluation set. Mirror: NTREX_MIRROR.
`ntrex_ntrex128`, as two reference configs write it (the reference's importer refuses it), names the same set."""

from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("parallel",)
SERVER = "https://github.com"
REVISION = "468c6b6"


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    if name not in ("test", "ntrex128"):
        raise StepError(f"NTREX has one set, ntrex_test; not {name!r}")
    files = {}
    for lang in langs:
        code = source_code("ntrex", lang)
        kind = "src" if code == "eng" else "ref"
        address = (
            f"{SERVER}/MicrosoftTranslator/NTREX/raw/{REVISION}/NTREX-128/newstest2019-{kind}.{code}.txt"
        )
        files[lang] = download(mirrored("ntrex", address), workdir / f"ntrex.{code}.txt")
    return files
