"""Writes a training config for a language pair from what the providers offer (pipeline/data/find_corpus.py):

    task config-generator -- SRC TRG [--size small|base] [--output FILE]

The rule that picks the datasets:
- train: every OPUS corpus of the pair with at least --min-pairs sentence pairs (10,000), largest first, except
  OPUS's copies of evaluation sets (WMT-News, OPUS100, FLORES, NTREX, newstest); then the newest version of
  each of mtdata's training entries, except ELRC's (hundreds of small corpora) and those OPUS already gives.
- devtest: flores_dev where FLORES-200 has both languages, else the oldest sacrebleu set of the pair.
- test: flores_devtest, and the newest (up to 3) sacrebleu WMT sets of the pair.
- mono-src / mono-trg: the 3 newest news-crawl years of each language, and hplt_mono/v3.0 where HPLT has it.
- sizes: `small` is a single-GPU run (teacher `base`, one teacher, student `tiny`, 10M pairs, 20M/10M mono
  lines); `base` is the production shape of configs/en-fr.full.yml (teacher `big`, 2 teachers, student
  `base-memory`, no pair cap, 100M/50M mono lines).
Cleaning, bicleaner and monocleaner thresholds, Marian arguments and chunking are those of configs/en-fr.full.yml.
The config is validated with the schema every entry point uses, and its datasets checked (dataset_checks),
before it is written.
"""

import argparse
import copy
import re
import sys
from pathlib import Path

import yaml

from pipeline.common.io import atomic_path
from pipeline.common.step import StepError
from pipeline.data import find_corpus

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "configs" / "en-fr.full.yml"
SIZES = {
    "small": {
        "teacher-model": "base",
        "teacher-ensemble": 1,
        "student-model": "tiny",
        "corpus-max-sentences": 10_000_000,
        "mono-max-sentences-src": {"total": 20_000_000, "per-dataset": 10_000_000},
        "mono-max-sentences-trg": {"total": 10_000_000, "per-dataset": 5_000_000},
        "spm-vocab-size": 16000,
    },
    "base": {
        "teacher-model": "big",
        "teacher-ensemble": 2,
        "student-model": "base-memory",
        "corpus-max-sentences": None,
        "mono-max-sentences-src": {"total": 100_000_000, "per-dataset": 70_000_000},
        "mono-max-sentences-trg": {"total": 50_000_000, "per-dataset": 20_000_000},
        "spm-vocab-size": 32000,
    },
}
NEWS_CRAWL_YEARS = 3
WMT_TEST_SETS = 3


def _names(listings, provider: str, category: str) -> list[str]:
    return [
        d.name
        for listing in listings
        if listing.provider.split(" ")[0] == provider and not listing.error
        for d in listing.datasets
        if category in d.categories
    ]


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def mtdata_training(names: list[str], opus_train: list[str]) -> list[str]:
    """mtdata's training entries by the rule: the newest version of each, none of ELRC's (hundreds of small
    corpora: add the ones you want by hand) and none that OPUS already gives (same corpus name)."""
    opus_corpora = {_key(name.removeprefix("opus_").split("/")[0]) for name in opus_train}
    newest: dict[tuple[str, str], tuple[tuple[int, ...], str]] = {}
    for name in names:
        group, corpus, version = name.removeprefix("mtdata_").split("-")[:3]
        if group.lower() == "elrc" or _key(corpus) in opus_corpora:
            continue
        rank = tuple(int(part) for part in re.findall(r"\d+", version))
        if (group, corpus) not in newest or rank > newest[(group, corpus)][0]:
            newest[(group, corpus)] = (rank, name)
    return sorted(name for _, name in newest.values())


