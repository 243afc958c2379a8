"""SentencePiece normalization rules that its built-in set (nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf, identity)
lacks, written as the rule tables `normalization_rule_tsv` reads: `nfc`, canonical composition without NFKC's
compatibility folding (which turns ligatures, full-width forms and superscripts into other characters).

A table maps code point sequences to their replacement (hex code points, tab-separated). The NFC table holds,
from Python's own Unicode database: every character that NFC replaces (singletons such as U+212B ANGSTROM SIGN),
and every canonical decomposition of a composed character, fully or partly composed, mapped to its composition.
Combining marks in a non-canonical order are left as they are."""

import sys
import unicodedata


def _hex(text: str) -> str:
    return " ".join(f"{ord(c):X}" for c in text)


def nfc_rules() -> dict[str, str]:
    rules = {}
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        composed = unicodedata.normalize("NFC", char)
        if composed != char:
            rules[char] = composed
        decomposed = unicodedata.normalize("NFD", char)
        if len(decomposed) > 1:
            target = unicodedata.normalize("NFC", decomposed)
            # The fully decomposed form and each partly composed one (e.g. U+1EB9 + U+0302 for U+1EC7).
            for split in range(1, len(decomposed)):
                form = unicodedata.normalize("NFC", decomposed[:split]) + decomposed[split:]
                if form != target:
                    rules.setdefault(form, target)
    return rules


def rule_table(name: str) -> str:
    if name != "nfc":
        raise ValueError(f"no rule table {name!r} (known: nfc)")
    return "".join(f"{_hex(source)}\t{_hex(target)}\n" for source, target in sorted(nfc_rules().items()))
