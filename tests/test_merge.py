"""The streaming merge: exact and normalized dedupe, decontamination, caps, mono against the parallel corpus."""

import json
import os
import random
import re
import time

import numpy as np

from conftest import kill_step_after, read_corpus, run_step, step_env, write_corpus
from pipeline.clean import merge
from pipeline.clean import merge_kernels as kernels
from pipeline.common.io import encode_lines, read_lines

MERGE = "pipeline.clean.merge_corpus"
MERGE_MONO = "pipeline.clean.merge_mono"


def dataset(folder, pairs, name):
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs])
    (folder / "stats.json").write_text(json.dumps({"dataset": name}))
    return folder


def merge_args(inputs, out, *extra):
    return ["--input-dirs", *inputs, "--src", "en", "--trg", "fr", "--output-dir", out, *extra]


def test_exact_and_normalized_duplicates_and_test_sentences_are_removed(tmp_path):
    a = dataset(
        tmp_path / "a",
        [("Hello world.", "Bonjour le monde."), ("Good night", "Bonne nuit"), ("Keep me", "Garde-moi")],
        "local_a",
    )
    b = dataset(
        tmp_path / "b",
        [
            ("Hello world.", "Bonjour le monde."),  # exact duplicate of a
            ("hello,  WORLD", "bonjour le monde"),  # normalized duplicate of a
            ("The test sentence!", "Autre chose"),  # its source is a test sentence (normalized)
            ("Something", "LA PHRASE DE TEST"),  # its target is a test sentence
            ("Fresh", "Frais"),
        ],
        "local_b",
    )
    test = dataset(tmp_path / "test", [("the test sentence", "la phrase de test.")], "flores_devtest")
    out = tmp_path / "out"
    run_step(MERGE, merge_args([a, b], out, "--exclude-dirs", test))
    pairs = set(zip(read_corpus(out / "corpus.en.zst"), read_corpus(out / "corpus.fr.zst"), strict=True))
    assert pairs == {
        ("Hello world.", "Bonjour le monde."),
        ("Good night", "Bonne nuit"),
        ("Keep me", "Garde-moi"),
        ("Fresh", "Frais"),
    }
    stats = json.loads((out / "stats.json").read_text())
    by_name = {d["dataset"]: d for d in stats["datasets"]}
    assert by_name["local_b"] == {
        "dataset": "local_b", "lines": 5, "duplicates_exact": 1, "duplicates_normalized": 1,
        "in_parallel_corpus": 0, "decontaminated": 2, "capped": 0, "kept": 1,
    }  # fmt: skip
    assert by_name["local_a"]["kept"] == 3
    assert stats["test_sets"] == ["flores_devtest"]
    assert (stats["lines_in"], stats["duplicates"], stats["decontaminated"], stats["lines_out"]) == (
        8,
        2,
        2,
        4,
    )


def test_shuffle_is_fixed_seed_and_the_cap_is_a_sample(tmp_path):
    pairs = [(f"source {i}", f"cible {i}") for i in range(3000)]
    a = dataset(tmp_path / "a", pairs, "local_a")
    run_step(MERGE, merge_args([a], tmp_path / "one"))
    run_step(MERGE, merge_args([a], tmp_path / "two"))
    first = read_corpus(tmp_path / "one" / "corpus.en.zst")
    assert first == read_corpus(tmp_path / "two" / "corpus.en.zst"), "same seed, same order"
    assert sorted(first) == sorted(s for s, _ in pairs) and first != [s for s, _ in pairs]
    run_step(MERGE, merge_args([a], tmp_path / "capped", "--max-sentences", "1000"))
    capped = read_corpus(tmp_path / "capped" / "corpus.en.zst")
    assert capped == first[:1000]
    numbers = [int(s.split()[1]) for s in capped]
    assert 1000 < sum(numbers) / len(numbers) < 2000, "a random sample, not the first lines"
    stats = json.loads((tmp_path / "capped" / "stats.json").read_text())
    assert (stats["capped"], stats["lines_out"], stats["datasets"][0]["kept"]) == (2000, 1000, 1000)


def test_pairs_stay_aligned(tmp_path):
    rng = random.Random(5)
    pairs = [(f"s{i} {rng.random()}", f"t{i}") for i in range(5000)]
    a = dataset(tmp_path / "a", pairs, "local_a")
    run_step(MERGE, merge_args([a], tmp_path / "out"))
    merged = zip(
        read_corpus(tmp_path / "out" / "corpus.en.zst"),
        read_corpus(tmp_path / "out" / "corpus.fr.zst"),
        strict=True,
    )
    assert all(s.split()[0][1:] == t[1:] for s, t in merged)


def test_carriage_returns_and_tabs_inside_sentences_survive_the_cap(tmp_path):
    pairs = [(f"s{i}\rend", f"t{i}\tend") for i in range(3000)]
    a = dataset(tmp_path / "a", pairs, "local_a")
    run_step(MERGE, merge_args([a], tmp_path / "out", "--max-sentences", "2500"))
    # read_lines, not read_corpus: str.splitlines would split at the carriage returns
    out = tmp_path / "out"
    merged = list(zip(read_lines(out / "corpus.en.zst"), read_lines(out / "corpus.fr.zst"), strict=True))
    assert len(merged) == 2500
    assert all(s.endswith("\rend") and t == f"t{s[1:-4]} end" for s, t in merged)


