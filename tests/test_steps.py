"""Each step script on small data: documented outputs, untouched inputs, no-op re-runs, early clear failures."""

import json

import pytest

from conftest import read_corpus, run_step, sample_pairs, step_env, tree_digest, write_corpus

IMPORT = "pipeline.data.import_dataset"
CLEAN = "pipeline.clean.clean_parallel"
MERGE = "pipeline.clean.merge_corpus"
VOCAB = "pipeline.train.spm_vocab"
TRAIN = "pipeline.train.train"
EVALUATE = "pipeline.eval.evaluate"
REPORT = "pipeline.eval.report"


def local_dataset(tmp_path, pairs, suffix=".gz"):
    prefix = tmp_path / "source" / "corpus"
    write_corpus(prefix.with_name(f"corpus.en{suffix}"), [s for s, _ in pairs])
    write_corpus(prefix.with_name(f"corpus.fr{suffix}"), [t for _, t in pairs])
    return prefix


@pytest.mark.parametrize("suffix", [".gz", ".zst", ".txt"])
def test_import_local_dataset(tmp_path, suffix):
    pairs = sample_pairs(50)
    prefix = local_dataset(tmp_path, pairs, suffix)
    before = tree_digest(prefix.parent)
    out = tmp_path / "out"
    run_step(IMPORT, ["--dataset", f"local_{prefix}", "--langs", "en,fr", "--output-dir", out])
    assert read_corpus(out / "corpus.en.zst") == [s for s, _ in pairs]
    assert read_corpus(out / "corpus.fr.zst") == [t for _, t in pairs]
    assert json.loads((out / "stats.json").read_text()) == {
        "dataset": f"local_{prefix}",
        "langs": ["en", "fr"],
        "lines": 50,
    }
    assert tree_digest(prefix.parent) == before
    outputs = tree_digest(out)
    again = run_step(IMPORT, ["--dataset", f"local_{prefix}", "--langs", "en,fr", "--output-dir", out])
    assert "nothing to do" in again.stderr
    assert tree_digest(out) == outputs


def test_import_mono_dataset(tmp_path):
    write_corpus(tmp_path / "mono.en.gz", ["one line", "another line"])
    out = tmp_path / "out"
    run_step(IMPORT, ["--dataset", f"local_{tmp_path / 'mono'}", "--langs", "en", "--output-dir", out])
    assert read_corpus(out / "corpus.en.zst") == ["one line", "another line"]
    assert sorted(p.name for p in out.iterdir()) == ["corpus.en.zst", "stats.json"]


def assert_fails_cleanly(result, out, *words):
    assert result.returncode == 1, result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert leftovers == [], f"a failed step left {leftovers}"


def test_import_refuses_mismatched_line_counts(tmp_path):
    write_corpus(tmp_path / "c.en.gz", ["a", "b", "c"])
    write_corpus(tmp_path / "c.fr.gz", ["a", "b"])
    out = tmp_path / "out"
    result = run_step(
        IMPORT, ["--dataset", f"local_{tmp_path / 'c'}", "--langs", "en,fr", "--output-dir", out], check=False
    )
    assert_fails_cleanly(result, out, "line counts differ", "not aligned")


def test_import_refuses_invalid_utf8(tmp_path):
    (tmp_path / "c.en").write_bytes(b"fine\nbroken \xff\xfe here\n")
    (tmp_path / "c.fr").write_bytes(b"bien\ncasse\n")
    out = tmp_path / "out"
    result = run_step(
        IMPORT, ["--dataset", f"local_{tmp_path / 'c'}", "--langs", "en,fr", "--output-dir", out], check=False
    )
    assert_fails_cleanly(result, out, "line 2 is not valid UTF-8")


def test_import_refuses_an_empty_dataset(tmp_path):
    (tmp_path / "c.en").write_text("")
    (tmp_path / "c.fr").write_text("")
    out = tmp_path / "out"
    result = run_step(
        IMPORT, ["--dataset", f"local_{tmp_path / 'c'}", "--langs", "en,fr", "--output-dir", out], check=False
    )
    assert_fails_cleanly(result, out, "is empty")


