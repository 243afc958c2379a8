"""`sacrebleu_<test set>`: a test set of sacrebleu's registry (`sacrebleu --list`), e.g. `sacrebleu_wmt14`.
The URLs, md5 checksums, archive layout and the SGML/XML/TSV processing are sacrebleu's own; the download is
ours (resume, retries, atomic, md5 checked). Mirror: SACREBLEU_MIRROR."""

import copy
import tarfile
import zipfile
from pathlib import Path

from pipeline.common.download import download, mirrored
from pipeline.common.step import StepError
from pipeline.data.langs import source_code

KINDS = ("parallel",)


def _dataset(name: str):
    from sacrebleu.dataset import DATASETS

    if name not in DATASETS:
        raise StepError(f"sacrebleu has no test set {name!r} (`sacrebleu --list` lists them)")
    return copy.copy(DATASETS[name])


def _extract(archive: Path, destination: Path) -> None:
    try:
        if archive.name.endswith((".tgz", ".tar.gz")):
            with tarfile.open(archive) as tar:
                tar.extractall(destination, filter="data")
        elif archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(destination)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise StepError(f"the sacrebleu archive {archive.name} is damaged: {error}") from None


def dataset_pair(name: str, langs: list[str]):
    """(the registry's dataset, its pair holding `langs`, whether that pair is the other way round); fails when
    sacrebleu has no such test set or pair (checked before a run too: translations_taskgraph.dataset_checks)."""
    dataset = _dataset(name)
    src, trg = (source_code("sacrebleu", lang) for lang in langs)
    if f"{src}-{trg}" in dataset.langpairs:
        return dataset, f"{src}-{trg}", False
    if f"{trg}-{src}" in dataset.langpairs:
        return dataset, f"{trg}-{src}", True
    raise StepError(
        f"sacrebleu test set {name!r} has no {src}-{trg} pair; it has {', '.join(sorted(dataset.langpairs))}"
    )


def fetch(name: str, langs: list[str], workdir: Path, options: dict) -> dict[str, Path]:
    dataset, pair, reverse = dataset_pair(name, langs)
    dataset._outdir = str(workdir / "sacrebleu")
    dataset._rawdir = str(workdir / "sacrebleu" / "raw")
    raw = Path(dataset._rawdir)
    checksums = dataset.md5 or [None] * len(dataset.data)
    for url, md5 in zip(dataset.data, checksums, strict=False):
        archive = download(mirrored("sacrebleu", url), raw / dataset._get_tarball_filename(url), md5=md5)
        _extract(archive, raw)
    try:
        source = Path(dataset.get_source_file(pair))
        reference = Path(dataset.get_reference_files(pair)[0])
    except Exception as error:
        raise StepError(f"sacrebleu could not process {name} {pair}: {error}") from None
    first, second = (reference, source) if reverse else (source, reference)
    return {langs[0]: first, langs[1]: second}