def test_bucket_count_grows_with_the_input_so_memory_does_not(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"x" * 1000)
    large.touch()
    os.truncate(large, 400_000_000)  # sparse (no disk used): 400 MB of zstd is about 10M lines
    assert merge.bucket_count([small]) == merge.MIN_BUCKETS
    buckets = merge.bucket_count([large])
    assert merge.MIN_BUCKETS < buckets < merge.MAX_BUCKETS
    # A bucket holds about BUCKET_ROWS estimated lines, however large the input (the memory of one bucket).
    assert 400_000_000 / merge.BYTES_PER_COMPRESSED_LINE / buckets <= merge.BUCKET_ROWS
    assert merge.bucket_count([large, large]) > buckets


def test_normalize():
    assert merge.normalize("  Hello,   World! ") == "hello world"
    assert merge.normalize("Ça  va ?") == merge.normalize("ça va")
    assert merge.normalize("l'été") == "l été"
    assert merge.normalize("snake_case\u00a0--\u2028ΣΑΣ") == "snake case σασ"


def test_normalize_is_the_split_and_join_rule_on_every_kind_of_character():
    def rule(text):  # case folded, runs of non-letters/digits one space, none at the ends
        return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())

    rng = random.Random(5)
    # Every kind of character: ASCII, Latin-1, combining marks, other scripts, spaces and separators of
    # Unicode (\u2028, \x1c, NBSP), underscores, controls.
    alphabet = [chr(c) for c in [*range(1, 0x250), *range(0x300, 0x370), *range(0x391, 0x3CA)]]
    alphabet += list("\u2028\u2029\u00a0\u3000\u200b\u2019«»—_ßİŉﬁ한국어中文\U0001f600")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ["", " ", "_", "\t\t", "A_b", "ΣΑΣ ΟΔΟΣ"]
    texts += ["two\nlines", "\n"]
    # the byte-table paths: ASCII only, Latin-1 only, and every character of Unicode alone between letters
    for low, high in ((1, 0x80), (1, 0x100)):
        texts += [
            "".join(chr(rng.randrange(low, high)) for _ in range(rng.randint(0, 40))) for _ in range(2000)
        ]
    texts += [f"A{chr(c)}b" for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    assert [merge.normalize(t) for t in texts] == [rule(t) for t in texts]

    # The merge normalizes and hashes lines from their bytes (compiled; Python's normalize beyond the BMP): the
    # hash of every line is the hash of the rule's result, and lines normalizing differently hash differently.
    lines = [t.replace("\n", " ") for t in texts] + ["\t tab\t", "cr\r", "\r\r", "\u3000", "x\x85"]
    hashed = merge.hashed_lines(encode_lines(lines), "test", 1, merge.SEED)
    expected = [rule(t.rstrip("\r")) for t in lines]
    seed = np.uint64(merge.SEED)
    assert hashed.hashes.tolist() == [
        int(kernels.hash_bytes(np.frombuffer(e.encode(), dtype=np.uint8), seed)) for e in expected
    ]
    assert len(set(hashed.hashes.tolist())) == len(set(expected))
    assert ((hashed.flags & kernels.EMPTY) > 0).tolist() == [not e for e in expected]
    assert ((hashed.flags & kernels.BLANK) > 0).tolist() == [not t.rstrip("\r").strip() for t in lines]
    another_seed = merge.hashed_lines(encode_lines(lines[:100]), "test", 1, merge.SEED + 1)
    assert not set(another_seed.hashes.tolist()) & set(hashed.hashes.tolist())


def test_mono_is_deduplicated_against_itself_the_parallel_corpus_and_test_sets(tmp_path):
    write_corpus(tmp_path / "n1" / "corpus.fr.zst", ["Un.", "Deux", "Trois", "un", "Phrase de test"])
    write_corpus(tmp_path / "n2" / "corpus.fr.zst", ["Deux", "Quatre", "Cinq", "Six"])
    (tmp_path / "n1" / "stats.json").write_text('{"dataset": "news-crawl_news.2021"}')
    parallel = dataset(tmp_path / "parallel", [("Three", "trois"), ("x", "Cinq !")], "merged")
    test = dataset(tmp_path / "test", [("x", "phrase de test")], "sacrebleu_wmt14")
    out = tmp_path / "out"
    run_step(
        MERGE_MONO,
        ["--input-dirs", tmp_path / "n1", tmp_path / "n2", "--lang", "fr", "--parallel-dir", parallel,
         "--exclude-dirs", test, "--max-sentences", "2", "--output-dir", out],
    )  # fmt: skip
    lines = read_corpus(out / "corpus.fr.zst")
    assert len(lines) == 2 and set(lines) <= {"Un.", "Deux", "Quatre", "Six"}
    stats = json.loads((out / "stats.json").read_text())
    n1, n2 = stats["datasets"]
    assert n1["dataset"] == "news-crawl_news.2021"
    assert (n1["duplicates_normalized"], n1["in_parallel_corpus"], n1["decontaminated"]) == (1, 1, 1)
    assert (n2["duplicates_exact"], n2["in_parallel_corpus"]) == (1, 1)
    assert stats["capped"] == 2 and stats["lines_out"] == 2


def test_any_number_of_workers_gives_the_same_bytes(tmp_path):
    """The first pass runs over THREADS forked workers, batch by batch; the buckets keep input order, so the
    first copy of a duplicate, the shuffle and the counts do not depend on THREADS."""
    rng = random.Random(3)
    words = ["alpha", "ALPHA", "Beta", "gamma,", "gamma", "delta!", "Épée", "l’été"]

    def sentence():
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))

    a = dataset(tmp_path / "a", [(sentence(), sentence()) for _ in range(12_000)], "local_a")
    b = dataset(tmp_path / "b", [(sentence(), sentence()) for _ in range(9_000)], "local_b")
    test = dataset(tmp_path / "test", [("alpha beta", "gamma delta")], "flores_devtest")
    write_corpus(tmp_path / "n" / "corpus.fr.zst", [sentence() for _ in range(11_000)])
    outputs = {}
    for threads in ("1", "2"):
        out = tmp_path / f"out{threads}"
        run_step(MERGE, merge_args([a, b], out, "--exclude-dirs", test), env=step_env(THREADS=threads))
        run_step(
            MERGE_MONO,
            ["--input-dirs", tmp_path / "n", "--lang", "fr", "--parallel-dir", out, "--exclude-dirs", test,
             "--output-dir", out / "mono"],
            env=step_env(THREADS=threads),
        )  # fmt: skip
        outputs[threads] = [
            (out / name).read_bytes()
            for name in (
                "corpus.en.zst",
                "corpus.fr.zst",
                "stats.json",
                "mono/corpus.fr.zst",
                "mono/stats.json",
            )
        ]
    assert outputs["1"] == outputs["2"]
    stats = json.loads(outputs["2"][2])
    assert (
        stats["duplicates_exact"] > 0 and stats["duplicates_normalized"] > 0 and stats["decontaminated"] > 0
    )
    assert json.loads(outputs["2"][4])["in_parallel_corpus"] > 0