def test_import_refuses_missing_files_and_unknown_providers(tmp_path):
    out = tmp_path / "out"
    result = run_step(
        IMPORT,
        ["--dataset", f"local_{tmp_path / 'nope'}", "--langs", "en,fr", "--output-dir", out],
        check=False,
    )
    assert_fails_cleanly(result, out, "nope.en.gz")
    result = run_step(
        IMPORT, ["--dataset", "huggingface_x/y", "--langs", "en,fr", "--output-dir", out], check=False
    )
    assert_fails_cleanly(result, out, "unknown dataset provider 'huggingface'")


def test_a_missing_argument_fails_before_any_work(tmp_path):
    result = run_step(CLEAN, ["--src", "en", "--trg", "fr", "--output-dir", tmp_path / "out"], check=False)
    assert result.returncode == 2
    assert "--input-dir" in result.stderr
    assert not (tmp_path / "out").exists()


def test_clean_applies_each_filter_and_counts_it(tmp_path):
    pairs = [
        ("Save only roles, not databases or tablespaces", "sauvegarde uniquement les rôles, pas les bases"),
        ("", "vide"),
        ("same text here", "same text here"),
        ("one " * 200, "un " * 200),
        ("short", "une phrase beaucoup beaucoup beaucoup plus longue que la source"),
        (
            "The quick brown fox jumps over the lazy dog near the river bank",
            "Der schnelle braune Fuchs springt über den faulen Hund am Flussufer",
        ),
        ("  Collapse   these\tspaces  ", "  réduire   ces\tespaces  "),
    ]
    inputs = tmp_path / "in"
    write_corpus(inputs / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(inputs / "corpus.fr.zst", [t for _, t in pairs])
    (inputs / "stats.json").write_text('{"dataset": "local_x"}')
    before = tree_digest(inputs)
    out = tmp_path / "out"
    args = ["--input-dir", inputs, "--src", "en", "--trg", "fr", "--output-dir", out]
    run_step(CLEAN, args)
    assert read_corpus(out / "corpus.en.zst") == [pairs[0][0], "Collapse these spaces"]
    assert read_corpus(out / "corpus.fr.zst") == [pairs[0][1], "réduire ces espaces"]
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["dataset"], stats["lines_in"], stats["lines_out"]) == ("local_x", 7, 2)
    # OpusCleaner's filter names (pipeline/clean/opuscleaner/configs/default.filters.json)
    assert stats["removed"] == {
        "remove_empty_lines": 1,
        "identical": 1,
        "max_length": 1,
        "char_ratio": 1,
        "langid": 1,
    }
    assert tree_digest(inputs) == before
    outputs = tree_digest(out)
    assert "nothing to do" in run_step(CLEAN, args).stderr
    assert tree_digest(out) == outputs


def test_clean_warns_when_nothing_survives_and_writes_an_empty_dataset(tmp_path):
    inputs = tmp_path / "in"
    write_corpus(inputs / "corpus.en.zst", ["same", "same again"])
    write_corpus(inputs / "corpus.fr.zst", ["same", "same again"])
    out = tmp_path / "out"
    result = run_step(CLEAN, ["--input-dir", inputs, "--src", "en", "--trg", "fr", "--output-dir", out])
    assert "no pair of 2 survived cleaning" in result.stderr
    assert read_corpus(out / "corpus.en.zst") == [] == read_corpus(out / "corpus.fr.zst")
    assert json.loads((out / "stats.json").read_text())["warning"] == "no pair of 2 survived cleaning"


def test_merge_deduplicates_shuffles_and_caps(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write_corpus(first / "corpus.en.zst", [f"s{i}" for i in range(10)])
    write_corpus(first / "corpus.fr.zst", [f"t{i}" for i in range(10)])
    write_corpus(second / "corpus.en.zst", ["s1", "s2", "s2", "new"])
    write_corpus(second / "corpus.fr.zst", ["t1", "other", "other", "nouveau"])
    out = tmp_path / "out"
    args = ["--input-dirs", first, second, "--src", "en", "--trg", "fr", "--output-dir", out]
    run_step(MERGE, args)
    src, trg = read_corpus(out / "corpus.en.zst"), read_corpus(out / "corpus.fr.zst")
    pairs = list(zip(src, trg, strict=True))
    expected = {(f"s{i}", f"t{i}") for i in range(10)} | {("s2", "other"), ("new", "nouveau")}
    assert sorted(pairs) == sorted(expected)
    assert pairs != sorted(pairs, key=lambda p: int(p[0][1:]) if p[0][1:].isdigit() else 99)
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["lines_in"], stats["duplicates"], stats["lines_out"], stats["capped"]) == (14, 2, 12, 0)

    capped = tmp_path / "capped"
    run_step(
        MERGE,
        [
            "--input-dirs",
            first,
            second,
            "--src",
            "en",
            "--trg",
            "fr",
            "--max-sentences",
            "5",
            "--output-dir",
            capped,
        ],
    )
    assert read_corpus(capped / "corpus.en.zst") == src[:5]
    assert json.loads((capped / "stats.json").read_text())["capped"] == 7


