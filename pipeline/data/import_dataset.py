"""Import one dataset into `<output-dir>/corpus.<lang>.zst` (one per language) plus `stats.json`.

The dataset name is written provider_name; each provider is a module in pipeline/data/providers/:
  local_<prefix>                 files <prefix>.<lang>[.gz|.zst|.txt] (parallel or mono)
  url_<address>                  http(s) address with [LANG] where the language code goes (parallel or mono)
  opus_<corpus>/<version>        OPUS moses zip (parallel) or mono/<lang>.txt.gz (mono)
  mtdata_<mtdata id>             a dataset of mtdata's index, parsed by mtdata (parallel)
  sacrebleu_<test set>           a test set of sacrebleu's registry (parallel)
  flores_dev, flores_devtest     FLORES-200 (parallel)
  ntrex_test                     NTREX-128 (parallel)
  tmx_pontoon                    Mozilla Pontoon's translation memory, one side English (parallel)
  news-crawl_news.<year>         WMT news-crawl (mono)
  hplt_mono/v3.0                 HPLT documents above --hplt-min-doc-score, split into segments (mono)
  hfp_<repo>:<subset>:<split>:<src field>:<trg field>[@<rev>]   a Hugging Face Hub dataset (parallel)
  hf_<repo>:<subset>:<split>:<text field>[@<rev>]               a Hugging Face Hub dataset (mono)
An evaluation set may be augmented: <provider>_aug-<kind>_<name> (flores_aug-mix_devtest; pipeline/data/augment.py).

Downloads resume, retry and are checked (pipeline/common/download.py); they are kept in `<output-dir>/.work/`
until the import succeeded, so a killed task resumes its download. Every line is checked (UTF-8, both sides
present); a NUL byte is refused; CR and tabs inside a line become spaces.
"""

import argparse
import contextlib
import logging
import shutil
from pathlib import Path

from pipeline.common.io import read_lines, read_pairs, write_json, write_lines
from pipeline.common.step import StepError, already_done, run_step, threads
from pipeline.data.augment import augment_pairs, split_augmentation
from pipeline.data.providers import (
    flores,
    hf,
    hplt,
    local,
    mtdata,
    news_crawl,
    ntrex,
    opus,
    sacrebleu,
    tmx,
    url,
)

logger = logging.getLogger("import")

PROVIDERS = [
    "local",
    "url",
    "opus",
    "mtdata",
    "sacrebleu",
    "flores",
    "ntrex",
    "tmx",
    "news-crawl",
    "hplt",
    "hf",
    "hfp",
]


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument(
        "--dataset", required=True, help="provider_name, e.g. local_data/x/train, opus_Books/v1"
    )
    parser.add_argument(
        "--langs", required=True, help="comma-separated language codes: 'en,fr' (parallel) or 'en' (mono)"
    )
    parser.add_argument("--max-lines", type=int, default=None, help="mono: stop after this many lines")
    parser.add_argument("--hplt-min-doc-score", type=float, default=0.0)
    parser.add_argument("--output-dir", required=True, type=Path)


# Imported here, not by name at run time, so that a task's cache digest covers every provider's code.
MODULES = {
    "local": local, "url": url, "opus": opus, "mtdata": mtdata, "sacrebleu": sacrebleu, "flores": flores,
    "ntrex": ntrex, "tmx": tmx, "news-crawl": news_crawl, "hplt": hplt, "hf": hf, "hfp": hf,
}  # fmt: skip


