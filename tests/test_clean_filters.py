"""The OpusCleaner-format filter pipeline: each filter, the layered configs, batched language ID, the step."""

import json
import random
import sys
import time

import pytest

from conftest import REPO_ROOT, kill_step_after, read_corpus, run_step, sample_pairs, step_env, write_corpus
from pipeline.clean import filters
from pipeline.clean.langid import BatchLanguageID
from pipeline.common.step import StepError

CLEAN = "pipeline.clean.clean_parallel"


def apply(name, pairs, **params):
    return filters.FILTERS[name](params, "en", "fr")(pairs)


@pytest.mark.parametrize(
    "name, params, pair, kept",
    [
        ("remove_empty_lines", {}, ("a", " "), False),
        ("remove_empty_lines", {}, ("a", "b"), True),
        ("identical", {}, ("Firefox", "firefox"), False),
        ("identical", {}, ("Open", "Ouvrir"), True),
        ("max_length", {"MINLENGTH": 2, "MAXLENGTH": 3}, ("one", "un deux"), False),
        ("max_length", {"MINLENGTH": 2, "MAXLENGTH": 3}, ("one two", "un deux trois"), True),
        ("max_length", {"MINLENGTH": 2, "MAXLENGTH": 3}, ("one two three four", "un deux"), False),
        ("max_word_length", {"MAXWORDLENGTH": 5}, ("short words", "mots courts"), False),
        ("max_word_length", {"MAXWORDLENGTH": 6}, ("short words", "mots courts"), True),
        ("src_trg_ratio", {"RATIO": 0.5}, ("a b c d e", "un deux"), False),
        ("src_trg_ratio", {"RATIO": 0.5}, ("a b c d", "un deux"), True),
        ("char_ratio", {"RATIO": 2}, ("abc", "abcdefg"), False),
        ("char_ratio", {"RATIO": 3}, ("abc", "abcdefg"), True),
        ("num_mismatch", {"RATIO": 1}, ("Page 12 of 30", "Page 12 sur 31"), False),
        ("num_mismatch", {"RATIO": 1}, ("Page 1,5 of 30", "Page 1.5 sur 30"), True),
        ("url_mismatch", {}, ("see https://a.example/x", "voir https://b.example/x"), False),
        ("url_mismatch", {}, ("see https://a.example/x", "voir https://a.example/x"), True),
        ("alpha_ratio", {}, ("%1$s %2$s 42", "%1$s %2$s 42"), False),
        ("alpha_ratio", {}, ("Open the file", "Ouvrir le fichier"), True),
        (
            "langid",
            {},
            ("The quick brown fox jumps over the lazy dog", "Der schnelle braune Fuchs springt"),
            False,
        ),
        (
            "langid",
            {},
            ("The quick brown fox jumps over the lazy dog", "Le renard brun saute par-dessus le chien"),
            True,
        ),
    ],
)
def test_each_filter(name, params, pair, kept):
    result = apply(name, [pair], **params)
    assert (result[0] is not None) == kept


def test_normalize_whitespace_rewrites_the_pair():
    assert apply("normalize_whitespace", [(" a \t b ", "c\u00a0 d")]) == [("a b", "c d")]
    # the fast path for lines already normal agrees with the rule for every whitespace character
    spaces = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()]
    texts = [f"a{c}b" for c in spaces] + [f"{c}a" for c in spaces] + ["a b", "a  b", "", " ", "a\u200bb"]
    assert apply("normalize_whitespace", [(t, t) for t in texts]) == [
        (" ".join(t.split()),) * 2 for t in texts
    ]


def test_empty_line_and_word_length_shortcuts_are_the_split_rules():
    """remove_empty_lines (isspace) and max_word_length (a regular expression) agree with str.strip and str.split
    on every whitespace character, around words at the limit and beyond it."""
    spaces = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()]
    rng = random.Random(11)
    texts = ["", "a", *spaces, *(c * 2 for c in spaces), *(f"{'x' * 4}{c}{'y' * 5}" for c in spaces)]
    texts += [
        "".join(rng.choice(["x", "é", "\u200b", *spaces]) for _ in range(rng.randint(0, 14)))
        for _ in range(3000)
    ]
    pairs = [(t, "ok") for t in texts] + [("ok", t) for t in texts]
    assert [p is not None for p in apply("remove_empty_lines", pairs)] == [
        bool(s.strip() and t.strip()) for s, t in pairs
    ]
    for limit in (0, 4, 5):
        assert [p is not None for p in apply("max_word_length", pairs, MAXWORDLENGTH=limit)] == [
            max(map(len, s.split()), default=0) <= limit >= max(map(len, t.split()), default=0)
            for s, t in pairs
        ], limit


