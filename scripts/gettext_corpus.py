"""Build an English-<trg> demo corpus from the gettext catalogs installed on this machine.

The shipped en-fr corpus (data/l10n-en-fr) was made this way from a Debian system's `.mo` files; this script
makes the same kind of corpus for another target language, to check that the demo's presets and budgets
carry over to a pair that is not in the repository (issue 8):

    python scripts/gettext_corpus.py --trg de --output-dir /tmp/l10n-en-de

Pairs with fewer than three source words, identical sides, over 60 words or a context marker are dropped,
whitespace is normalized, pairs are deduplicated on the source side and shuffled with a fixed seed. Writes
gzip files in the layout of data/l10n-en-fr: `test` (1,000), `dev` (500), then the rest of `train` carved
into `parallel`, `mono-slice.en` and `mono-slice.<trg>` (4,000 lines each, disjoint), `mono.<trg>` (target
messages that are in no pair, and 1,500 that are, as in data/l10n-en-fr), and prints the counts.
"""

import argparse
import gettext
import gzip
import random
import re
from pathlib import Path

WHITESPACE = re.compile(r"\s+")


def catalogs(locale_dirs: list[Path], language: str):
    """The message catalogs ({source: target}) of the language's `.mo` files, skipping unreadable ones."""
    for locale_dir in locale_dirs:
        for mo in sorted(locale_dir.glob(f"{language}/LC_MESSAGES/*.mo")):
            try:
                with open(mo, "rb") as handle:
                    yield gettext.GNUTranslations(handle)._catalog
            except (OSError, UnicodeDecodeError):
                continue


def catalog_pairs(locale_dirs: list[Path], language: str) -> dict[str, str]:
    pairs = {}
    for catalog in catalogs(locale_dirs, language):
        for source, target in catalog.items():
            if not isinstance(source, str) or not isinstance(target, str) or "\x04" in source:
                continue
            source, target = WHITESPACE.sub(" ", source).strip(), WHITESPACE.sub(" ", target).strip()
            words = len(source.split())
            if 3 <= words <= 60 and target and source != target and source not in pairs:
                pairs[source] = target
    return pairs


def catalog_messages(locale_dirs: list[Path], language: str) -> set[str]:
    """Every translated message of the language, 3 to 60 words, whitespace normalized: monolingual text."""
    messages = set()
    for catalog in catalogs(locale_dirs, language):
        for target in catalog.values():
            if isinstance(target, str) and 3 <= len(target.split()) <= 60:
                messages.add(WHITESPACE.sub(" ", target).strip())
    return messages


def write_lines(path: Path, lines: list[str]):
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trg", required=True, help="gettext language folder, e.g. de, es, pt_BR")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--locale-dir", type=Path, action="append", help="default: /usr/share/locale")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mono-lines", type=int, default=6262, help="lines of mono.<trg>.gz")
    args = parser.parse_args()
    trg = args.trg.split("_")[0]
    pairs = sorted(catalog_pairs(args.locale_dir or [Path("/usr/share/locale")], args.trg).items())
    random.Random(args.seed).shuffle(pairs)
    if len(pairs) < 10_000:
        parser.error(f"only {len(pairs)} pairs for {args.trg}: too few for the demo config")
    splits = {"test": pairs[:1000], "dev": pairs[1000:1500], "train": pairs[1500:]}
    train = splits["train"]
    splits["parallel"] = train[:-8000]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        write_lines(args.output_dir / f"{name}.en.gz", [s for s, _ in split])
        write_lines(args.output_dir / f"{name}.{trg}.gz", [t for _, t in split])
    write_lines(args.output_dir / "mono-slice.en.gz", [s for s, _ in train[-8000:-4000]])
    write_lines(args.output_dir / f"mono-slice.{trg}.gz", [t for _, t in train[-4000:]])
    # Monolingual target text as data/l10n-en-fr/mono.fr.gz: messages the corpus does not hold, plus 1,500 of
    # the parallel corpus's targets (the demo shows the monolingual merge removing them).
    held = {t for _, t in pairs}
    unseen = sorted(catalog_messages(args.locale_dir or [Path("/usr/share/locale")], args.trg) - held)
    random.Random(args.seed).shuffle(unseen)
    mono = unseen[: args.mono_lines - 1500] + [t for _, t in splits["parallel"][:1500]]
    random.Random(args.seed).shuffle(mono)
    write_lines(args.output_dir / f"mono.{trg}.gz", mono)
    print(", ".join(f"{name}: {len(split)}" for name, split in splits.items()), "mono-slice: 4000 each side")
    print(f"mono.{trg}: {len(mono)} ({min(len(unseen), args.mono_lines - 1500)} not in the corpus)")


if __name__ == "__main__":
    main()
