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
    pairs = sample_pairs(300) + [("ﬁle Ⅻ", "ﬁchier Ⅻ")] * 5
    write_corpus(tmp_path / "corpus" / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(tmp_path / "corpus" / "corpus.fr.zst", [t for _, t in pairs])
    pieces = {}
    for rule in ("nmt_nfkc", "identity"):
        out = tmp_path / rule
        run_step("pipeline.train.spm_vocab", ["--corpus-dir", tmp_path / "corpus", "--src", "en", "--trg", "fr",
                                              "--vocab-size", 504, "--norm-rule", rule, "--output-dir", out])  # fmt: skip
        processor = sentencepiece.SentencePieceProcessor(model_file=str(out / "vocab.spm"))
        pieces[rule] = "".join(processor.encode("ﬁle", out_type=str))
    # NFKC turns the ligature into "fi"; identity keeps it.
    assert "ﬁ" not in pieces["nmt_nfkc"] and "ﬁ" in pieces["identity"]


def test_the_config_accepts_the_built_in_rules_and_says_why_not_nfc():
    assert validate_training_config(config("nmt_nfkc_cf"))["experiment"]["spm-norm-rule"] == "nmt_nfkc_cf"
    assert validate_training_config(config(None))["experiment"]["spm-norm-rule"] is None
    with pytest.raises(
        ConfigError, match="spm-norm-rule: not supported yet: SentencePiece normalization rule nfc"
    ):
        validate_training_config(config("nfc"))
    with pytest.raises(ConfigError, match="spm-norm-rule: must be one of nmt_nfkc"):
        validate_training_config(config("nfd"))
