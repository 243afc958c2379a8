"""Cleaning filters in OpusCleaner's filter-config format, run by our own batched runner.

A filter config is OpusCleaner's JSON (`{"version": 1, "filters": [{"filter": NAME, "parameters": {...},
"language": null}, ...]}`); filters run in order and a pair is dropped by the first that rejects it. Filter
names and parameter names are OpusCleaner's; the implementations are ours, because the `opuscleaner` package
pins fastapi 0.78 / pydantic 1, which clashes with this project's lock (pydantic 2, for snakemake's sqlmodel), and because
its filters are separate processes joined by pipes, while ours run batched in one process per core.

Filters work on batches of (source, target) pairs and return, per pair, either the (possibly rewritten) pair
or None. Where our semantics differ from OpusCleaner's script, the docstring says so.

Layered filter configs: `choose_config` picks the most specific of
  <dir>/<src>-<trg>/<dataset>.filters.json   (per dataset; <dataset> as its task slug, e.g. opus_UNPC_v1_0)
  <dir>/<src>-<trg>/default.filters.json     (per language pair)
  <dir>/default.filters.json                 (the built-in default)
with `<src>`/`<trg>` in parameter values replaced by the run's languages.
"""

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.common.step import StepError

Pair = tuple[str, str]
Batch = list[Pair]
BatchFilter = Callable[[Batch], list[Pair | None]]

_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"(?:(?P<sign>(?:(?<=\s)|^)[-+])|\b)0*(?P<value>\d+(?:[.,:]\d+)*)\b")
_URL = re.compile(r"https?://\S+|www\.\S+")


def _per_pair(function: Callable[[str, str], Pair | None]) -> BatchFilter:
    """A filter that may rewrite a pair: function(src, trg) gives the pair to keep or None."""

    def apply(batch):
        return [function(src, trg) for src, trg in batch]

    apply.per_pair = function  # lets run_batch fuse consecutive per-pair filters into one loop
    return apply


def _predicate(keeps: Callable[[str, str], bool]) -> BatchFilter:
    """A filter that keeps or drops a pair as it is: keeps(src, trg)."""

    def apply(batch):
        return [(src, trg) if keeps(src, trg) else None for src, trg in batch]

    apply.keeps = keeps  # fused into run_batch's loop without building a pair per filter
    return apply


def remove_empty_lines(params, src_lang, trg_lang) -> BatchFilter:
    # s.strip() is empty exactly when s is empty or all whitespace; isspace() stops at the first other character
    return _predicate(lambda s, t: bool(s and t) and not s.isspace() and not t.isspace())


def normalize_whitespace(params, src_lang, trg_lang) -> BatchFilter:
    """COLLAPSE: runs of whitespace become one space; always strips both ends. (On monolingual data, where
    a pair is (line, line), the one rewritten line stands for both.)"""
    collapse = bool(params.get("COLLAPSE", True))

    def rewrite(text):
        # Already normal, most lines: no whitespace but single ASCII spaces (isprintable() is False for every
        # other whitespace character), none at the ends.
        if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
            return text
        return " ".join(text.split()) if collapse else text.strip()  # str.split: C speed, Unicode whitespace

    def check(s, t):
        if s is t:
            s = t = rewrite(s)
            return s, t
        return rewrite(s), rewrite(t)

    return _per_pair(check)


def identical(params, src_lang, trg_lang) -> BatchFilter:
    """Ours (OpusCleaner's src_trg_ratio has it as an option): drops untranslated copies, case-insensitively."""
    return _predicate(lambda s, t: s != t and s.casefold() != t.casefold())


def max_length(params, src_lang, trg_lang) -> BatchFilter:
    """Both sides hold MINLENGTH..MAXLENGTH words (whitespace-separated tokens)."""
    low, high = float(params.get("MINLENGTH", 1)), float(params.get("MAXLENGTH", 150))

    def keeps(s, t):
        ns, nt = s.count(" ") + 1, t.count(" ") + 1  # whitespace is normalized by then
        return low <= ns <= high and low <= nt <= high

    return _predicate(keeps)


def max_word_length(params, src_lang, trg_lang) -> BatchFilter:
    limit = int(params.get("MAXWORDLENGTH", 150))
    # a word longer than the limit is a run of that many characters other than whitespace (\S: not str.isspace)
    long_word = re.compile(rf"\S{{{max(limit, 0) + 1},}}")

    def keeps(s, t):
        # no word can be longer than its line
        return (len(s) <= limit or not long_word.search(s)) and (len(t) <= limit or not long_word.search(t))

    return _predicate(keeps)