def choose_datasets(listings: list[find_corpus.Listing], min_pairs: int) -> dict:
    """The datasets section, by the rule in this module's docstring."""
    opus = next((listing for listing in listings if listing.provider == "opus" and not listing.error), None)
    train = [
        d.name
        for d in (opus.datasets if opus else [])
        if (d.lines or 0) >= min_pairs and "evaluation set" not in d.note
    ]
    train += mtdata_training(_names(listings, "mtdata", "train"), train)
    sacrebleu = sorted(
        name for name in _names(listings, "sacrebleu", "test") if "/" not in name.removeprefix("sacrebleu_")
    )
    flores = _names(listings, "flores", "test") + _names(listings, "flores", "devtest")
    devtest = ["flores_dev"] if "flores_dev" in flores else sacrebleu[:1]
    wmt = [name for name in sacrebleu if name.startswith("sacrebleu_wmt") and name not in devtest]
    test = (["flores_devtest"] if "flores_devtest" in flores else []) + wmt[-WMT_TEST_SETS:]
    datasets = {"train": train, "devtest": devtest, "test": test}
    for side in ("mono-src", "mono-trg"):
        news = sorted(set(_names(listings, "news-crawl", side)), reverse=True)[:NEWS_CRAWL_YEARS]
        datasets[side] = news + sorted(set(_names(listings, "hplt", side)))
    return datasets


def dataset_thresholds(thresholds: dict, datasets: list[str]) -> dict:
    """The template's per-dataset thresholds that name one of these datasets (its own are about en-fr)."""
    from translations_taskgraph.training_config import dataset_slug

    names = set(datasets) | {dataset_slug(name) for name in datasets}
    return {key: value for key, value in thresholds.items() if key in names}


def build_config(src: str, trg: str, size: str, listings, min_pairs: int) -> dict:
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    config = copy.deepcopy(template)
    experiment = config["experiment"]
    experiment.update({"name": f"{src}-{trg}-{size}", "src": src, "trg": trg, **SIZES[size]})
    datasets = choose_datasets(listings, min_pairs)
    empty = [category for category in ("train", "devtest", "test") if not datasets[category]]
    if empty:
        raise StepError(
            f"no dataset found for {', '.join(empty)} of {src}-{trg} by the rule (see --help); "
            "`task find-corpus -- SRC TRG` lists what the providers offer"
        )
    experiment["bicleaner"]["dataset-thresholds"] = dataset_thresholds(
        experiment["bicleaner"]["dataset-thresholds"], datasets["train"]
    )
    for side in ("src", "trg"):
        settings = experiment["monocleaner"][f"mono-{side}"]
        settings["dataset-thresholds"] = dataset_thresholds(
            settings["dataset-thresholds"], datasets[f"mono-{side}"]
        )
    config["datasets"] = datasets
    return config


def header(src: str, trg: str, size: str, min_pairs: int) -> str:
    return (
        f"# Generated by `task config-generator -- {src} {trg} --size {size} --min-pairs {min_pairs}` from what\n"
        "# the providers list (`task find-corpus`); the rule that chose the datasets is in\n"
        "# pipeline/data/config_generator.py, every other setting is configs/en-fr.full.yml's (its comments say\n"
        "# what each key does). Check the datasets, then: task run-local -- --config <this file> --dry-run\n"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src")
    parser.add_argument("trg")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument(
        "--min-pairs", type=int, default=10_000, help="OPUS corpora with fewer pairs are left out"
    )
    parser.add_argument("--output", type=Path, help="default: configs/<src>-<trg>.<size>.yml")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from translations_taskgraph.dataset_checks import check_datasets
    from translations_taskgraph.training_config import ConfigError, validate_training_config

    args = parse_args(argv)
    output = args.output or REPO / "configs" / f"{args.src}-{args.trg}.{args.size}.yml"
    listings = find_corpus.find(args.src, args.trg)
    for listing in listings:
        if listing.error:
            print(f"warning: {listing.provider}: not listed: {listing.error}", file=sys.stderr)
    try:
        config = build_config(args.src, args.trg, args.size, listings, args.min_pairs)
        validate_training_config(copy.deepcopy(config))
        check_datasets(validate_training_config(copy.deepcopy(config)))
    except (StepError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with atomic_path(output) as tmp:
        tmp.write_text(
            header(args.src, args.trg, args.size, args.min_pairs)
            + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=110),
            encoding="utf-8",
        )
    counts = ", ".join(f"{category} {len(names)}" for category, names in config["datasets"].items())
    print(f"wrote {output}: datasets {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
