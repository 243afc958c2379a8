"""Language codes with a script subtag (`zh_hant`, `sr_latn`, as the reference's configs write them): accepted by
the schema, spelled per source as each source names the language and script, identified by py3langid under the
language, and read by the script-aware steps (augmentation) in either casing."""

import pytest
import yaml

from conftest import REPO_ROOT
from pipeline.data.langs import normalized, source_code
from translations_taskgraph.training_config import ConfigError, validate_training_config


def tiny(**experiment):
    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["experiment"].update(experiment)
    return config


def test_the_schema_accepts_a_script_subtag_in_either_casing():
    assert validate_training_config(tiny(trg="zh_hant"))["experiment"]["trg"] == "zh_hant"
    assert validate_training_config(tiny(trg="zh_Hant"))["experiment"]["trg"] == "zh_Hant"
    for bad in ("zh_ha", "zh-hant", "zh_HANT", "zh_hant_tw"):
        with pytest.raises(ConfigError, match="experiment.trg: not an ISO 639 language code"):
            validate_training_config(tiny(trg=bad))


def test_each_source_spells_the_language_and_its_script():
    assert normalized("zh_hant") == "zh_Hant" and normalized("en") == "en"
    assert source_code("opus", "zh_hant") == "zh_TW"
    assert source_code("flores", "zh_hant") == "zho_Hant"
    assert source_code("hplt", "zh_hant") == "cmn_Hant"
    assert source_code("ntrex", "zh_hant") == "zho-TW"
    assert source_code("flores", "sr_latn") == "srp_Latn"
    assert source_code("mtdata", "sr_latn") == "srp"
    assert source_code("local", "zh_hant") == "zh_hant"  # local files are named as the config writes it


def test_language_id_classifies_under_the_language():
    from pipeline.clean.filters import langid

    keep = langid({}, "en", "zh_hant")
    batch = [
        ("We could not open this file, please try again later.", "我們無法開啟這個檔案，請稍後再試一次。"),
        (
            "We could not open this file, please try again later.",
            "Le fichier n'a pas pu être ouvert, réessayez.",
        ),
    ]
    assert keep(batch) == [batch[0], None]


def test_augmentation_reads_the_script_in_either_casing():
    from pipeline.data.augment import _script

    assert _script("zh_hant") == _script("zh_Hant") == "Hant"
    assert _script("sr_latn") == "Latn" and _script("en") == "Latn"
