"""The model-chain steps on small data, with Marian models trained in seconds: OpusTrainer training (teacher
curricula, backward, student with guided alignment, fine-tuning), chunked translation with ensembles and
n-best picks, collection, cross-entropy filtering, mono merge and ensemble evaluation. Each step: its
outputs, a no-op rerun, clear failures on bad input, and a rerun after kill -9 that finishes the same."""

import json
import subprocess
import sys
import time

import pytest
import yaml
from test_steps import assert_fails_cleanly

from conftest import (
    REPO_ROOT,
    kill_running,
    kill_step_after,
    read_corpus,
    run_step,
    sample_pairs,
    step_env,
    tree_digest,
    write_corpus,
)
from pipeline.common.marian import decoding_batch_options

TRAIN = "pipeline.train.train"
TRANSLATE = "pipeline.translate.translate"
COLLECT = "pipeline.translate.collect"
CEFILTER = "pipeline.cefilter.cefilter"
MERGE_MONO = "pipeline.clean.merge_mono"
EVALUATE = "pipeline.eval.evaluate"

# A model small enough to train in seconds on one thread; quality does not matter here.
MICRO = {
    "dim-emb": 32,
    "transformer-dim-ffn": 64,
    "enc-depth": 1,
    "dec-depth": 1,
    "transformer-heads": 2,
    "mini-batch-fit": False,
    "mini-batch": 16,
    "maxi-batch": 10,
    "valid-mini-batch": 16,
    "disp-freq": 10,
    "early-stopping": 20,
}


def diagonal_alignments(pairs) -> list[str]:
    """A trivial word alignment (i -> i scaled to the target length), in Pharaoh format."""
    lines = []
    for src, trg in pairs:
        n, m = len(src.split()), len(trg.split())
        lines.append(" ".join(f"{i}-{min(m - 1, i * m // n)}" for i in range(n)) if n and m else "")
    return lines


