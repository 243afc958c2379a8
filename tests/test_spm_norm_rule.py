"""`experiment.spm-norm-rule` (the reference's key): the vocabulary's SentencePiece normalization rule."""

import pytest
import sentencepiece

from conftest import run_step, sample_pairs, write_corpus
from translations_taskgraph.training_config import ConfigError, validate_training_config


def config(rule):
    return {
        "experiment": {"name": "n", "src": "en", "trg": "fr", "spm-vocab-size": 1000, "spm-norm-rule": rule},
        "datasets": {"train": ["local_data/l10n-en-fr/parallel"], "devtest": ["local_data/l10n-en-fr/dev"],
                     "test": ["local_data/l10n-en-fr/test"]},
    }  # fmt: skip


def test_the_rule_reaches_the_vocabulary(tmp_path):
    decomposed = "cafe\u0301 ﬁle"  # é as e + combining acute; the fi ligature
    pairs = sample_pairs(300) + [(decomposed, decomposed)] * 5
    write_corpus(tmp_path / "corpus" / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(tmp_path / "corpus" / "corpus.fr.zst", [t for _, t in pairs])
    pieces = {}
    for rule in ("nmt_nfkc", "identity", "nfc"):
        out = tmp_path / rule
        run_step("pipeline.train.spm_vocab", ["--corpus-dir", tmp_path / "corpus", "--src", "en", "--trg", "fr",
                                              "--vocab-size", 504, "--norm-rule", rule, "--output-dir", out])  # fmt: skip
        processor = sentencepiece.SentencePieceProcessor(model_file=str(out / "vocab.spm"))
        pieces[rule] = "".join(processor.encode(decomposed, out_type=str))
    # NFKC turns the ligature into "fi"; identity keeps it; NFC keeps it too, and composes é (U+00E9).
    assert "ﬁ" not in pieces["nmt_nfkc"] and "ﬁ" in pieces["identity"]
    assert "ﬁ" in pieces["nfc"] and "\u00e9" in pieces["nfc"] and "\u0301" not in pieces["nfc"]
    assert "\u0301" in pieces["identity"]
    # The table's path is not a temporary one: the same corpus gives the same vocabulary.
    again = tmp_path / "again"
    run_step("pipeline.train.spm_vocab", ["--corpus-dir", tmp_path / "corpus", "--src", "en", "--trg", "fr",
                                          "--vocab-size", 504, "--norm-rule", "nfc", "--output-dir", again])  # fmt: skip
    assert (again / "vocab.spm").read_bytes() == (tmp_path / "nfc" / "vocab.spm").read_bytes()


def test_the_nfc_table_composes_what_unicode_composes():
    import random
    import unicodedata

    from pipeline.train.normalization import nfc_rules

    rules = nfc_rules()
    assert rules["A\u030a"] == "\u00c5" and rules["\u212b"] == "\u00c5"  # Å, and the ANGSTROM SIGN
    assert rules["\u1eb9\u0302"] == "\u1ec7"  # ẹ + ̂ -> ệ, a partly composed form
    assert rules["\u1100\u1161"] == "\uac00"  # Hangul jamo -> 가
    assert "\ufb01" not in rules  # no compatibility folding
    for source, target in random.Random(1).sample(sorted(rules.items()), 500):
        assert unicodedata.normalize("NFC", source) == target


def test_the_config_accepts_the_rules_and_refuses_others():
    assert validate_training_config(config("nmt_nfkc_cf"))["experiment"]["spm-norm-rule"] == "nmt_nfkc_cf"
    assert validate_training_config(config("nfc"))["experiment"]["spm-norm-rule"] == "nfc"
    assert validate_training_config(config(None))["experiment"]["spm-norm-rule"] is None
    with pytest.raises(ConfigError, match="spm-norm-rule: must be one of nmt_nfkc"):
        validate_training_config(config("nfd"))
