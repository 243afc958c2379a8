"""`opus_<corpus>/<version>`: OPUS. Parallel: the moses zip of the pair, `OPUS-<corpus>/<version>/moses/<l1>-<l2>.txt.zip`
holding `<corpus>.<l1>-<l2>.<lang>` (languages sorted). Mono: `OPUS-<corpus>/<version>/mono/<lang>.txt.gz`.
Mirror: OPUS_MIRROR (or OPUS_URL)."""

import shutil
import zipfile
from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("parallel", "mono")
SERVER = "https://object.pouta.csc.fi"


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    corpus, _, version = name.partition("/")
    if not version or "/" in version:
        raise StepError(f"opus dataset {name!r} must be written opus_<corpus>/<version>, e.g. opus_Books/v1")
    codes = {lang: source_code("opus", lang) for lang in langs}
    if len(langs) == 1:
        code = codes[langs[0]]
        url = mirrored("opus", f"{SERVER}/OPUS-{corpus}/{version}/mono/{code}.txt.gz")
        return {langs[0]: download(url, workdir / f"opus.{code}.txt.gz")}
    pair = "-".join(sorted(codes.values()))
    archive = download(
        mirrored("opus", f"{SERVER}/OPUS-{corpus}/{version}/moses/{pair}.txt.zip"), workdir / "corpus.zip"
    )
    files = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            for lang, code in codes.items():
                member = f"{corpus}.{pair}.{code}"
                if member not in names:
                    raise StepError(f"OPUS archive for {name} has no {member}; it holds {names}")
                files[lang] = workdir / f"opus.{lang}.txt"
                with zipped.open(member) as source, open(files[lang], "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise StepError(f"the OPUS download for {name} is not a valid zip archive: {error}") from None
    return files