def test_run_batch_counts_the_first_filter_that_removes():
    built = filters.build(
        [
            {"filter": "remove_empty_lines"},
            {"filter": "identical"},
            {"filter": "max_length", "parameters": {"MAXLENGTH": 2}},
        ],
        "en",
        "fr",
    )
    kept, removed = filters.run_batch(built, [("", "x"), ("same", "same"), ("a b c", "d"), ("ok", "bien")])
    assert kept == [("ok", "bien")]
    assert removed == {"remove_empty_lines": 1, "identical": 1, "max_length": 1}


@pytest.fixture(scope="module")
def py3langid_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def test_batched_language_id_decides_as_py3langid_does(py3langid_identifier, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATIONS_CACHE", str(tmp_path / "cache"))
    texts = [s for pair in sample_pairs(3000) for s in pair] + [
        "",
        "!!!",
        "12 34",
        "ÉTÉ EN FRANCE",
        "x" * 3000,
        "Cafe\u0301 cre\u0300me",  # decomposed accents: py3langid classifies the NFC form
        "first line\nsecond line",  # a line break inside a text
        "\ud800 lone surrogate",
    ]
    unpacked = BatchLanguageID()  # unpacks the model and writes the cache
    assert sorted(p.name for p in (tmp_path / "cache").iterdir())[0].startswith("py3langid-")
    cached = BatchLanguageID()  # memory-maps the cache
    for identifier in (unpacked, cached):
        langs, probabilities = identifier.classify(texts)
        for text, lang, probability in zip(texts, langs, probabilities, strict=True):
            expected_lang, expected_probability = py3langid_identifier.classify(text)
            assert lang == expected_lang, text
            assert abs(probability - expected_probability) < 1e-3, text
    langs, probabilities = cached.classify([])
    assert langs == [] and len(probabilities) == 0


def test_language_id_without_a_writable_cache_unpacks_in_memory(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("TRANSLATIONS_CACHE", str(blocked))
    assert BatchLanguageID().classify(["Le chat dort sur le canapé."])[0] == ["fr"]


def test_layered_configs_pick_the_most_specific(tmp_path):
    (tmp_path / "en-fr").mkdir()
    (tmp_path / "default.filters.json").write_text('{"filters": []}')
    assert filters.choose_config(tmp_path, "en", "fr", "opus_X_v1") == tmp_path / "default.filters.json"
    (tmp_path / "en-fr" / "default.filters.json").write_text('{"filters": []}')
    assert (
        filters.choose_config(tmp_path, "en", "fr", "opus_X_v1")
        == tmp_path / "en-fr" / "default.filters.json"
    )
    (tmp_path / "en-fr" / "opus_X_v1.filters.json").write_text('{"filters": []}')
    assert (
        filters.choose_config(tmp_path, "en", "fr", "opus_X_v1")
        == tmp_path / "en-fr" / "opus_X_v1.filters.json"
    )
    assert (
        filters.choose_config(tmp_path, "en", "fr", "opus_Y_v1")
        == tmp_path / "en-fr" / "default.filters.json"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "cannot be read"),
        ('{"version": 1}', "no 'filters' list"),
        (
            '{"filters": [{"filter": "laser_similarity"}]}',
            "'laser_similarity') is not one this pipeline runs",
        ),
        ('{"filters": [{"filter": "identical", "parameters": [1]}]}', "not a mapping"),
    ],
)
def test_bad_filter_configs_are_refused(tmp_path, text, message):
    path = tmp_path / "x.filters.json"
    path.write_text(text)
    with pytest.raises(StepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        filters.load_config(path, "en", "fr")


def test_every_shipped_filter_config_loads():
    configs = sorted((REPO_ROOT / "pipeline" / "clean" / "opuscleaner" / "configs").rglob("*.filters.json"))
    assert len(configs) >= 3
    for path in configs:
        filters.build(filters.load_config(path, "en", "fr"), "en", "fr")


# ----- the step -----


@pytest.fixture
def noisy_dataset(tmp_path):
    pairs = sample_pairs(4000) + [("Page 12 of 30", "Page 12 sur 31"), ("same", "same"), ("", "vide")] * 10
    folder = tmp_path / "in"
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs])
    (folder / "stats.json").write_text('{"dataset": "local_data/l10n-en-fr/train"}')
    return folder