def provider_module(provider: str):
    if provider not in MODULES:
        raise StepError(f"unknown dataset provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return MODULES[provider]


def _clean(line: str) -> str:
    if "\t" in line or "\r" in line:
        line = line.replace("\t", " ").replace("\r", " ")
    return line


def main(args):
    langs = [lang for lang in args.langs.split(",") if lang]
    if not 1 <= len(langs) <= 2:
        raise StepError(f"--langs takes one or two language codes, got {args.langs!r}")
    outputs = [f"corpus.{lang}.zst" for lang in langs] + ["stats.json"]
    if already_done(args.output_dir, outputs):
        return
    provider, _, name = args.dataset.partition("_")
    module = provider_module(provider)
    try:
        augmentation, name = split_augmentation(name)
    except ValueError as error:
        raise StepError(f"dataset {args.dataset}: {error}") from None
    kind = "parallel" if len(langs) == 2 else "mono"
    if kind not in module.KINDS:
        raise StepError(f"dataset {args.dataset}: the {provider} provider has no {kind} datasets")
    if augmentation and kind != "parallel":
        raise StepError(f"dataset {args.dataset}: augmented datasets are parallel (evaluation sets)")
    workdir = args.output_dir / ".work"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        count, stats = _import(args, module, name, langs, outputs, workdir)
        if augmentation:
            count, stats = _augment(args, augmentation, langs, outputs, workdir, stats)
    except BaseException:
        _keep_only_partial_downloads(workdir)
        raise
    write_json(args.output_dir / "stats.json", stats)
    shutil.rmtree(workdir, ignore_errors=True)
    logger.info("imported %d lines of %s", count, args.dataset)


def _augment(args, augmentation: str, langs: list[str], outputs: list[str], workdir: Path, stats: dict):
    """Replaces the imported pairs with their augmented version (pipeline/data/augment.py)."""
    pairs = list(read_pairs(args.output_dir / outputs[0], args.output_dir / outputs[1]))
    augmented, dropped = augment_pairs(pairs, augmentation, langs[0], workdir / "augment", threads())
    with (
        write_lines(args.output_dir / outputs[0]) as src_out,
        write_lines(args.output_dir / outputs[1]) as trg_out,
    ):
        for src, trg in augmented:
            src_out.write(_clean(src))
            trg_out.write(_clean(trg))
    if dropped:
        logger.warning(
            "aug-%s: OpusTrainer's modifier dropped %d of %d pairs", augmentation, dropped, len(pairs)
        )
    logger.info("aug-%s: %d pairs from the %d imported", augmentation, len(augmented), len(pairs))
    stats = {
        **stats,
        "lines": len(augmented),
        "augmentation": f"aug-{augmentation}",
        "lines_imported": len(pairs),
    }
    return len(augmented), {**stats, "augmentation_dropped": dropped}


def _keep_only_partial_downloads(workdir: Path) -> None:
    """After a failure: what a retry can resume from (`.*.part`) stays, nothing else does."""
    for path in sorted(workdir.rglob("*"), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()
        elif not path.name.endswith(".part"):
            path.unlink()
    with contextlib.suppress(OSError):
        workdir.rmdir()


def _import(args, module, name, langs, outputs, workdir):
    options = {"max_lines": args.max_lines, "min_doc_score": args.hplt_min_doc_score}
    kind = "parallel" if len(langs) == 2 else "mono"
    try:
        files = module.fetch(name, langs, workdir, options)
    except StepError as error:
        raise StepError(f"dataset {args.dataset}: {error}") from None

    if kind == "parallel":
        with (
            write_lines(args.output_dir / outputs[0]) as src_out,
            write_lines(args.output_dir / outputs[1]) as trg_out,
        ):
            for src, trg in read_pairs(files[langs[0]], files[langs[1]]):
                src_out.write(_clean(src))
                trg_out.write(_clean(trg))
            count = src_out.count
            if count == 0:
                raise StepError(f"dataset {args.dataset} is empty")
    else:
        with write_lines(args.output_dir / outputs[0]) as out:
            for line in read_lines(files[langs[0]]):
                out.write(_clean(line))
                if args.max_lines and out.count >= args.max_lines:
                    break
            count = out.count
            if count == 0:
                raise StepError(f"dataset {args.dataset} is empty")
    return count, {"dataset": args.dataset, "langs": langs, "lines": count, **options.get("stats", {})}


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