def test_merge_refuses_an_empty_result(tmp_path):
    empty = tmp_path / "empty"
    write_corpus(empty / "corpus.en.zst", [])
    write_corpus(empty / "corpus.fr.zst", [])
    out = tmp_path / "out"
    result = run_step(
        MERGE, ["--input-dirs", empty, "--src", "en", "--trg", "fr", "--output-dir", out], check=False
    )
    assert_fails_cleanly(result, out, "merged corpus is empty")


def vocab_args(corpus_dir, vocab_size: int, out) -> list:
    return [
        "--corpus-dir",
        corpus_dir,
        "--src",
        "en",
        "--trg",
        "fr",
        "--vocab-size",
        vocab_size,
        "--output-dir",
        out,
    ]


def test_vocab_needs_the_engine_resources_and_trains(tmp_path, parallel_dir):
    out = tmp_path / "vocab"
    args = vocab_args(parallel_dir, 504, out)
    env = step_env()
    del env["THREADS"]
    result = run_step(VOCAB, args, env=env, check=False)
    assert_fails_cleanly(result, out, "THREADS")
    before = tree_digest(parallel_dir)
    run_step(VOCAB, args)
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(out / "vocab.spm"))
    assert processor.get_piece_size() == 504
    assert processor.id_to_piece(0) == "</s>" and processor.id_to_piece(1) == "<unk>"
    assert tree_digest(parallel_dir) == before
    outputs = tree_digest(out)
    assert "nothing to do" in run_step(VOCAB, args).stderr
    assert tree_digest(out) == outputs


def test_split_vocabularies_are_one_per_language(tmp_path, parallel_dir):
    import sentencepiece

    from pipeline.common.io import read_lines
    from pipeline.common.step import StepError
    from pipeline.common.vocab import vocab_names, vocab_pair

    out = tmp_path / "vocab"
    run_step(VOCAB, [*vocab_args(parallel_dir, 504, out), "--split", "true"])
    assert sorted(p.name for p in out.iterdir()) == [
        "vocab.en.spm",
        "vocab.en.vocab",
        "vocab.fr.spm",
        "vocab.fr.vocab",
    ]
    pair = vocab_pair(out, "en", "fr")
    assert vocab_names(pair, "en", "fr") == ["vocab.en.spm", "vocab.fr.spm"]
    assert vocab_pair(out, "fr", "en") == pair[::-1]  # the backward model's
    en, fr = (sentencepiece.SentencePieceProcessor(model_file=str(path)) for path in pair)
    assert en.get_piece_size() == fr.get_piece_size() == 504
    # Each fits its own language: fewer pieces per sentence than the other language's vocabulary gives.
    french = list(read_lines(parallel_dir / "corpus.fr.zst"))[:200]
    assert sum(len(fr.encode(line)) for line in french) < sum(len(en.encode(line)) for line in french)
    assert "nothing to do" in run_step(VOCAB, [*vocab_args(parallel_dir, 504, out), "--split", "true"]).stderr
    # A folder with neither vocab.spm nor both languages' is refused by the steps that read it.
    (out / "vocab.fr.spm").unlink()
    with pytest.raises(StepError, match="neither vocab.spm nor vocab.en.spm and vocab.fr.spm"):
        vocab_pair(out, "en", "fr")


def test_vocab_size_must_be_a_multiple_of_eight(tmp_path, parallel_dir):
    out = tmp_path / "vocab"
    result = run_step(VOCAB, vocab_args(parallel_dir, 500, out), check=False)
    assert_fails_cleanly(result, out, "multiple of 8")


