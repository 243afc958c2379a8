"""Language codes per source, in one place.

The config writes ISO 639-1 codes where one exists (`en`, `fr`, `nb`, `zh`), else ISO 639-3. Sources spell
them differently: OPUS and sacrebleu use ISO 639-1 (OPUS with region/script suffixes such as `zh_TW`),
mtdata takes ISO 639-3, FLORES-200 and HPLT use ISO 639-3 plus the script (`eng_Latn`, `zho_Hant`, HPLT
`cmn_Hans`), news-crawl uses ISO 639-1. A code may carry a script (`zh_Hant`, `sr_Cyrl`).
"""

from pipeline.common.step import StepError

# ISO 639-1 -> (ISO 639-3, default script).
LANGUAGES = {
    "af": ("afr", "Latn"), "ar": ("arb", "Arab"), "az": ("aze", "Latn"), "be": ("bel", "Cyrl"),
    "bg": ("bul", "Cyrl"), "bn": ("ben", "Beng"), "bs": ("bos", "Latn"), "ca": ("cat", "Latn"),
    "cs": ("ces", "Latn"), "cy": ("cym", "Latn"), "da": ("dan", "Latn"), "de": ("deu", "Latn"),
    "el": ("ell", "Grek"), "en": ("eng", "Latn"), "es": ("spa", "Latn"), "et": ("est", "Latn"),
    "eu": ("eus", "Latn"), "fa": ("pes", "Arab"), "fi": ("fin", "Latn"), "fr": ("fra", "Latn"),
    "ga": ("gle", "Latn"), "gl": ("glg", "Latn"), "gu": ("guj", "Gujr"), "he": ("heb", "Hebr"),
    "hi": ("hin", "Deva"), "hr": ("hrv", "Latn"), "hu": ("hun", "Latn"), "hy": ("hye", "Armn"),
    "id": ("ind", "Latn"), "is": ("isl", "Latn"), "it": ("ita", "Latn"), "ja": ("jpn", "Jpan"),
    "ka": ("kat", "Geor"), "kk": ("kaz", "Cyrl"), "ko": ("kor", "Hang"), "lt": ("lit", "Latn"),
    "lv": ("lvs", "Latn"), "mk": ("mkd", "Cyrl"), "ml": ("mal", "Mlym"), "ms": ("zsm", "Latn"),
    "mt": ("mlt", "Latn"), "nb": ("nob", "Latn"), "nl": ("nld", "Latn"), "nn": ("nno", "Latn"),
    "no": ("nob", "Latn"), "pl": ("pol", "Latn"), "pt": ("por", "Latn"), "ro": ("ron", "Latn"),
    "ru": ("rus", "Cyrl"), "sk": ("slk", "Latn"), "sl": ("slv", "Latn"), "sq": ("als", "Latn"),
    "sr": ("srp", "Cyrl"), "sv": ("swe", "Latn"), "sw": ("swh", "Latn"), "ta": ("tam", "Taml"),
    "te": ("tel", "Telu"), "th": ("tha", "Thai"), "tr": ("tur", "Latn"), "uk": ("ukr", "Cyrl"),
    "ur": ("urd", "Arab"), "vi": ("vie", "Latn"), "zh": ("zho", "Hans"),
}  # fmt: skip

# Where a source's spelling is not the rule above.
EXCEPTIONS = {
    # mtdata needs the macrolanguage codes its index uses.
    ("mtdata", "ar"): "ara", ("mtdata", "fa"): "fas", ("mtdata", "lv"): "lav", ("mtdata", "ms"): "msa",
    ("mtdata", "sq"): "sqi", ("mtdata", "sw"): "swa", ("mtdata", "no"): "nor",
    # OPUS spells Norwegian Bokmal `nb` in newer corpora and `no` in older ones; traditional Chinese `zh_TW`.
    ("opus", "zh_Hant"): "zh_TW", ("opus", "zh_Hans"): "zh_CN",
    # HPLT files Chinese under Mandarin.
    ("hplt", "zh"): "cmn_Hans", ("hplt", "zh_Hans"): "cmn_Hans", ("hplt", "zh_Hant"): "cmn_Hant",
    ("news-crawl", "nb"): "no",
    # NTREX-128 files name the macrolanguage, or add a script or region.
    ("ntrex", "fa"): "fas", ("ntrex", "ms"): "msa", ("ntrex", "lv"): "lav", ("ntrex", "sq"): "sqi",
    ("ntrex", "sw"): "swa", ("ntrex", "az"): "aze-Latn", ("ntrex", "sr"): "srp-Cyrl", ("ntrex", "zh"): "zho-CN",
    ("ntrex", "zh_Hans"): "zho-CN", ("ntrex", "zh_Hant"): "zho-TW",
    # Pontoon's locales where it names a region (its other locales are the config's codes).
    ("pontoon", "sv"): "sv-SE", ("pontoon", "gu"): "gu-IN", ("pontoon", "pa"): "pa-IN", ("pontoon", "nn"): "nn-NO",
    ("pontoon", "nb"): "nb-NO", ("pontoon", "no"): "nb-NO", ("pontoon", "ne"): "ne-NP", ("pontoon", "hi"): "hi-IN",
    ("pontoon", "hy"): "hy-AM", ("pontoon", "ga"): "ga-IE", ("pontoon", "bn"): "bn-IN", ("pontoon", "zh"): "zh-CN",
    ("pontoon", "zh_Hans"): "zh-CN", ("pontoon", "zh_Hant"): "zh-TW",
}  # fmt: skip


def _split(code: str) -> tuple[str, str | None]:
    base, _, script = code.partition("_")
    return base, script.title() or None


def normalized(code: str) -> str:
    """`zh_hant` (as the reference writes it) -> `zh_Hant`; `en` -> `en`."""
    base, script = _split(code)
    return f"{base}_{script}" if script else base


def _iso3(base: str) -> str:
    if len(base) == 3:
        return base
    if base not in LANGUAGES:
        raise StepError(f"language {base!r} has no ISO 639-3 mapping in pipeline/data/langs.py; add it there")
    return LANGUAGES[base][0]


def _with_script(base: str, script: str | None) -> str:
    if script is None:
        if base not in LANGUAGES:
            raise StepError(
                f"language {base!r} has no default script in pipeline/data/langs.py; write it as {base}_Xxxx"
            )
        script = LANGUAGES[base][1]
    return f"{_iso3(base)}_{script}"


def source_code(source: str, code: str) -> str:
    """The spelling of language `code` (as written in the config) that `source` uses."""
    if source in ("url", "local"):
        return code  # files named as the config writes the code
    code = normalized(code)
    if (source, code) in EXCEPTIONS:
        return EXCEPTIONS[(source, code)]
    base, script = _split(code)
    if source in ("opus", "sacrebleu", "news-crawl", "monocleaner", "url", "local", "pontoon"):
        return code if source in ("url", "local") else base
    if source in ("mtdata", "ntrex"):
        return _iso3(base)
    if source in ("flores", "hplt"):
        return _with_script(base, script)
    raise StepError(f"no language-code mapping for source {source!r}")