def src_trg_ratio(params, src_lang, trg_lang) -> BatchFilter:
    """The shorter side has at least RATIO of the longer side's words (LOG: of log10(words + 1))."""
    ratio, use_log = float(params.get("RATIO", 0.6)), bool(params.get("LOG", False))

    def keeps(s, t):
        short, long = sorted((s.count(" ") + 1, t.count(" ") + 1))
        value = math.log10(short + 1) / math.log10(long + 1) if use_log else short / long
        return value >= ratio

    return _predicate(keeps)


def char_ratio(params, src_lang, trg_lang) -> BatchFilter:
    """Ours: neither side is more than RATIO times longer than the other, in characters."""
    ratio = float(params.get("RATIO", 3.0))

    def keeps(s, t):
        ns, nt = len(s), len(t)
        return (ns if ns > nt else nt) <= ratio * (nt if ns > nt else ns)

    return _predicate(keeps)


def alpha_ratio(params, src_lang, trg_lang) -> BatchFilter:
    """At least SRCWORDRAT/TRGWORDRAT of the words start with a letter and at least SRCALPHARAT/TRGALPHARAT
    of the non-space characters are letters. Differs from OpusCleaner: any Unicode letter counts (OpusCleaner
    counts the letters of the language's alphabet)."""
    word_src, word_trg = float(params.get("SRCWORDRAT", 0.4)), float(params.get("TRGWORDRAT", 0.4))
    alpha_src, alpha_trg = float(params.get("SRCALPHARAT", 0.5)), float(params.get("TRGALPHARAT", 0.5))

    def good(text, word_ratio, alpha_ratio):
        words = text.split()
        if not words:
            return False
        if sum(1 for w in words if w[0].isalpha()) < word_ratio * len(words):
            return False
        chars = len(text) - text.count(" ")
        return sum(1 for c in text if c.isalpha()) >= alpha_ratio * chars

    return _predicate(lambda s, t: good(s, word_src, alpha_src) and good(t, word_trg, alpha_trg))


def _numbers(text: str) -> set[str]:
    if not any(c.isdigit() for c in text):
        return set()
    return {(m["sign"] or "") + re.sub(r"\D+", "*", m["value"]) for m in _NUMBER.finditer(text)}


def num_mismatch(params, src_lang, trg_lang) -> BatchFilter:
    """(shared numbers + 1) / (unshared numbers + 1) is at least RATIO."""
    ratio = float(params.get("RATIO", 1.0))

    def keeps(s, t):
        left, right = _numbers(s), _numbers(t)
        return not ((left or right) and (len(left & right) + 1) / (len(left ^ right) + 1) < ratio)

    return _predicate(keeps)


def url_mismatch(params, src_lang, trg_lang) -> BatchFilter:
    """The two sides hold the same URLs."""
    return _predicate(lambda s, t: set(_URL.findall(s)) == set(_URL.findall(t)))


# py3langid labels that count as the language: it takes much Traditional Chinese for Cantonese.
LANGUAGE_ID_LABELS = {"zh": ["zh", "yue"]}


def langid(params, src_lang, trg_lang) -> BatchFilter:
    """Drops a pair when py3langid is at least THRESHOLD (ours; default 0.5) sure that a side is in another
    language than SRC_LANG/TRG_LANG. Batched (pipeline/clean/langid.py)."""
    from pipeline.clean.langid import BatchLanguageID

    identifier = BatchLanguageID()
    # py3langid knows languages, not scripts: zh_hant is classified as zh.
    langs = tuple(
        lang.partition("_")[0]
        for lang in (params.get("SRC_LANG") or src_lang, params.get("TRG_LANG") or trg_lang)
    )
    for lang in langs:
        identifier.require(lang)
    threshold = float(params.get("THRESHOLD", 0.5))
    expected = [
        [identifier.index(label) for label in LANGUAGE_ID_LABELS.get(lang, [lang]) if identifier.knows(label)]
        for lang in langs
    ]

    def other_language(texts, side):
        found, probability = identifier.classify_indices(texts)
        return ~np.isin(found, expected[side]) & (probability >= threshold)

    def run(batch):
        if langs[0] == langs[1] and all(s is t for s, t in batch):  # monolingual data: classify once
            wrong = other_language([s for s, _ in batch], 0)
        else:
            wrong = other_language([s for s, _ in batch], 0) | other_language([t for _, t in batch], 1)
        return [None if w else pair for pair, w in zip(batch, wrong.tolist(), strict=True)]

    return run