def test_train_fails_early_on_bad_environment_or_arguments(tmp_path, parallel_dir):
    out = tmp_path / "model"
    args = [
        "--model-type", "teacher", "--architecture", "tiny", "--src", "en", "--trg", "fr",
        "--train-dir", parallel_dir, "--devset-dir", parallel_dir, "--vocab", tmp_path / "vocab.spm",
        "--output-dir", out,
    ]  # fmt: skip
    env = step_env()
    del env["WORKSPACE"]
    assert_fails_cleanly(run_step(TRAIN, args, env=env, check=False), out, "WORKSPACE")
    assert_fails_cleanly(
        run_step(TRAIN, [*args, "--marian-args", "{not json"], check=False), out, "not valid JSON"
    )
    result = run_step(TRAIN, [*args[:3], "huge", *args[4:]], check=False)
    assert_fails_cleanly(result, out, "no Marian preset teacher.huge.yml")
    assert_fails_cleanly(run_step(TRAIN, args, check=False), out, "vocab.spm does not exist")


def test_evaluate_needs_a_trained_model(tmp_path, parallel_dir):
    out = tmp_path / "eval"
    args = [
        "--model-dir", tmp_path / "no-model", "--dataset-dir", parallel_dir, "--dataset", "local_x",
        "--src", "en", "--trg", "fr", "--output-dir", out,
    ]  # fmt: skip
    assert_fails_cleanly(run_step(EVALUATE, args, check=False), out, "no trained model")


def test_marian_options_become_command_line_arguments():
    from pipeline.common.marian import to_args

    assert to_args({"dim-emb": 256, "tied-embeddings-all": True, "vocabs": ["a", "b"], "skip": False, "none": None}) == [
        "--dim-emb", "256", "--tied-embeddings-all", "--vocabs", "a", "b",
    ]  # fmt: skip


def test_report_sums_up_the_run(tmp_path):
    files = {
        "imported.json": {"dataset": "local_x", "langs": ["en", "fr"], "lines": 100},
        "cleaned.json": {
            "dataset": "local_x",
            "lines_in": 100,
            "lines_out": 90,
            "removed": {"ratio": 6, "language": 4},
        },
        "merged.json": {"datasets": [], "lines_in": 90, "duplicates": 5, "capped": 0, "lines_out": 85},
        "devset.json": {"datasets": [], "lines_in": 10, "duplicates": 0, "capped": 0, "lines_out": 10},
        "metrics.json": {
            "dataset": "local_test",
            "model_dir": "/runs/x/train-teacher-en-fr-1/artifacts",
            "sentences": 20,
            "bleu": 25.5,
            "chrf": 45.1,
            "copy_source": {"bleu": 10.0, "chrf": 30.0},
        },
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    out = tmp_path / "report"
    run_step(
        REPORT,
        [
            "--experiment", "x", "--src", "en", "--trg", "fr",
            "--imported", tmp_path / "imported.json", "--cleaned", tmp_path / "cleaned.json",
            "--merged", tmp_path / "merged.json", "--devset", tmp_path / "devset.json",
            "--evaluations", tmp_path / "metrics.json", "--output-dir", out,
        ],
    )  # fmt: skip
    report = (out / "report.md").read_text()
    assert (
        "| local_test | /runs/x/train-teacher-en-fr-1/artifacts | 25.5 | 45.1 | - | - | - | 10.0 | 30.0 | 20 |"
        in report
    )
    assert "| local_x | 100 | 90 | language 4, ratio 6 |" in report
    assert "**85 pairs out**" in report
    assert json.loads((out / "report.json").read_text())["evaluations"][0]["chrf"] == 45.1


def test_outputs_are_written_atomically(tmp_path):
    from pipeline.common.io import write_lines

    target = tmp_path / "corpus.en.zst"
    with pytest.raises(RuntimeError), write_lines(target) as out:
        out.write("half")
        raise RuntimeError("killed midway")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_checkpoint_is_detected(tmp_path):
    import zipfile

    from pipeline.train.train import checkpoint_is_readable

    assert checkpoint_is_readable(tmp_path)
    with zipfile.ZipFile(tmp_path / "model.npz", "w") as archive:
        archive.writestr("weights.npy", b"\x00" * 4096)
    assert checkpoint_is_readable(tmp_path)
    data = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "model.npz").write_bytes(data[: len(data) // 2])
    assert not checkpoint_is_readable(tmp_path)
