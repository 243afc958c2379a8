"""int8 quantization, evaluation of every kind of model, the export Firefox loads, and the run report, on
models trained in the tests (a transformer teacher and an SSRU-decoder student that learns 300 short
pairs by heart in a minute of CPU)."""

import gzip
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import test_comet
import yaml
from bergamot import bergamot_package, bergamot_translate
from test_alignments import kill_when

from conftest import (
    REPO_ROOT,
    build_vocab,
    read_corpus,
    run_step,
    sample_pairs,
    step_env,
    tree_digest,
    write_corpus,
)

ALIGN = "pipeline.alignments.align"
SHORTLIST = "pipeline.alignments.shortlist"
QUANTIZE = "pipeline.quantize.quantize"
EVALUATE = "pipeline.eval.evaluate"
EXPORT = "pipeline.export.export"
REPORT = "pipeline.eval.report"

SMALL = {"dim-emb": 128, "transformer-dim-ffn": 256, "enc-depth": 2, "mini-batch": 32, "disp-freq": 100}
# The student presets' decoder: one SSRU layer (Firefox's students).
SSRU = {"transformer-decoder-autoreg": "rnn", "dec-cell": "ssru", "dec-depth": 1}


def train(tmp, name, corpus, vocab, options):
    """A model folder as the training step writes it (final.model.npz, its decoder config, vocab.spm,
    train.log, valid.log), trained by plain Marian on the corpus files: these tests need a model that
    learns 300 pairs by heart in a minute, which OpusTrainer's streamed, augmented batches do not give."""
    out = tmp / name
    out.mkdir(parents=True)
    texts = {}
    for lang in ("en", "fr"):
        texts[lang] = out / f"corpus.{lang}"
        texts[lang].write_text("\n".join(read_corpus(corpus / f"corpus.{lang}.zst")) + "\n", encoding="utf-8")
    shutil.copyfile(vocab, out / "vocab.spm")
    preset = yaml.safe_load(
        (REPO_ROOT / "pipeline" / "train" / "configs" / "model" / "teacher.tiny.yml").read_text()
    )
    config = {
        **preset, **options,
        "model": str(out / "model.npz"), "train-sets": [str(texts["en"]), str(texts["fr"])],
        "vocabs": [str(out / "vocab.spm")] * 2, "valid-sets": [str(texts["en"]), str(texts["fr"])],
        "valid-metrics": ["chrf", "ce-mean-words"], "log": str(out / "train.log"), "valid-log": str(out / "valid.log"),
        "keep-best": True, "seed": 1, "cpu-threads": 1, "workspace": 1000, "quiet-translation": True,
    }  # fmt: skip
    (out / "train.yml").write_text(yaml.safe_dump(config))
    subprocess.run(
        [str(Path(sys.executable).parent / "pymarian"), "-c", str(out / "train.yml")],
        check=True,
        capture_output=True,
    )
    shutil.copyfile(out / "model.npz.best-chrf.npz", out / "final.model.npz")
    decoder = {
        "relative-paths": True,
        "models": ["final.model.npz"],
        "vocabs": ["vocab.spm", "vocab.spm"],
        "beam-size": 2,
    }
    (out / "final.model.npz.decoder.yml").write_text(yaml.safe_dump(decoder))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    pairs = [(s, t) for s, t in sample_pairs(3000) if 3 <= len(s.split()) <= 12][:300]
    corpus = tmp / "corpus"
    write_corpus(corpus / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(corpus / "corpus.fr.zst", [t for _, t in pairs])
    build_vocab(corpus, tmp / "vocab", 400)
    vocab = tmp / "vocab" / "vocab.spm"
    fast = {"learn-rate": 0.003, "lr-warmup": 100, "label-smoothing": 0, "valid-freq": 250, "save-freq": 250}
    student = train(tmp, "student", corpus, vocab, {**SMALL, **SSRU, **fast, "after": "500u"})
    teacher = train(
        tmp, "teacher", corpus, vocab, {**SMALL, **fast, "dim-emb": 64, "after": "100u", "valid-freq": 100}
    )
    run_step(ALIGN, ["--corpus-dir", corpus, "--src", "en", "--trg", "fr", "--output-dir", tmp / "aln"])
    run_step(
        SHORTLIST,
        ["--corpus-dir", corpus, "--alignments", tmp / "aln" / "corpus.aln.zst", "--vocab", vocab,
         "--src", "en", "--trg", "fr", "--output-dir", tmp / "shortlist"],
    )  # fmt: skip
    shortlist = tmp / "shortlist" / "lex.50.50.s2t.bin"
    quantized = tmp / "quantized"
    run_step(QUANTIZE, ["--model-dir", student, "--shortlist", shortlist, "--output-dir", quantized])
    return {
        "tmp": tmp, "pairs": pairs, "corpus": corpus, "vocab": vocab, "student": student, "teacher": teacher,
        "shortlist": shortlist, "quantized": quantized,
    }  # fmt: skip


def quantize_args(models, out):
    return ["--model-dir", models["student"], "--shortlist", models["shortlist"], "--output-dir", out]


def test_quantize_writes_a_model_folder_that_decodes(models):
    from pipeline.export.marian_binary import read_items

    out = models["quantized"]
    assert sorted(p.name for p in out.iterdir()) == [
        "final.model.intgemm8.bin", "final.model.intgemm8.bin.decoder.yml", "lex.50.50.s2t.bin", "vocab.spm",
    ]  # fmt: skip
    items = read_items((out / "final.model.intgemm8.bin").read_bytes())
    types = {item.name: item.type_id for item in items}
    assert types["encoder_l1_self_Wq"] == 0x10001  # upstream Marian's int8 tag
    assert any(name.startswith("decoder_l1_rnn") for name in types)  # the SSRU decoder
    assert (out / "final.model.intgemm8.bin").stat().st_size < 0.7 * (
        models["student"] / "final.model.npz"
    ).stat().st_size
    again = run_step(QUANTIZE, quantize_args(models, out))
    assert "nothing to do" in again.stderr


def test_quantize_refuses_a_folder_without_a_model(models, tmp_path):
    out = tmp_path / "out"
    result = run_step(
        QUANTIZE,
        ["--model-dir", tmp_path, "--shortlist", models["shortlist"], "--output-dir", out],
        check=False,
    )
    assert result.returncode == 1 and "final.model.npz does not exist" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_quantize_rerun_after_kill_9_gives_the_same_outputs(models, tmp_path):
    out = tmp_path / "out"
    assert kill_when(QUANTIZE, quantize_args(models, out), (out / ".work").exists) == -signal.SIGKILL
    run_step(QUANTIZE, quantize_args(models, out))
    digest = {k: v[0] for k, v in tree_digest(out).items()}
    assert digest == {k: v[0] for k, v in tree_digest(models["quantized"]).items()}


def evaluate(models, out, *model_dirs, name=None, dataset_dir=None):
    args = [
        "--model-dir",
        *model_dirs,
        "--dataset-dir",
        dataset_dir or models["corpus"],
        "--dataset",
        "memorized",
    ]
    args += ["--src", "en", "--trg", "fr", "--output-dir", out] + (["--model-name", name] if name else [])
    run_step(EVALUATE, args)
    assert sorted(p.name for p in out.iterdir()) == [
        "decode.log",
        "metrics.json",
        "speed.json",
        "translation.fr.zst",
    ]
    # metrics.json is reproducible; the timings are apart in speed.json.
    return {
        **json.loads((out / "metrics.json").read_text()),
        "speed": json.loads((out / "speed.json").read_text()),
    }


@pytest.fixture(scope="module")
def evaluations(models):
    tmp = models["tmp"] / "evaluations"
    return {
        "teacher-1": evaluate(models, tmp / "teacher", models["teacher"], name="teacher-1"),
        "teacher-ensemble": evaluate(
            models, tmp / "ensemble", models["teacher"], models["student"], name="teacher-ensemble"
        ),
        "student": evaluate(models, tmp / "student", models["student"], name="student"),
        "quantized": evaluate(models, tmp / "quantized", models["quantized"], name="quantized"),
    }


def test_evaluate_scores_every_kind_of_model(models, evaluations):
    student, quantized = evaluations["student"], evaluations["quantized"]
    assert student["chrf"] > 80  # it learnt the corpus by heart
    assert quantized["chrf"] > student["chrf"] - 10
    assert quantized["models"] == ["final.model.intgemm8.bin"]
    assert evaluations["teacher-ensemble"]["models"] == ["final.model.npz", "final.model.npz"]
    assert evaluations["teacher-ensemble"]["model_dir"] == f"{models['teacher']}, {models['student']}"
    for metrics in evaluations.values():
        assert metrics["comet"] is None and "no COMET model" in metrics["comet_skipped"]
        speed = metrics["speed"]
        assert speed["threads"] == 1 and speed["source_words"] == sum(
            len(s.split()) for s, _ in models["pairs"]
        )
        assert speed["words_per_second"] > 0 and speed["cpu_seconds"] > 0
    assert quantized["model_bytes"] == (models["quantized"] / "final.model.intgemm8.bin").stat().st_size
    assert evaluations["teacher-ensemble"]["model_bytes"] == (
        (models["teacher"] / "final.model.npz").stat().st_size
        + (models["student"] / "final.model.npz").stat().st_size
    )


def test_evaluate_refuses_ensembles_of_different_vocabularies(models, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(models["teacher"], other)
    (other / "vocab.spm").write_bytes(b"another vocabulary")
    out = tmp_path / "out"
    args = ["--model-dir", models["teacher"], other, "--dataset-dir", models["corpus"], "--dataset", "x"]
    result = run_step(EVALUATE, [*args, "--src", "en", "--trg", "fr", "--output-dir", out], check=False)
    assert result.returncode == 1 and "must share their vocabularies" in result.stderr
    missing_comet = [
        *args[:2],
        *args[3:],
        "--src",
        "en",
        "--trg",
        "fr",
        "--comet-model",
        tmp_path / "nope.ckpt",
    ]
    result = run_step(EVALUATE, [*missing_comet, "--output-dir", out], check=False)
    assert result.returncode == 1 and "experiment.comet-optional: true skips COMET instead" in result.stderr
    assert f"COMET model {tmp_path / 'nope.ckpt'} does not exist" in result.stderr
    assert not (out / "metrics.json").exists()
    result = run_step(EVALUATE, [*missing_comet, "--comet-optional", "true", "--output-dir", out])
    assert "COMET skipped: COMET model" in result.stderr and "does not exist" in result.stderr


@pytest.mark.skipif(not test_comet.PYTHON.exists(), reason="COMET's environment .venv-comet/ is absent")
def test_evaluate_scores_comet_with_a_local_model(models, tmp_path):
    """The evaluation step with COMET_MODEL and COMET_ENCODER set, as a run hands them to it: the int8 student's
    translations scored by a tiny COMET model in COMET's own environment, offline."""
    comet_model = test_comet.build_tiny_comet_model(tmp_path / "comet")
    out = tmp_path / "out"
    args = ["--model-dir", models["quantized"], "--dataset-dir", models["corpus"], "--dataset", "memorized"]
    env = step_env(
        COMET_MODEL=str(comet_model / "checkpoints" / "model.ckpt"),
        COMET_ENCODER=str(comet_model / "encoder"),
    )
    run_step(EVALUATE, [*args, "--src", "en", "--trg", "fr", "--output-dir", out], env=env)
    metrics = json.loads((out / "metrics.json").read_text())
    assert isinstance(metrics["comet"], float) and metrics["comet_skipped"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "comet.log", "decode.log", "metrics.json", "speed.json", "translation.fr.zst",
    ]  # fmt: skip


def float_binary() -> bytes:
    """A valid Marian binary model with one float32 matrix `W` of two values."""
    header = struct.pack("<QQ", 1, 1) + struct.pack("<QQQQ", 2, 0x0404, 1, 8) + b"W\0" + struct.pack("<i", 2)
    return header + struct.pack("<Q", 0) + struct.pack("<2f", 1.0, 2.0)


def export_args(models, out, metrics=()):
    return [
        "--model-dir", models["quantized"], "--src", "en", "--trg", "fr", "--architecture", "tiny",
        "--metrics", *metrics, "--config-experiment", json.dumps({"name": "x", "src": "en", "trg": "fr"}),
        "--config-datasets", json.dumps({"test": ["local_x"]}),
        "--output-dir", out,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def exported(models, evaluations):
    out = models["tmp"] / "export"
    run_step(EXPORT, export_args(models, out, [models["tmp"] / "evaluations" / "quantized" / "metrics.json"]))
    return out


def test_export_writes_firefox_files_and_metadata(models, exported):
    from pipeline.export.marian_binary import read_items

    names = ["model.enfr.intgemm8.bin", "lex.50.50.enfr.s2t.bin", "vocab.enfr.spm"]
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        names + [n + ".gz" for n in names] + ["metadata.json"]
    )
    for name in names:
        assert gzip.decompress((exported / f"{name}.gz").read_bytes()) == (exported / name).read_bytes()
    assert (exported / "vocab.enfr.spm").read_bytes() == models["vocab"].read_bytes()
    source = read_items((models["quantized"] / "final.model.intgemm8.bin").read_bytes())
    target = read_items((exported / "model.enfr.intgemm8.bin").read_bytes())
    assert [(i.name, i.shape) for i in source] == [(i.name, i.shape) for i in target]
    assert {i.type_id for i in target} == {0x4101, 0x0404, 0x0101}  # browsermt int8, float32, the yml
    original = (models["quantized"] / "final.model.intgemm8.bin").read_bytes()
    changed = [
        n
        for n, (a, b) in enumerate(
            zip(original, (exported / "model.enfr.intgemm8.bin").read_bytes(), strict=True)
        )
        if a != b
    ]
    assert changed and all(
        any(i.header_offset + 8 <= n < i.header_offset + 16 for i in target) for n in changed
    )

    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["sourceLanguage"] == "en" and metadata["targetLanguage"] == "fr"
    assert metadata["architecture"] == "tiny" and metadata["precision"] == "int8shiftAll"
    model_file = metadata["files"]["model.enfr.intgemm8.bin"]
    assert (
        model_file["sha256"]
        == hashlib.sha256((exported / "model.enfr.intgemm8.bin").read_bytes()).hexdigest()
    )
    assert (
        model_file["bytes"] == metadata["byteSize"] == (exported / "model.enfr.intgemm8.bin").stat().st_size
    )
    assert metadata["metrics"]["memorized"]["chrf"] > 70
    stats = metadata["modelStatistics"]
    assert (
        stats["parameters"]
        == stats["encoder_parameters"] + stats["decoder_parameters"] + stats["embeddings_parameters"]
    )
    sections = {
        "experiment": {"name": "x", "src": "en", "trg": "fr"},
        "datasets": {"test": ["local_x"]},
        "marian-args": {},
    }
    canonical = json.dumps(sections, sort_keys=True, separators=(",", ":"))
    assert metadata["trainingConfigDigest"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert metadata["experiment"] == "x"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert metadata["source"]["commit"] == head


def test_export_refuses_bad_input(models, tmp_path):
    out = tmp_path / "out"
    result = run_step(
        EXPORT, [*export_args(models, out)[:1], models["student"], *export_args(models, out)[2:]], check=False
    )
    assert result.returncode == 1 and "no quantized model" in result.stderr
    bad_metrics = tmp_path / "metrics.json"
    bad_metrics.write_text('{"something": "else"}')
    result = run_step(EXPORT, export_args(models, out, [bad_metrics]), check=False)
    assert result.returncode == 1 and "is not the metrics.json of an evaluation" in result.stderr
    not_quantized = tmp_path / "float"
    shutil.copytree(models["quantized"], not_quantized)
    (not_quantized / "final.model.intgemm8.bin").write_bytes(float_binary())
    result = run_step(
        EXPORT, [*export_args(models, out)[:1], not_quantized, *export_args(models, out)[2:]], check=False
    )
    assert result.returncode == 1 and "no intgemm matrices to retag" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_export_refuses_a_pre_norm_model_that_firefox_translates_into_garbage(models, tmp_path):
    # Measured with bergamot-translator 0.4.9: a pre-norm student loads and translates unrelated text.
    pre_norm = {
        "transformer-preprocess": "n",
        "transformer-postprocess": "da",
        "transformer-postprocess-top": "n",
    }
    student = train(
        tmp_path, "pre-norm", models["corpus"], models["vocab"],
        {**SMALL, **SSRU, **pre_norm, "dim-emb": 64, "after": "10u", "valid-freq": 10, "save-freq": 10},
    )  # fmt: skip
    quantized = tmp_path / "quantized"
    run_step(
        QUANTIZE, ["--model-dir", student, "--shortlist", models["shortlist"], "--output-dir", quantized]
    )
    out = tmp_path / "out"
    result = run_step(
        EXPORT, [*export_args(models, out)[:1], quantized, *export_args(models, out)[2:]], check=False
    )
    assert result.returncode == 1, result.stderr
    assert (
        "a pre-norm transformer (transformer-preprocess: n, transformer-postprocess-top: n)" in result.stderr
    )
    assert "Traceback" not in result.stderr and not out.exists()


def test_retag_refuses_a_truncated_or_float_model(models, tmp_path):
    from pipeline.common.step import StepError
    from pipeline.export.marian_binary import retag_for_browsermt

    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes((models["quantized"] / "final.model.intgemm8.bin").read_bytes()[:-100])
    with pytest.raises(StepError, match="truncated"):
        retag_for_browsermt(truncated, tmp_path / "x.bin")
    float_model = tmp_path / "float.bin"
    float_model.write_bytes(float_binary())
    with pytest.raises(StepError, match="no intgemm matrices"):
        retag_for_browsermt(float_model, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_export_rerun_after_kill_9_gives_the_same_outputs(models, exported, tmp_path):
    out = tmp_path / "out"
    metrics = [models["tmp"] / "evaluations" / "quantized" / "metrics.json"]
    first = out / "model.enfr.intgemm8.bin"
    status = kill_when(EXPORT, export_args(models, out, metrics), lambda: out.exists())
    assert status == -signal.SIGKILL
    assert not (out / "metadata.json").exists() or first.exists()
    run_step(EXPORT, export_args(models, out, metrics))
    assert {k: v[0] for k, v in tree_digest(out).items()} == {
        k: v[0] for k, v in tree_digest(exported).items()
    }


@pytest.fixture(scope="module")
def bergamot():
    return bergamot_package()


def pymarian_decode(config, lines):
    result = subprocess.run(
        [str(Path(os.sys.executable).parent / "pymarian"), "decode", "-c", str(config), "--beam-size", "1",
         "--cpu-threads", "1", "--quiet"],
        input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.splitlines()


def test_firefox_engine_translates_the_export_like_pymarian(models, exported, bergamot):
    import sacrebleu

    sources = [s for s, _ in models["pairs"]]
    result = bergamot_translate(
        bergamot, sources, exported / "model.enfr.intgemm8.bin.gz", exported / "vocab.enfr.spm.gz",
        exported / "lex.50.50.enfr.s2t.bin.gz",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    translations = result.stdout.splitlines()
    assert len(translations) == len(sources)
    # The same int8 model decoded by pymarian (greedy, like Firefox): bergamot's int8 arithmetic and its
    # sentence splitting differ (measured between the two: chrF 83 to 95 from one trained model to another;
    # unrelated outputs score below 20).
    reference = pymarian_decode(models["quantized"] / "final.model.intgemm8.bin.decoder.yml", sources)
    assert sacrebleu.corpus_chrf(translations, [reference]).score > 75
    assert sacrebleu.corpus_chrf(translations, [[t for _, t in models["pairs"]]]).score > 80


def test_firefox_engine_refuses_pymarian_tags_but_loads_a_transformer_decoder(models, tmp_path, bergamot):
    sources = [s for s, _ in models["pairs"][:20]]
    # Without the retag, bergamot cannot read pymarian's int8 matrices.
    result = bergamot_translate(
        bergamot, sources, models["quantized"] / "final.model.intgemm8.bin", models["vocab"]
    )
    assert result.returncode != 0
    # A transformer decoder (the teacher's) quantizes, exports and translates too.
    quantized = tmp_path / "quantized"
    run_step(
        QUANTIZE,
        ["--model-dir", models["teacher"], "--shortlist", models["shortlist"], "--output-dir", quantized],
    )
    out = tmp_path / "export"
    run_step(EXPORT, [*export_args(models, out)[:1], quantized, *export_args(models, out)[2:]])
    result = bergamot_translate(
        bergamot,
        sources,
        out / "model.enfr.intgemm8.bin",
        out / "vocab.enfr.spm",
        out / "lex.50.50.enfr.s2t.bin",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.splitlines()) == len(sources)


def test_report_shows_the_gaps_and_training_curves(models, evaluations, tmp_path):
    stats = {
        "imported.json": {"dataset": "local_x", "langs": ["en", "fr"], "lines": 300},
        "cleaned.json": {"dataset": "local_x", "lines_in": 300, "lines_out": 300, "removed": {}},
        "merged.json": {"datasets": [], "lines_in": 300, "duplicates": 0, "capped": 0, "lines_out": 300},
        "devset.json": {"datasets": [], "lines_in": 300, "duplicates": 0, "capped": 0, "lines_out": 300},
    }
    for name, data in stats.items():
        (tmp_path / name).write_text(json.dumps(data))
    metrics = [
        models["tmp"] / "evaluations" / name / "metrics.json"
        for name in ("teacher", "ensemble", "student", "quantized")
    ]
    out = tmp_path / "report"
    run_step(
        REPORT,
        [
            "--experiment", "x", "--src", "en", "--trg", "fr",
            "--imported", tmp_path / "imported.json", "--cleaned", tmp_path / "cleaned.json",
            "--merged", tmp_path / "merged.json", "--devset", tmp_path / "devset.json",
            "--evaluations", *metrics, "--teacher-logs", models["teacher"] / "train.log", "--student-logs", models["student"] / "train.log", "--output-dir", out,
        ],
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    rows = {row["model"]: row for row in report["gaps"]["memorized"]}
    assert list(rows) == ["teacher-ensemble", "student", "quantized"]
    ensemble, quantized = evaluations["teacher-ensemble"], evaluations["quantized"]
    assert rows["quantized"]["chrf_gap"] == round(quantized["chrf"] - ensemble["chrf"], 2)
    assert rows["quantized"]["chrf_share"] == round(100 * quantized["chrf"] / ensemble["chrf"], 1)
    assert rows["quantized"]["speed_ratio"] == round(
        quantized["speed"]["words_per_second"] / ensemble["speed"]["words_per_second"], 2
    )
    curves = {c["model"]: c for c in report["training_curves"]}
    assert [p["update"] for p in curves["student"]["valid"]["chrf"]] == [250, 500]
    assert [p["update"] for p in curves["student"]["train"]] == [100, 200, 300, 400, 500]
    assert curves["student"]["train"][-1]["cost"] < curves["student"]["train"][0]["cost"]
    markdown = (out / "report.md").read_text()
    assert "### Teacher -> student -> int8 on memorized" in markdown
    assert f"| quantized | {quantized['bleu']} | {quantized['chrf']} |" in markdown
    assert "### student" in markdown and "| 500 |" in markdown


def test_speed_benchmark_compares_models_at_fixed_threads(models, tmp_path):
    out = tmp_path / "bench.json"
    result = run_step(
        "pipeline.eval.bench",
        ["--dataset-dir", models["corpus"], "--src", "en", "--trg", "fr", "--threads", 1, "--repeats", 1,
         "--models", f"ensemble={models['teacher']},{models['student']}", f"int8={models['quantized']}",
         "--output", out],
    )  # fmt: skip
    assert "300 sentences" in result.stdout and "int8" in result.stdout
    results = {r["model"]: r for r in json.loads(out.read_text())["results"]}
    assert results["ensemble"]["ratio_to_first"] == 1.0 and results["int8"]["words_per_second"] > 0
    assert results["int8"]["model_bytes"] < results["ensemble"]["model_bytes"]


def test_quantize_refuses_dimensions_int8_cannot_run(models, tmp_path):
    # 32-dim matrices convert, but Marian then crashes loading them (intgemm works on 64-row tiles).
    narrow = train(
        tmp_path, "narrow", models["corpus"], models["vocab"],
        {**SMALL, "dim-emb": 32, "transformer-dim-ffn": 64, "after": "1u", "valid-freq": 1},
    )  # fmt: skip
    out = tmp_path / "out"
    result = run_step(
        QUANTIZE,
        ["--model-dir", narrow, "--shortlist", models["shortlist"], "--output-dir", out],
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "cannot run in int8" in result.stderr and "multiples of 64" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
