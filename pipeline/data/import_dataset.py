"""Import one dataset into `<output-dir>/corpus.<lang>.zst` (one per language) plus `stats.json`.

Providers (the dataset name is written provider_name):
  local_<prefix>   files <prefix>.<lang>[.gz|.zst|.txt], relative to the working directory or absolute
  url_<address>    an http(s) address with [LANG] where the language code goes; .gz/.zst/plain by suffix
  opus_<corpus>/<version>  the moses zip of the OPUS corpus (OPUS_URL overrides the server, for mirrors/tests)

Downloads are retried, checked against Content-Length, and written atomically.
"""

import argparse
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from pipeline.common.io import atomic_path, read_lines, read_pairs, write_json, write_lines, write_pairs
from pipeline.common.step import StepError, already_done, run_step

logger = logging.getLogger("import")

OPUS_URL = "https://object.pouta.csc.fi"
DOWNLOAD_ATTEMPTS = 3


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--dataset", required=True, help="provider_name, e.g. local_data/x/train, opus_Books/v1")
    parser.add_argument("--langs", required=True, help="comma-separated language codes: 'en,fr' (parallel) or 'en' (mono)")
    parser.add_argument("--output-dir", required=True, type=Path)


def download(url: str, destination: Path, timeout: float = 60.0) -> None:
    """Downloads `url` to `destination`, retrying transient failures; refuses truncated bodies."""
    last_error = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(destination) as tmp:
                expected = response.headers.get("Content-Length")
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out, length=1 << 20)
                size = tmp.stat().st_size
                if expected is not None and size != int(expected):
                    raise OSError(f"truncated download: got {size} of {expected} bytes")
            logger.info("downloaded %s (%d bytes)", url, destination.stat().st_size)
            return
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500:
                raise StepError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
            last_error = f"HTTP {error.code} {error.reason}"
        except (OSError, urllib.error.URLError) as error:
            last_error = str(getattr(error, "reason", error))
        logger.warning("download attempt %d/%d of %s failed: %s", attempt, DOWNLOAD_ATTEMPTS, url, last_error)
        if attempt < DOWNLOAD_ATTEMPTS:
            time.sleep(min(2**attempt, 10) if "PYTEST_CURRENT_TEST" not in os.environ else 0.1)
    raise StepError(f"cannot download {url} after {DOWNLOAD_ATTEMPTS} attempts: {last_error}")


DATA_ROOT_ENV = "TRANSLATIONS_DATA_ROOT"


def confined_local_prefix(prefix: str) -> Path:
    """The config schema refuses local paths outside the repository (or $TRANSLATIONS_DATA_ROOT); the step
    checks again, since it can be run by hand."""
    repo_root = Path(__file__).resolve().parent.parent.parent
    roots = [repo_root] + ([Path(os.environ[DATA_ROOT_ENV]).resolve()] if os.environ.get(DATA_ROOT_ENV) else [])
    path = (repo_root / prefix).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise StepError(
            f"local dataset {prefix!r} is outside the repository"
            + (f" and {DATA_ROOT_ENV}" if len(roots) > 1 else f" (set {DATA_ROOT_ENV} to allow a data folder)")
        )
    return path


def local_files(prefix: str, langs: list[str]) -> dict[str, Path]:
    base = confined_local_prefix(prefix)
    files = {}
    for lang in langs:
        candidates = [base.with_name(f"{base.name}.{lang}{suffix}") for suffix in (".zst", ".gz", ".txt", "")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise StepError(f"local dataset: none of {', '.join(map(str, candidates))} exists")
        files[lang] = found
    return files


def url_files(address: str, langs: list[str], workdir: Path) -> dict[str, Path]:
    files = {}
    for lang in langs:
        url = address.replace("[LANG]", lang)
        suffix = next((s for s in (".zst", ".gz") if url.split("?")[0].endswith(s)), ".txt")
        destination = workdir / f"download.{lang}{suffix}"
        download(url, destination)
        files[lang] = destination
    return files


def opus_files(name: str, langs: list[str], workdir: Path) -> dict[str, Path]:
    corpus, _, version = name.partition("/")
    if not version:
        raise StepError(f"opus dataset {name!r} must be written opus_<corpus>/<version>, e.g. opus_Books/v1")
    if len(langs) != 2:
        raise StepError("opus datasets are parallel: give two languages")
    pair = "-".join(sorted(langs))
    base = os.environ.get("OPUS_URL", OPUS_URL).rstrip("/")
    archive = workdir / "corpus.zip"
    download(f"{base}/OPUS-{corpus}/{version}/moses/{pair}.txt.zip", archive)
    files = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            for lang in langs:
                member = f"{corpus}.{pair}.{lang}"
                if member not in zipped.namelist():
                    raise StepError(f"OPUS archive for {name} has no {member}; it holds {zipped.namelist()}")
                files[lang] = workdir / f"opus.{lang}.txt"
                with zipped.open(member) as source, open(files[lang], "wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile:
        raise StepError(f"the OPUS download for {name} is not a valid zip archive") from None
    return files


def main(args):
    langs = [lang for lang in args.langs.split(",") if lang]
    if not 1 <= len(langs) <= 2:
        raise StepError(f"--langs takes one or two language codes, got {args.langs!r}")
    outputs = [f"corpus.{lang}.zst" for lang in langs] + ["stats.json"]
    if already_done(args.output_dir, outputs):
        return
    provider, _, name = args.dataset.partition("_")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output_dir, prefix=".import-") as tmp:
        workdir = Path(tmp)
        if provider == "local":
            files = local_files(name, langs)
        elif provider == "url":
            files = url_files(name, langs, workdir)
        elif provider == "opus":
            files = opus_files(name, langs, workdir)
        else:
            raise StepError(f"unknown dataset provider {provider!r} in {args.dataset!r}; known: local, url, opus")

        if len(langs) == 2:
            count = write_pairs(
                args.output_dir / outputs[0],
                args.output_dir / outputs[1],
                read_pairs(files[langs[0]], files[langs[1]]),
            )
        else:
            with write_lines(args.output_dir / outputs[0]) as out:
                for line in read_lines(files[langs[0]]):
                    out.write(line)
            count = out.count
    if count == 0:
        for name in outputs[:-1]:
            (args.output_dir / name).unlink()
        raise StepError(f"dataset {args.dataset} is empty")
    write_json(args.output_dir / "stats.json", {"dataset": args.dataset, "langs": langs, "lines": count})
    logger.info("imported %d lines of %s", count, args.dataset)


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