def clean(inputs, out, *extra, threads="1", check=True):
    args = ["--input-dir", inputs, "--src", "en", "--trg", "fr", "--output-dir", out, *extra]
    return run_step(CLEAN, args, env=step_env(THREADS=threads), check=check)


def test_threads_do_not_change_the_output(noisy_dataset, tmp_path):
    clean(noisy_dataset, tmp_path / "one")
    clean(noisy_dataset, tmp_path / "two", threads="2")
    for name in ("corpus.en.zst", "corpus.fr.zst", "stats.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    stats = json.loads((tmp_path / "two" / "stats.json").read_text())
    assert stats["lines_in"] == 4030 and stats["lines_out"] + sum(stats["removed"].values()) == 4030
    assert sum(stats["lengths"]["src"].values()) == stats["lines_out"]
    assert stats["filters"] == "default.filters.json"


def test_custom_mode_uses_the_per_dataset_config(noisy_dataset, tmp_path):
    out = tmp_path / "out"
    clean(noisy_dataset, out, "--opuscleaner-mode", "custom")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["filters"] == "en-fr/local_data_l10n_en_fr_train.filters.json"
    assert stats["removed"]["num_mismatch"] >= 10
    assert json.loads((out / "filters.json").read_text())["filters"][-1]["filter"] == "langid"
    other = tmp_path / "other"
    clean(noisy_dataset, other, "--opuscleaner-mode", "custom", "--dataset", "opus_Other/v1")
    assert json.loads((other / "stats.json").read_text())["filters"] == "en-fr/default.filters.json"


def test_config_parameters_and_language_id_switch(noisy_dataset, tmp_path):
    out = tmp_path / "out"
    clean(noisy_dataset, out, "--max-words", "3", "--language-id", "false")
    stats = json.loads((out / "stats.json").read_text())
    assert "langid" not in stats["removed"]
    assert all(len(line.split()) <= 3 for line in read_corpus(out / "corpus.en.zst"))


def test_bad_input_fails_cleanly(tmp_path):
    folder = tmp_path / "in"
    (folder).mkdir()
    (folder / "corpus.en").write_bytes(b"fine\nbroken \xff here\n")
    (folder / "corpus.fr").write_bytes(b"bien\ncasse\n")
    import zstandard

    for lang in ("en", "fr"):
        (folder / f"corpus.{lang}.zst").write_bytes(
            zstandard.ZstdCompressor().compress((folder / f"corpus.{lang}").read_bytes())
        )
    out = tmp_path / "out"
    result = clean(folder, out, threads="2", check=False)
    assert (
        result.returncode == 1
        and "line 2 is not valid UTF-8" in result.stderr
        and "Traceback" not in result.stderr
    )
    assert not out.exists() or not any(p.name.startswith("corpus") for p in out.iterdir())
    result = clean(folder, out, "--filters-dir", tmp_path, check=False)
    assert result.returncode == 1 and "cannot be read" in result.stderr


def compiled_language_id():
    """Language ID's loops compiled and cached for both kinds of model arrays (unpacked, memory-mapped): a kill
    test times its reference run, and a first-run compilation (seconds) must not be part of it."""
    BatchLanguageID()
    BatchLanguageID()


def test_kill_9_then_rerun_gives_the_same_outputs(tmp_path):
    compiled_language_id()
    pairs = sample_pairs(40000)
    folder = tmp_path / "in"
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs] * 3)
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs] * 3)
    started = time.monotonic()
    clean(folder, tmp_path / "reference", threads="2")
    midway = (time.monotonic() - started) / 2  # a fixed delay let a faster host finish before the kill
    out = tmp_path / "out"
    args = ["--input-dir", folder, "--src", "en", "--trg", "fr", "--output-dir", out]
    # Kills the step and its worker processes.
    assert kill_step_after(CLEAN, args, midway, env=step_env(THREADS="2"))
    assert not (out / "stats.json").exists()
    clean(folder, out, threads="2")
    for name in ("corpus.en.zst", "corpus.fr.zst", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [
        "corpus.en.zst",
        "corpus.fr.zst",
        "filters.json",
        "stats.json",
    ]


# ----- monolingual cleaning -----

CLEAN_MONO = "pipeline.clean.clean_mono"


def clean_mono(inputs, out, *extra, threads="1", check=True):
    args = ["--input-dir", inputs, "--lang", "fr", "--output-dir", out, *extra]
    return run_step(CLEAN_MONO, args, env=step_env(THREADS=threads), check=check)


def test_mono_cleaning_applies_rules_and_language_id(tmp_path):
    lines = [
        "Le chat dort sur le canapé.",
        "  Trop   d'espaces   ici  ",
        "",
        "Mot",  # one word: under max_length's minimum of 2
        "The cat sleeps on the sofa all day long.",  # English in the French data
        "12 34 56 78 %1$s",  # numbers and placeholders: alpha_ratio
    ]
    write_corpus(tmp_path / "in" / "corpus.fr.zst", lines)
    (tmp_path / "in" / "stats.json").write_text('{"dataset": "news-crawl_news.2021"}')
    out = tmp_path / "out"
    clean_mono(tmp_path / "in", out, threads="2")
    assert read_corpus(out / "corpus.fr.zst") == ["Le chat dort sur le canapé.", "Trop d'espaces ici"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["removed"] == {"remove_empty_lines": 1, "max_length": 1, "langid": 1, "alpha_ratio": 1}
    assert (stats["dataset"], stats["lines_in"], stats["lines_out"]) == ("news-crawl_news.2021", 6, 2)
    assert stats["filters"] == "mono.filters.json"


def test_mono_cleaning_of_an_emptied_dataset_warns(tmp_path):
    write_corpus(tmp_path / "in" / "corpus.fr.zst", ["The cat sleeps on the sofa all day long."])
    out = tmp_path / "out"
    result = clean_mono(tmp_path / "in", out)
    assert "no line of 1 survived cleaning" in result.stderr
    assert read_corpus(out / "corpus.fr.zst") == []


def test_mono_cleaning_bad_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "corpus.fr.zst").write_bytes(b"not zstd at all")
    out = tmp_path / "out"
    result = clean_mono(tmp_path / "in", out, check=False)
    assert result.returncode == 1 and "corpus.fr.zst" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not any(p.name.startswith("corpus") for p in out.iterdir())


def test_mono_cleaning_kill_9_then_rerun_gives_the_same_outputs(tmp_path):
    compiled_language_id()
    lines = [t for _, t in sample_pairs(40000)] * 3
    write_corpus(tmp_path / "in" / "corpus.fr.zst", lines)
    started = time.monotonic()
    clean_mono(tmp_path / "in", tmp_path / "reference", threads="2")
    midway = (time.monotonic() - started) / 2
    out = tmp_path / "out"
    args = ["--input-dir", tmp_path / "in", "--lang", "fr", "--output-dir", out]
    assert kill_step_after(CLEAN_MONO, args, midway, env=step_env(THREADS="2"))
    clean_mono(tmp_path / "in", out, threads="2")
    for name in ("corpus.fr.zst", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["corpus.fr.zst", "filters.json", "stats.json"]


def test_a_single_huge_line_is_filtered_quickly(tmp_path):
    huge_words, huge_word = ("word " * 400_000).strip(), "x" * 2_000_000
    pairs = [("Open the file", "Ouvrir le fichier"), (huge_words, "court"), ("court", huge_word)]
    write_corpus(tmp_path / "in" / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(tmp_path / "in" / "corpus.fr.zst", [t for _, t in pairs])
    started = time.time()
    clean(tmp_path / "in", tmp_path / "out")
    assert time.time() - started < 60
    assert read_corpus(tmp_path / "out" / "corpus.en.zst") == ["Open the file"]
    # language ID alone on a long text: the same answer as py3langid, without a batch step per byte
    text = "Le chat dort sur le canapé. " * 400
    assert BatchLanguageID().classify([text, "The cat sleeps"])[0] == ["fr", "en"]
