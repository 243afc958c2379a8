"""Augmented evaluation sets, `<provider>_aug-<kind>_<name>` (issue 21): imported, then changed by OpusTrainer's
modifiers, deterministic; inline noise placed with eflomal's alignments of the set itself."""

import json
import re

import pytest

from conftest import run_step, step_env
from pipeline.data.augment import augment_pairs, split_augmentation
from translations_taskgraph.training_config import ConfigError, validate_training_config

PAIRS = [
    ("The file could not be opened.", "Le fichier n'a pas pu être ouvert."),
    ("Open the settings", "Ouvrir les paramètres"),
    ("Save", "Enregistrer"),
    ("Delete the selected messages?", "Supprimer les messages sélectionnés ?"),
    ("Cancel", "Annuler"),
    ("Print this page", "Imprimer cette page"),
] * 20


def test_names_split_into_kind_and_dataset():
    assert split_augmentation("aug-mix_devtest") == ("mix", "devtest")
    assert split_augmentation("aug-mix-cjk_wmt19") == ("mix", "wmt19")
    assert split_augmentation("aug-mix-nocase_dev") == ("mix-nocase", "dev")
    assert split_augmentation("aug-inline-noise_Books/v1") == ("inline-noise", "Books/v1")
    assert split_augmentation("devtest") == (None, "devtest")
    with pytest.raises(ValueError, match="unknown augmentation aug-sparkle"):
        split_augmentation("aug-sparkle_devtest")


@pytest.mark.parametrize("kind", ["upper", "title", "punct", "typos"])
def test_each_kind_changes_every_pair_one_for_one(kind, tmp_path):
    augmented, dropped = augment_pairs(PAIRS, kind, "en", tmp_path)
    assert dropped == 0 and len(augmented) == len(PAIRS)
    if kind == "upper":
        assert augmented[0] == ("THE FILE COULD NOT BE OPENED.", "LE FICHIER N'A PAS PU ÊTRE OUVERT.")
    if kind == "title":
        assert augmented[1] == ("Open The Settings", "Ouvrir Les Paramètres")
    if kind == "punct":
        assert augmented[0] == ("The file could not be opened", "Le fichier n'a pas pu être ouvert")
    if kind == "typos":
        changed = sum(src != original[0] for (src, _), original in zip(augmented, PAIRS, strict=True))
        assert changed > 0.9 * len(PAIRS)
        assert all(trg == original[1] for (_, trg), original in zip(augmented, PAIRS, strict=True))
    assert augment_pairs(PAIRS, kind, "en", tmp_path / "again") == (augmented, dropped)  # seeded


def test_noise_doubles_the_set_short_samples_short_pairs(tmp_path):
    noisy, _ = augment_pairs(PAIRS, "noise", "en", tmp_path)
    assert len(noisy) == 2 * len(PAIRS)
    short, _ = augment_pairs(PAIRS, "short", "en", tmp_path)
    assert set(short) == {("Save", "Enregistrer"), ("Cancel", "Annuler")}


def test_inline_noise_and_mix_use_alignments_of_the_set(tmp_path):
    inline, dropped = augment_pairs(PAIRS, "inline-noise", "en", tmp_path / "inline", threads=1)
    assert len(inline) + dropped == len(PAIRS)
    changed = [(a, b) for a, b in zip(inline, PAIRS, strict=False) if a != b]
    assert changed, "no inline noise at 5% of the word pairs of 120 sentences"
    for (src, trg), _ in changed:
        assert not re.search(r"__source__|__target__", src + trg)
    mixed, _ = augment_pairs(PAIRS, "mix", "en", tmp_path / "mix", threads=1)
    assert len(mixed) >= len(PAIRS) - 5
    # 5% upper case and 5% title case on a Latin source (noise lines aside, which may be any characters).
    recased = {s.upper() for s, _ in PAIRS} | {s.title() for s, _ in PAIRS}
    recased -= {s for s, _ in PAIRS}
    assert any(src in recased for src, _ in mixed)
    # aug-mix-nocase: the same mix without the casing modifiers.
    nocase, _ = augment_pairs(PAIRS, "mix-nocase", "en", tmp_path / "nocase", threads=1)
    assert len(nocase) >= len(PAIRS) - 5 and nocase != [tuple(p) for p in PAIRS]
    assert not any(src in recased for src, _ in nocase)


def test_import_writes_the_augmented_set_and_says_so(tmp_path):
    out = tmp_path / "out"
    run_step(
        "pipeline.data.import_dataset",
        ["--dataset", "local_aug-upper_data/l10n-en-fr/dev", "--langs", "en,fr", "--output-dir", out],
        env=step_env(),
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats["augmentation"] == "aug-upper" and stats["lines"] == stats["lines_imported"] == 500
    import zstandard

    first = zstandard.ZstdDecompressor().decompress(
        (out / "corpus.en.zst").read_bytes(), max_output_size=10**7
    )
    line = first.decode().splitlines()[0]
    assert line == line.upper() and any(c.isalpha() for c in line)


def test_the_config_accepts_augmented_evaluation_sets_and_refuses_a_wrong_one():
    base = {
        "experiment": {"name": "aug", "src": "en", "trg": "fr", "spm-vocab-size": 1000},
        "datasets": {
            "train": ["local_data/l10n-en-fr/parallel"],
            "devtest": ["local_data/l10n-en-fr/dev", "flores_aug-mix_dev"],
            "test": [
                "flores_aug-typos_devtest",
                "sacrebleu_aug-upper_wmt14",
                "local_aug-noise_data/l10n-en-fr/test",
            ],
        },
    }
    validate_training_config(json.loads(json.dumps(base)))
    base["datasets"]["test"].append("flores_aug-sparkle_devtest")
    base["datasets"]["mono-trg"] = ["news-crawl_aug-upper_news.2021"]
    with pytest.raises(ConfigError) as error:
        validate_training_config(base)
    assert "unknown augmentation aug-sparkle" in str(error.value)
    assert "augmented datasets are evaluation sets (parallel)" in str(error.value)


def test_a_pair_whose_alignment_differs_changes_only_itself(tmp_path, monkeypatch):
    """eflomal has no seed: two imports can align a pair differently. That pair's inline noise may move, but the
    pairs after it must come out the same (one seed for the whole set made every later pair differ)."""
    import pipeline.data.augment as augment

    def diagonal(pairs, shifted_line):
        lines = []
        for number, (src, trg) in enumerate(pairs):
            n, m = len(src.split()), len(trg.split())
            links = [f"{i}-{min(m - 1, i)}" for i in range(n)]
            if number == shifted_line:  # one more link: the modifier draws once more
                links.append(f"{n - 1}-0")
            lines.append(f"{src}\t{trg}\t{' '.join(links)}")
        return lines

    outputs = []
    for shifted_line in (None, 12):
        monkeypatch.setattr(
            augment, "_aligned", lambda pairs, work, threads, s=shifted_line: diagonal(pairs, s)
        )
        outputs.append(augment_pairs(PAIRS, "inline-noise", "en", tmp_path)[0])
    first, second = outputs
    assert len(first) == len(second) == len(PAIRS)
    assert [n for n, (a, b) in enumerate(zip(first, second, strict=True)) if a != b] in ([], [12])
