"""`tmx_pontoon`: the translation memory of Mozilla's Pontoon (every project's strings translated from English),
`pontoon.mozilla.org/translation-memory/<locale>.all-projects.tmx`, read with mtdata's TMX reader. One side of
the pair must be English; the locale is Pontoon's spelling of the other (sv-SE, zh-TW, ...). Mirror: TMX_MIRROR."""

from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("parallel",)
SERVER = "https://pontoon.mozilla.org"


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    if name != "pontoon":
        raise StepError(f"the tmx provider knows one translation memory, tmx_pontoon; not {name!r}")
    if "en" not in langs:
        raise StepError(f"Pontoon translates from English: one of {langs} must be en")
    (other,) = [lang for lang in langs if lang != "en"]
    locale = source_code("pontoon", other)
    tmx = download(
        mirrored("tmx", f"{SERVER}/translation-memory/{locale}.all-projects.tmx"), workdir / "memory.tmx"
    )
    from mtdata.tmx import read_tmx

    files = {lang: workdir / f"tmx.{lang}.txt" for lang in langs}
    codes = [source_code("pontoon", lang).split("-")[0] if lang != "en" else "en" for lang in langs]
    try:
        with (
            open(files[langs[0]], "w", encoding="utf-8") as first,
            open(files[langs[1]], "w", encoding="utf-8") as second,
        ):
            for one, two in read_tmx(tmx, langs=tuple(codes)):
                first.write(one + "\n")
                second.write(two + "\n")
    except Exception as error:  # mtdata raises bare Exceptions for empty or foreign memories
        raise StepError(f"{tmx.name} from Pontoon ({locale}): {error}") from None
    return files
