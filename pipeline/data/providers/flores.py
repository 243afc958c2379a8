"""`flores_dev`, `flores_devtest`: FLORES-200, from its tarball `flores200_dataset.tar.gz` holding
`flores200_dataset/<split>/<lang>_<Script>.<split>`. Mirror: FLORES_MIRROR."""

import shutil
import tarfile
from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("parallel",)
URL = "https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz"
SPLITS = ("dev", "devtest")


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    if name not in SPLITS:
        raise StepError(
            f"flores dataset {name!r} does not exist; FLORES-200 has flores_dev and flores_devtest"
        )
    archive = download(mirrored("flores", URL), workdir / "flores200_dataset.tar.gz")
    wanted = {f"flores200_dataset/{name}/{source_code('flores', lang)}.{name}": lang for lang in langs}
    files = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                lang = wanted.get(member.name)
                if lang is None or not member.isfile():
                    continue
                files[lang] = workdir / f"flores.{lang}.txt"
                with tar.extractfile(member) as source, open(files[lang], "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise StepError(f"the FLORES-200 archive is damaged: {error}") from None
    missing = sorted(set(wanted) - {m for m, lang in wanted.items() if lang in files})
    if missing:
        raise StepError(
            f"the FLORES-200 archive has no {', '.join(missing)} (is the language in FLORES-200?)"
        )
    return files