def write_pairs_dir(folder, pairs, src="en", trg="fr"):
    write_corpus(folder / f"corpus.{src}.zst", [s for s, _ in pairs])
    write_corpus(folder / f"corpus.{trg}.zst", [t for _, t in pairs])
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Corpus, devset, alignments and a 504-piece vocabulary shared by the tests of this module."""
    root = tmp_path_factory.mktemp("chain")
    pairs = sample_pairs(300)
    write_pairs_dir(root / "corpus", pairs)
    write_corpus(root / "corpus" / "corpus.aln.zst", diagonal_alignments(pairs))
    write_pairs_dir(root / "devset", sample_pairs(20, "dev"))
    backtranslated = [(t.upper(), t) for _, t in sample_pairs(400)[300:]]
    write_pairs_dir(root / "bt", backtranslated)
    write_corpus(root / "bt" / "corpus.aln.zst", diagonal_alignments(backtranslated))
    run_step(
        "pipeline.train.spm_vocab",
        ["--corpus-dir", root / "corpus", "--src", "en", "--trg", "fr", "--vocab-size", 504,
         "--output-dir", root / "vocab"],
    )  # fmt: skip
    return root


def train_args(data, out, model_type="teacher", updates=20, extra=(), **marian):
    options = {**MICRO, "after": f"{updates}u", "valid-freq": 10, "save-freq": 10, **marian}
    return [
        "--model-type", model_type, "--architecture", "tiny", "--src", "en", "--trg", "fr",
        "--train-dir", data / "corpus", "--devset-dir", data / "devset", "--vocab", data / "vocab" / "vocab.spm",
        "--marian-args", json.dumps(options), "--output-dir", out, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def model(data):
    """A micro teacher trained through OpusTrainer with back-translations and alignments (two-stage)."""
    out = data / "teacher"
    extra = [
        "--alignments", data / "corpus" / "corpus.aln.zst",
        "--backtranslations-dir", data / "bt",
        "--backtranslations-alignments", data / "bt" / "corpus.aln.zst",
    ]  # fmt: skip
    run_step(TRAIN, train_args(data, out, extra=extra))
    return out


def test_teacher_trains_through_opustrainer_with_backtranslations(data, model):
    for name in ["final.model.npz", "final.model.npz.decoder.yml", "vocab.spm", "train.log", "valid.log"]:
        assert (model / name).exists(), name
    assert not (model / "corpus").exists()
    curriculum = yaml.safe_load((model / "config.opustrainer.yml").read_text())
    assert curriculum["stages"] == ["pretrain", "finetune"]
    assert curriculum["pretrain"] == ["original 0.6", "backtranslated 0.4", "until backtranslated 2"]
    assert curriculum["num_fields"] == 3
    kinds = [next(iter(entry)) for entry in curriculum["modifiers"]]
    assert kinds == ["UpperCase", "TitleCase", "RemoveEndPunct", "Typos", "Noise", "Tags"]
    assert "spm_vocab_src" not in curriculum["modifiers"][-1]  # the teacher drops the alignments
    log = (model / "train.log").read_text()
    assert "--train-sets stdin" in log and "--sync-sgd" in log
    decoder = yaml.safe_load((model / "final.model.npz.decoder.yml").read_text())
    assert not {"mini-batch", "maxi-batch"} & set(decoder)  # training batches say nothing about decoding
    outputs = tree_digest(model)
    assert "nothing to do" in run_step(TRAIN, train_args(data, model)).stderr
    assert tree_digest(model) == outputs


def test_curricula_follow_the_teacher_mode_and_the_data():
    from pathlib import Path

    from pipeline.train.train import build_curriculum

    vocab = Path("/v/vocab.spm")
    both = {"original": Path("o.tsv"), "backtranslated": Path("b.tsv")}
    one = build_curriculum("teacher", "one-stage", both, True, vocab, 3, True)
    assert one["stages"] == ["train"]
    assert one["train"] == ["original 0.7", "backtranslated 0.3", "until original inf"]
    assert one["seed"] == 3
    # Without back-translations the two-stage curriculum keeps its fine-tuning stage only.
    alone = build_curriculum("teacher", "two-stage", {"original": Path("o.tsv")}, False, vocab, 1, True)
    assert alone["stages"] == ["finetune"]
    assert alone["finetune"] == ["original 1.0", "until original inf"]
    assert alone["num_fields"] == 2
    assert "Tags" not in [next(iter(m)) for m in alone["modifiers"]]
    # A source script without letter case gets no case or typo modifiers.
    uncased = build_curriculum("student", "two-stage", {"original": Path("o.tsv")}, True, vocab, 1, False)
    assert [next(iter(m)) for m in uncased["modifiers"]] == ["RemoveEndPunct", "Noise", "Tags"]
    assert uncased["modifiers"][-1]["spm_vocab_trg"] == str(vocab)
    assert "modifiers" not in build_curriculum(
        "backward", "two-stage", {"original": Path("o")}, False, vocab, 1, True
    )


def test_epochs_end_the_curriculum_and_are_taken_out_of_the_marian_options():
    from pathlib import Path

    from pipeline.common.step import StepError
    from pipeline.train.train import build_curriculum, training_caps

    options = {"after": "4e", "valid-freq": 500}
    assert training_caps(options) == (4, None) and options == {"valid-freq": 500}
    assert training_caps({"after-epochs": 2}) == (2, None)
    updates = {"after": "300u"}
    assert training_caps(updates) == (None, None) and updates == {"after": "300u"}
    both = {"after": "6e, 300u,45m"}  # the first cap reached ends the training
    assert training_caps(both) == (6, 2700.0) and both == {"after": "300u"}
    assert training_caps({"after": "1.5h"}) == (None, 5400.0)
    for bad in ({"after-epochs": 0}, {"after-epochs": "x"}, {"after": "2x"}, {"after": "1.5e"},
                {"after": "0m"}, {"after": "300u,2t"}):  # fmt: skip
        with pytest.raises(StepError, match="after"):
            training_caps(bad)
    both = {"original": Path("o.tsv"), "backtranslated": Path("b.tsv")}
    two = build_curriculum("teacher", "two-stage", both, False, Path("v"), 1, True, epochs=3)
    assert two["pretrain"][-1] == "until backtranslated 2"  # the pre-training stage keeps its own length
    assert two["finetune"] == ["original 1.0", "until original 3"]


def test_a_short_run_with_long_exponential_smoothing_is_warned_about():
    from pipeline.train.train import check_smoothing, planned_updates

    student = {"exponential-smoothing": True, "mini-batch-fit": False, "mini-batch": 64}
    updates = planned_updates(student, 4, 32_000)
    assert updates == 2000
    warning = check_smoothing(student, updates)
    assert "averages over ~10,000 updates" in warning and "about 2,000" in warning
    assert check_smoothing({**student, "exponential-smoothing": 0}, updates) is None
    assert check_smoothing(student, planned_updates({"after": "50000u"}, None, 0)) is None
    assert planned_updates({"mini-batch-fit": True}, 4, 32_000) is None  # unknown: no warning


def test_training_sized_in_epochs_ends_with_the_data_and_validates_its_last_updates(data, tmp_path):
    out = tmp_path / "backward"
    options = {**MICRO, "after": "2e", "valid-freq": 1000, "save-freq": 1000, "mini-batch": 50}
    run_step(TRAIN, [
        "--model-type", "backward", "--architecture", "tiny", "--src", "fr", "--trg", "en",
        "--train-dir", data / "corpus", "--devset-dir", data / "devset", "--vocab", data / "vocab" / "vocab.spm",
        "--marian-args", json.dumps(options), "--output-dir", out,
    ])  # fmt: skip
    assert "until original 2" in (out / "config.opustrainer.yml").read_text()
    # 300 pairs twice in batches of 50: about 12 updates, and a validation at the end although valid-freq
    # (1000) was never reached, so the best checkpoint holds the trained model.
    progress = yaml.safe_load((out / "model.npz.progress.yml").read_text())
    assert 10 <= progress["batches"] <= 14, progress["batches"]
    assert "[valid]" in (out / "valid.log").read_text()
    assert (out / "final.model.npz").exists()


def test_student_trains_with_guided_alignment_then_finetunes(data, model):
    out = data / "student"
    args = train_args(data, out, "student", extra=["--alignments", data / "corpus" / "corpus.aln.zst"])
    run_step(TRAIN, args)
    log = (out / "train.log").read_text()
    assert "[config] guided-alignment: 2" in log
    assert "[config] dec-cell: ssru" in log and "[config] enc-depth: 6" not in log  # MICRO overrides depth
    curriculum = yaml.safe_load((out / "config.opustrainer.yml").read_text())
    assert curriculum["modifiers"][-1]["Tags"] == 0.005
    assert curriculum["modifiers"][-1]["spm_vocab_src"] == str((out / "vocab.spm").resolve())

    finetuned = data / "finetuned"
    run_step(TRAIN, [*train_args(data, finetuned, "student", extra=[
        "--alignments", data / "corpus" / "corpus.aln.zst", "--pretrained-model", out,
    ])])  # fmt: skip
    log = (finetuned / "train.log").read_text()
    assert "--pretrained-model" in log and "[config] quantize-bits: 8" in log
    assert "[config] optimizer-delay: 4" in log


def test_init_model_starts_a_training_from_the_pretrained_weights(data, model, tmp_path):
    """continuation mode init: train.py --init-model passes the weights to Marian; after two updates the model
    is still close to them, while one trained from scratch is not."""
    import numpy as np

    def distance(out):
        with np.load(out / "model.npz") as trained, np.load(model / "final.model.npz") as pretrained:
            return float(np.abs(trained["Wemb"] - pretrained["Wemb"]).mean())

    initialized, scratch = tmp_path / "init", tmp_path / "scratch"
    run_step(TRAIN, train_args(data, initialized, updates=2, extra=["--init-model", model]))
    run_step(TRAIN, train_args(data, scratch, updates=2))
    assert "[config] pretrained-model: " in (initialized / "train.log").read_text()
    assert distance(initialized) < distance(scratch) / 5, (distance(initialized), distance(scratch))
    both = ["--init-model", model, "--pretrained-model", model]
    result = run_step(TRAIN, train_args(data, tmp_path / "both", extra=both), check=False)
    assert_fails_cleanly(result, tmp_path / "both", "not both")


def test_student_presets_are_the_firefox_architectures():
    from pipeline.train.train import load_preset

    sizes = {"tiny": (256, 1536, 2), "base": (512, 2048, 2), "base-memory": (384, 1536, 4)}
    for name, (dim, ffn, decoder) in sizes.items():
        preset = load_preset("student", name)
        assert (preset["dim-emb"], preset["transformer-dim-ffn"], preset["dec-depth"]) == (dim, ffn, decoder)
        assert preset["enc-depth"] == 6 and preset["dec-cell"] == "ssru"
        assert preset["guided-alignment"] == 2
    for path in (REPO_ROOT / "pipeline" / "train" / "configs" / "model").glob("*.yml"):
        assert yaml.safe_load(path.read_text())["sync-sgd"] is True, path.name


def test_training_refuses_bad_inputs(data, tmp_path):
    out = tmp_path / "out"
    result = run_step(TRAIN, train_args(data, out, "student"), check=False)
    assert_fails_cleanly(result, out, "guided alignment", "--alignments")
    short = tmp_path / "short.aln.zst"
    write_corpus(short, diagonal_alignments(sample_pairs(10)))
    result = run_step(TRAIN, train_args(data, out, "student", extra=["--alignments", short]), check=False)
    assert result.returncode == 1 and "line counts differ" in result.stderr
    assert not (out / "final.model.npz").exists()
    result = run_step(TRAIN, train_args(data, tmp_path / "o2", "student", extra=[
        "--alignments", short, "--pretrained-model", tmp_path / "nothing"]), check=False)  # fmt: skip
    assert_fails_cleanly(result, tmp_path / "o2", "nothing")


def start(module, args, env=None, output=None):
    """The step in the background; its output to the file `output` where the test does not read it while it
    runs (a pipe nobody reads fills up and blocks a talkative step)."""
    stream = open(output, "w") if output else subprocess.PIPE  # noqa: SIM115 - the child writes to it
    return subprocess.Popen(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        env=env or step_env(),
        stdout=stream,
        stderr=subprocess.STDOUT if output else subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_when(process, condition, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, (process.communicate()[1] or "")[-3000:]
        assert time.time() < deadline, "the condition to kill never came"
        time.sleep(0.05)
    kill_running(process)  # fails the test if the step ended before the kill


def test_training_resumes_after_kill_9(data, tmp_path):
    out = tmp_path / "teacher"
    args = train_args(data, out, updates=40, extra=["--alignments", data / "corpus" / "corpus.aln.zst"])
    process = start(TRAIN, args)
    kill_when(process, lambda: (out / "model.npz.progress.yml").exists())
    assert not (out / "final.model.npz").exists()
    result = run_step(TRAIN, args)
    assert "resuming the training from the checkpoint" in result.stderr
    assert (out / "final.model.npz").exists()
    assert "Up. 40 " in (out / "train.log").read_text()


@pytest.fixture(scope="module")
def mono(data):
    lines = [t for _, t in sample_pairs(130)[:130]] + [""]  # an empty line translates to an empty line
    return write_corpus(data / "mono" / "corpus.fr.zst", lines)


def translate_args(source, models, out, chunk=1, chunks=1, extra=()):
    return [
        "--input", source, "--chunk", chunk, "--chunks", chunks, "--model-dirs", *models,
        "--part-lines", 20, "--output-dir", out, *extra,
    ]  # fmt: skip


def test_chunks_translate_and_collect_back_in_order(data, model, mono, tmp_path):
    # Marian's output can depend on what else is in its batch: decode the same 44-line blocks both ways.
    whole = tmp_path / "whole"
    run_step(TRANSLATE, translate_args(mono, [model], whole, extra=["--part-lines", 44]))
    expected = read_corpus(whole / "translation.zst")
    assert len(expected) == 131 and expected[-1] == ""
    assert not (whole / "parts").exists()

    before = tree_digest(mono.parent)
    chunk_dirs = []
    for chunk in (3, 1, 2):
        chunk_dirs.append(tmp_path / f"chunk{chunk}")
        run_step(TRANSLATE, translate_args(mono, [model], chunk_dirs[-1], chunk, 3, ["--part-lines", 44]))
    assert json.loads((tmp_path / "chunk3" / "chunk.json").read_text()) == {
        "chunk": 3, "chunks": 3, "input_lines": 131, "lines": 43,
    }  # fmt: skip
    out = tmp_path / "collected"
    args = ["--original-dir", mono.parent, "--original-lang", "fr", "--translated-lang", "en",
            "--chunk-dirs", *chunk_dirs, "--output-dir", out]  # fmt: skip
    run_step(COLLECT, args)
    assert read_corpus(out / "corpus.en.zst") == expected
    assert read_corpus(out / "corpus.fr.zst") == read_corpus(mono)
    assert tree_digest(mono.parent) == before
    assert "nothing to do" in run_step(COLLECT, args).stderr


def test_chunk_bounds_cover_every_line_once():
    from pipeline.translate.translate import chunk_bounds

    for total in (0, 1, 7, 100, 131):
        for chunks in (1, 2, 3, 8, 20):
            covered = []
            for chunk in range(1, chunks + 1):
                start, end = chunk_bounds(total, chunk, chunks)
                covered.extend(range(start, end))
            assert covered == list(range(total)), (total, chunks)


def test_collect_refuses_missing_or_short_chunks(data, model, mono, tmp_path):
    dirs = [tmp_path / f"c{chunk}" for chunk in (1, 2)]
    for chunk, folder in enumerate(dirs, start=1):
        run_step(TRANSLATE, translate_args(mono, [model], folder, chunk, 2))
    out = tmp_path / "out"
    base = [
        "--original-dir",
        mono.parent,
        "--original-lang",
        "fr",
        "--translated-lang",
        "en",
        "--output-dir",
        out,
    ]
    result = run_step(COLLECT, [*base, "--chunk-dirs", dirs[0]], check=False)
    assert_fails_cleanly(result, out, "chunk(s) 2 of 2 are missing")
    result = run_step(COLLECT, [*base, "--chunk-dirs", dirs[0], dirs[0]], check=False)
    assert_fails_cleanly(result, out, "chunk 1 is given twice")
    write_corpus(dirs[1] / "translation.zst", read_corpus(dirs[1] / "translation.zst")[:-1])
    result = run_step(COLLECT, [*base, "--chunk-dirs", *dirs], check=False)
    assert_fails_cleanly(result, out, "chunk 2", "holds 64 translations, expected 65")


def test_translate_refuses_bad_inputs(data, model, mono, tmp_path):
    out = tmp_path / "out"
    result = run_step(TRANSLATE, translate_args(mono, [model], out, 4, 3), check=False)
    assert_fails_cleanly(result, out, "--chunk must be between 1 and --chunks (3)")
    result = run_step(TRANSLATE, translate_args(mono, [model, tmp_path / "none"], out), check=False)
    assert_fails_cleanly(result, out, "no trained model in", "none")
    refs = write_corpus(tmp_path / "refs.en.zst", ["one", "two"])
    result = run_step(
        TRANSLATE, translate_args(mono, [model], out, extra=["--references", refs]), check=False
    )
    assert_fails_cleanly(result, out, "has 2 lines", "has 131")


def test_ensemble_nbest_keeps_the_hypothesis_closest_to_the_reference(data, model, mono, tmp_path):
    from sacrebleu.metrics import CHRF

    source = data / "corpus" / "corpus.en.zst"
    references = data / "corpus" / "corpus.fr.zst"
    plain, best = tmp_path / "plain", tmp_path / "best"
    options = ["--marian-args", json.dumps({"beam-size": 4})]
    run_step(TRANSLATE, translate_args(source, [model, model], plain, 1, 5, options))
    run_step(
        TRANSLATE, translate_args(source, [model, model], best, 1, 5, [*options, "--references", references])
    )
    chrf = CHRF()
    refs = read_corpus(references)[:60]
    plain_lines, best_lines = read_corpus(plain / "translation.zst"), read_corpus(best / "translation.zst")
    assert len(best_lines) == len(plain_lines) == 60
    gains = []
    for ref, one, picked in zip(refs, plain_lines, best_lines, strict=True):
        picked_score, one_score = (
            chrf.sentence_score(picked, [ref]).score,
            chrf.sentence_score(one, [ref]).score,
        )
        assert picked_score >= one_score - 1e-9
        gains.append(picked_score - one_score)
    assert sum(gains) > 0  # the n-best list offered better hypotheses for some sentences


def test_nbest_parsing_and_pick():
    from pipeline.common.step import StepError
    from pipeline.translate.translate import best_by_chrf, parse_nbest

    lines = [
        "0 ||| le chat noir ||| F0= -1.0 ||| -0.5",
        "0 ||| un chat noir ||| F0= -1.2 ||| -0.6",
        "1 |||  ||| F0= -3.0 ||| -3.0",
    ]
    hypotheses = parse_nbest(lines, 2)
    assert hypotheses == [["le chat noir", "un chat noir"], [""]]
    assert best_by_chrf(hypotheses[0], "un chat noir") == "un chat noir"
    assert best_by_chrf(["a b", "a b"], "x") == "a b"
    with pytest.raises(StepError, match="no hypothesis for 1"):
        parse_nbest(lines[:2], 2)
    with pytest.raises(StepError, match="not a Marian n-best line"):
        parse_nbest(["garbage"], 1)


def test_translation_resumes_after_kill_9_with_identical_output(data, model, tmp_path):
    source = write_corpus(tmp_path / "src.en.zst", [s for s, _ in sample_pairs(300)])
    clean = tmp_path / "clean"
    run_step(TRANSLATE, translate_args(source, [model], clean))
    out = tmp_path / "killed"
    process = start(TRANSLATE, translate_args(source, [model], out))
    kill_when(process, lambda: len(list((out / "parts").glob("part.*.zst"))) >= 2)
    assert not (out / "translation.zst").exists()
    parts = len(list((out / "parts").glob("part.*.zst")))
    result = run_step(TRANSLATE, translate_args(source, [model], out))
    assert result.stderr.count("already translated") == parts
    assert (out / "translation.zst").read_bytes() == (clean / "translation.zst").read_bytes()


def cefilter_args(corpus, model_dir, out, fraction="0.1"):
    return ["--corpus-dir", corpus, "--model-dir", model_dir, "--src", "en", "--trg", "fr",
            "--remove-fraction", fraction, "--output-dir", out]  # fmt: skip


def test_cefilter_drops_the_lowest_scoring_pairs_in_order(data, model, tmp_path):
    # The teacher stands in for the backward model: only the scoring mechanics are tested here.
    out = tmp_path / "filtered"
    before = tree_digest(data / "corpus")
    run_step(CEFILTER, cefilter_args(data / "corpus", model, out))
    scores = [float(x) for x in read_corpus(out / "scores.zst")]
    assert len(scores) == 300
    pairs = list(
        zip(
            read_corpus(data / "corpus" / "corpus.en.zst"),
            read_corpus(data / "corpus" / "corpus.fr.zst"),
            strict=True,
        )
    )
    worst = set(sorted(range(300), key=lambda i: (scores[i], i))[:30])
    kept = list(zip(read_corpus(out / "corpus.en.zst"), read_corpus(out / "corpus.fr.zst"), strict=True))
    assert kept == [pair for i, pair in enumerate(pairs) if i not in worst]
    assert max(scores[i] for i in worst) <= min(s for i, s in enumerate(scores) if i not in worst)
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["lines_in"], stats["removed"], stats["lines_out"]) == (300, 30, 270)
    assert tree_digest(data / "corpus") == before
    assert "nothing to do" in run_step(CEFILTER, cefilter_args(data / "corpus", model, out)).stderr


def test_cefilter_lowest_breaks_ties_by_position():
    from pipeline.cefilter.cefilter import lowest

    assert lowest([-1.0, -3.0, -2.0, -3.0], 0.5) == {1, 3}
    assert lowest([-1.0, -1.0, -1.0], 0.34) == {0}
    assert lowest([-1.0] * 10, 0) == set()


def test_cefilter_refuses_bad_inputs(data, model, tmp_path):
    out = tmp_path / "out"
    assert_fails_cleanly(
        run_step(CEFILTER, cefilter_args(data / "corpus", model, out, "1.5"), check=False),
        out,
        "--remove-fraction",
    )
    assert_fails_cleanly(
        run_step(CEFILTER, cefilter_args(data / "corpus", tmp_path / "none", out), check=False),
        out,
        "no trained backward model",
    )
    broken = write_pairs_dir(tmp_path / "broken", sample_pairs(5))
    write_corpus(broken / "corpus.fr.zst", ["x"])
    assert_fails_cleanly(
        run_step(CEFILTER, cefilter_args(broken, model, out), check=False), out, "not aligned"
    )


def test_cefilter_after_kill_9_gives_the_same_outputs(data, model, tmp_path):
    clean, out = tmp_path / "clean", tmp_path / "killed"
    run_step(CEFILTER, cefilter_args(data / "corpus", model, clean))
    process = start(CEFILTER, cefilter_args(data / "corpus", model, out))
    kill_when(process, lambda: (out / "work" / "corpus.fr").exists())
    run_step(CEFILTER, cefilter_args(data / "corpus", model, out))
    for name in ("corpus.en.zst", "corpus.fr.zst", "scores.zst"):
        assert read_corpus(out / name) == read_corpus(clean / name), name


def test_merge_mono_dedupes_drops_parallel_lines_and_caps(tmp_path):
    first = write_corpus(tmp_path / "a" / "corpus.fr.zst", ["un", "deux", "deux", "trois", ""]).parent
    second = write_corpus(tmp_path / "b" / "corpus.fr.zst", ["trois", "quatre", "cinq"]).parent
    parallel = write_corpus(tmp_path / "p" / "corpus.fr.zst", ["un"]).parent
    out = tmp_path / "out"
    args = ["--input-dirs", first, second, "--lang", "fr", "--parallel-dir", parallel, "--output-dir", out]
    run_step(MERGE_MONO, args)
    assert sorted(read_corpus(out / "corpus.fr.zst")) == ["cinq", "deux", "quatre", "trois"]
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["lines_in"], stats["lines_out"]) == (7, 4)
    capped = tmp_path / "capped"
    run_step(MERGE_MONO, [*args[:-1], capped, "--max-sentences", 2])
    assert sorted(read_corpus(capped / "corpus.fr.zst")) in (
        ["deux", "quatre"],
        ["deux", "trois"],
        ["quatre", "trois"],
    )
    empty = tmp_path / "empty"
    result = run_step(MERGE_MONO, ["--input-dirs", parallel, "--lang", "fr", "--parallel-dir", parallel,
                                   "--output-dir", empty], check=False)  # fmt: skip
    assert_fails_cleanly(result, empty, "merged monolingual corpus is empty")


def test_ensemble_evaluation(data, model, tmp_path):
    out = tmp_path / "eval"
    run_step(EVALUATE, ["--model-dir", model, model, "--dataset-dir", data / "devset", "--dataset", "local_dev",
                        "--src", "en", "--trg", "fr", "--output-dir", out])  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_dir"] == f"{model}, {model}" and metrics["sentences"] == 20
    log = (out / "decode.log").read_text()
    assert "--models" in log
    assert "--mini-batch 8 --maxi-batch 1000 --maxi-batch-sort src" in log  # the CPU decoding batches


def test_decoding_batches_follow_the_device_and_yield_to_the_users_options(monkeypatch):
    monkeypatch.delenv("GPUS", raising=False)
    assert decoding_batch_options({}) == {"mini-batch": 8, "maxi-batch": 1000, "maxi-batch-sort": "src"}
    assert decoding_batch_options({"maxi-batch": 50}) == {"mini-batch": 8, "maxi-batch-sort": "src"}
    # Any batch size of the user's replaces all of ours, so that theirs is the one Marian batches by.
    assert decoding_batch_options({"mini-batch-words": 4000}) == {
        "maxi-batch": 1000,
        "maxi-batch-sort": "src",
    }
    monkeypatch.setenv("GPUS", "0 1")
    assert decoding_batch_options({}) == {
        "mini-batch-words": 5000,
        "maxi-batch": 10000,
        "maxi-batch-sort": "src",
    }


@pytest.mark.parametrize("seconds", [0.3, 0.6, 0.9])
def test_collect_and_mono_merge_after_kill_9_give_the_same_outputs(tmp_path, seconds):
    lines = [f"line {i} " + "mot " * (i % 7) for i in range(60_000)]
    original = write_corpus(tmp_path / "mono" / "corpus.fr.zst", lines)
    chunk_dirs = []
    for number in (1, 2):
        folder = tmp_path / f"chunk{number}"
        start_line, end_line = (0, 30_000) if number == 1 else (30_000, 60_000)
        write_corpus(folder / "translation.zst", [line.upper() for line in lines[start_line:end_line]])
        (folder / "chunk.json").write_text(json.dumps({"chunk": number, "chunks": 2}))
        chunk_dirs.append(folder)
    steps = {
        COLLECT: ["--original-dir", original.parent, "--original-lang", "fr", "--translated-lang", "en",
                  "--chunk-dirs", *chunk_dirs],
        MERGE_MONO: ["--input-dirs", original.parent, "--lang", "fr", "--max-sentences", 50_000],
    }  # fmt: skip
    for module, args in steps.items():
        clean, killed = tmp_path / f"{module}-clean", tmp_path / f"{module}-killed"
        run_step(module, [*args, "--output-dir", clean])
        kill_step_after(module, [*args, "--output-dir", killed], seconds, retry_dir=killed)
        run_step(module, [*args, "--output-dir", killed])
        # A kill can leave a hidden temporary (.NAME.*.tmp) beside the outputs; the outputs are what count.
        names = sorted(p.name for p in clean.iterdir())
        assert sorted(p.name for p in killed.iterdir() if not p.name.startswith(".")) == names
        for name in names:
            assert (killed / name).read_bytes() == (clean / name).read_bytes(), (module, name)


def test_ctranslate2_decodes_the_teacher_as_marian_does(data, model, mono, tmp_path):
    """teacher-decoder: ctranslate2: the converted teacher's greedy translations are Marian's, and its n-best
    list feeds the same pick by chrF; an ensemble falls back to Marian."""
    source = data / "corpus" / "corpus.en.zst"
    references = data / "corpus" / "corpus.fr.zst"
    greedy = ["--marian-args", json.dumps({"beam-size": 1})]
    marian, ct2 = tmp_path / "marian", tmp_path / "ct2"
    run_step(TRANSLATE, translate_args(source, [model], marian, 1, 5, greedy))
    run_step(TRANSLATE, translate_args(source, [model], ct2, 1, 5, [*greedy, "--decoder", "ctranslate2"]))
    marian_lines, ct2_lines = read_corpus(marian / "translation.zst"), read_corpus(ct2 / "translation.zst")
    assert len(ct2_lines) == len(marian_lines) == 60
    # A 20-update model repeats itself until the length limit, which each decoder counts its own way, and its
    # near-ties fall either way with the two libraries' arithmetic: the shorter of two translations begins the
    # longer for most sentences (measured: 43 of 60; a wrong vocabulary mapping gives 0).
    same = sum(a.startswith(b) or b.startswith(a) for a, b in zip(marian_lines, ct2_lines, strict=True))
    assert same >= 0.6 * len(marian_lines), f"{same} of 60 greedy translations agree"

    best = tmp_path / "best"
    nbest = [
        "--marian-args",
        json.dumps({"beam-size": 4}),
        "--decoder",
        "ctranslate2",
        "--references",
        references,
    ]
    run_step(TRANSLATE, translate_args(source, [model], best, 1, 5, nbest))
    assert len(read_corpus(best / "translation.zst")) == 60

    ensemble = run_step(
        TRANSLATE,
        translate_args(source, [model, model], tmp_path / "ens", 1, 5, [*greedy, "--decoder", "ctranslate2"]),
    )
    assert "CTranslate2 decodes one model, not an ensemble of 2: decoding with Marian" in ensemble.stderr


def test_a_student_starts_from_the_teachers_embeddings_and_encoder(data, model, tmp_path):
    """experiment.student-init: teacher-encoder: the student's first weights are the teacher's embeddings and
    encoder (and the output bias that goes with tied embeddings); its SSRU decoder starts from scratch."""
    import numpy as np

    aligned = ["--alignments", data / "corpus" / "corpus.aln.zst"]
    init = ["--student-init", "teacher-encoder", "--teachers", model, *aligned]
    initialized, scratch = tmp_path / "init", tmp_path / "scratch"
    run_step(TRAIN, train_args(data, initialized, "student", updates=2, extra=init, **{"learn-rate": 1e-7}))
    # Another seed: with the teacher's, Marian's random start would be the micro teacher's own (barely trained).
    scratch_args = [*aligned, "--seed", "2"]
    run_step(
        TRAIN, train_args(data, scratch, "student", updates=2, extra=scratch_args, **{"learn-rate": 1e-7})
    )
    with (
        np.load(model / "final.model.npz") as teacher,
        np.load(initialized / "final.model.npz") as student,
        np.load(scratch / "final.model.npz") as random_student,
    ):
        shared = [name for name in teacher.files if name == "Wemb" or name.startswith("encoder_")]
        assert len(shared) > 10 and "decoder_ff_logit_out_b" in student.files
        for name in [*shared, "decoder_ff_logit_out_b"]:
            np.testing.assert_allclose(student[name], teacher[name], atol=1e-5, err_msg=name)
            if teacher[name].shape[0] > 1:  # a matrix (biases and layer norms start at 0 and 1 alike)
                assert not np.allclose(random_student[name], teacher[name], atol=1e-3), name
        # The teacher's transformer decoder is not carried over: the student's model holds its own decoder only.
        assert not [name for name in student.files if name.startswith("decoder_l1_self")]
        assert [name for name in student.files if name.startswith("decoder_l1_rnn")]
    summary = json.loads((initialized / "training.json").read_text())
    assert summary["initialized_from"] == {"embeddings and encoder": str(model)}
    assert not (initialized / "corpus").exists()


def test_a_student_whose_encoder_differs_from_the_teachers_is_refused_naming_the_options(
    data, model, tmp_path
):
    init = ["--student-init", "teacher-encoder", "--alignments", data / "corpus" / "corpus.aln.zst"]
    out = tmp_path / "heads"
    other = {"transformer-heads": 4, "transformer-ffn-activation": "swish"}
    result = run_step(
        TRAIN, train_args(data, out, "student", extra=[*init, "--teachers", model], **other), check=False
    )
    assert_fails_cleanly(result, out, "transformer-heads: 4 (the teacher's: 2)")
    assert "transformer-ffn-activation: 'swish' (the teacher's: 'relu')" in result.stderr
    assert "experiment.student-init: random" in result.stderr
    result = run_step(TRAIN, train_args(data, tmp_path / "none", "student", extra=init), check=False)
    assert_fails_cleanly(result, tmp_path / "none", "give --teachers")
    not_a_model = tmp_path / "teacher.npz"
    not_a_model.write_bytes(b"not a model")
    out = tmp_path / "bad"
    result = run_step(
        TRAIN, train_args(data, out, "student", extra=[*init, "--teachers", not_a_model]), check=False
    )
    assert_fails_cleanly(result, out, "is not a Marian model")
    out = tmp_path / "teacher"
    result = run_step(TRAIN, train_args(data, out, extra=["--student-init", "teacher-encoder", "--teachers", model]),
                      check=False)  # fmt: skip
    assert_fails_cleanly(result, out, "starts a student's training")