def test_bad_input_fails_cleanly_and_leaves_nothing(tmp_path):
    write_corpus(tmp_path / "a" / "corpus.en.zst", ["a", "b", "c"])
    write_corpus(tmp_path / "a" / "corpus.fr.zst", ["a", "b"])
    out = tmp_path / "out"
    result = run_step(MERGE, merge_args([tmp_path / "a"], out), check=False)
    assert (
        result.returncode == 1 and "line counts differ" in result.stderr and "Traceback" not in result.stderr
    )
    assert not (out / "corpus.en.zst").exists() and not (out / "stats.json").exists()
    result = run_step(MERGE, merge_args([tmp_path / "a"], out, "--max-sentences", "0"), check=False)
    assert result.returncode == 2 and "at least 1" in result.stderr
    result = run_step(
        MERGE_MONO, ["--input-dirs", tmp_path / "nope", "--lang", "fr", "--output-dir", out], check=False
    )
    assert result.returncode == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def timed_step(module, args):
    merge._compile_kernels()  # a fresh checkout compiles them once: not part of the timed run
    started = time.monotonic()
    run_step(module, args, env=step_env(THREADS="2"))
    return time.monotonic() - started


def test_kill_9_then_rerun_gives_the_same_outputs(tmp_path):
    pairs = [(f"source sentence number {i}", f"phrase cible numéro {i}") for i in range(200_000)]
    a = dataset(tmp_path / "a", pairs, "local_a")
    # killed (with its workers) halfway through an uninterrupted run: a fixed delay lets a fast host finish first
    midway = timed_step(MERGE, merge_args([a], tmp_path / "reference")) / 2
    out = tmp_path / "out"
    assert kill_step_after(MERGE, merge_args([a], out), midway, env=step_env(THREADS="2"), retry_dir=out)
    run_step(MERGE, merge_args([a], out))
    for name in ("corpus.en.zst", "corpus.fr.zst", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == ["corpus.en.zst", "corpus.fr.zst", "stats.json"]


def test_mono_merge_kill_9_then_rerun_gives_the_same_outputs(tmp_path):
    write_corpus(tmp_path / "n" / "corpus.fr.zst", [f"ligne numéro {i}" for i in range(300_000)])
    args = ["--input-dirs", tmp_path / "n", "--lang", "fr", "--max-sentences", "100000"]
    midway = timed_step(MERGE_MONO, [*args, "--output-dir", tmp_path / "reference"]) / 2
    out = tmp_path / "out"
    assert kill_step_after(
        MERGE_MONO, [*args, "--output-dir", out], midway, env=step_env(THREADS="2"), retry_dir=out
    )
    run_step(MERGE_MONO, [*args, "--output-dir", out])
    for name in ("corpus.fr.zst", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == ["corpus.fr.zst", "stats.json"]