FILTERS: dict[str, Callable] = {
    "remove_empty_lines": remove_empty_lines,
    "normalize_whitespace": normalize_whitespace,
    "identical": identical,
    "max_length": max_length,
    "max_word_length": max_word_length,
    "src_trg_ratio": src_trg_ratio,
    "char_ratio": char_ratio,
    "alpha_ratio": alpha_ratio,
    "num_mismatch": num_mismatch,
    "url_mismatch": url_mismatch,
    "langid": langid,
}


def load_config(path: Path, src: str, trg: str) -> list[dict]:
    """The filters of an OpusCleaner filter config, validated, with <src>/<trg> filled in."""
    try:
        config = json.loads(path.read_text(encoding="utf-8").replace("<src>", src).replace("<trg>", trg))
    except (OSError, ValueError) as error:
        raise StepError(f"filter config {path} cannot be read: {error}") from None
    steps = config.get("filters") if isinstance(config, dict) else None
    if not isinstance(steps, list):
        raise StepError(f"filter config {path} has no 'filters' list (OpusCleaner's format)")
    for number, step in enumerate(steps):
        name = step.get("filter") if isinstance(step, dict) else None
        if name not in FILTERS:
            raise StepError(
                f"filter config {path}: filter {number} ({name!r}) is not one this pipeline runs; "
                f"known: {', '.join(FILTERS)}"
            )
        if not isinstance(step.get("parameters", {}), dict):
            raise StepError(
                f"filter config {path}: filter {number} ({name}) has parameters that are not a mapping"
            )
    return steps


def choose_config(directory: Path, src: str, trg: str, dataset_slug: str | None) -> Path:
    candidates = []
    if dataset_slug:
        candidates.append(directory / f"{src}-{trg}" / f"{dataset_slug}.filters.json")
    candidates += [directory / f"{src}-{trg}" / "default.filters.json", directory / "default.filters.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise StepError(f"no filter config: none of {', '.join(map(str, candidates))} exists")


def build(
    steps: list[dict], src: str, trg: str, overrides: dict | None = None
) -> list[tuple[str, BatchFilter]]:
    """(name, batch filter) per step; `overrides` maps a filter name to parameters that replace the config's."""
    built = []
    for step in steps:
        params = dict(step.get("parameters") or {})
        params.update((overrides or {}).get(step["filter"], {}))
        built.append((step["filter"], FILTERS[step["filter"]](params, src, trg)))
    return built


def _groups(filters):
    """Consecutive per-pair filters and predicates as one group (a fused loop), each batch filter as its own."""
    groups = []
    for name, apply in filters:
        keeps, rewrite = getattr(apply, "keeps", None), getattr(apply, "per_pair", None)
        if keeps is None and rewrite is None:
            groups.append(("batch", (name, apply)))
            continue
        if not groups or groups[-1][0] != "pairs":
            groups.append(("pairs", []))
        groups[-1][1].append((name, keeps, rewrite))
    return groups


def run_batch(filters: list[tuple[str, BatchFilter]], batch: Batch) -> tuple[Batch, dict[str, int]]:
    """The pairs of `batch` that pass every filter, and how many each filter removed (the first that rejects
    a pair counts it)."""
    removed = {}
    for kind, group in _groups(filters):
        if not batch:
            break
        if kind == "batch":
            name, apply = group
            kept = [pair for pair in apply(batch) if pair is not None]
            if len(kept) != len(batch):
                removed[name] = removed.get(name, 0) + len(batch) - len(kept)
        else:
            kept = []
            for pair in batch:
                src, trg = pair
                for name, keeps, rewrite in group:
                    if keeps is not None:
                        if keeps(src, trg):
                            continue
                    else:
                        pair = rewrite(src, trg)
                        if pair is not None:
                            src, trg = pair
                            continue
                    removed[name] = removed.get(name, 0) + 1
                    break
                else:
                    kept.append(pair)
        batch = kept
    return batch, removed
