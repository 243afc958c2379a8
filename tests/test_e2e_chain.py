"""The whole model chain through the local engine on the micro config (tests/configs/micro.yml): backward
model, back-translation in chunks, an ensemble of two OpusTrainer teachers, distillation with the n-best pick,
cross-entropy filtering, word alignments, the student with guided alignment and its fine-tuning, and the
evaluations. Tiny models: the test checks the data flow and the artifacts, not quality."""

import json
import os
import subprocess

import pytest
import yaml
from last_mile import check_last_mile

from conftest import REPO_ROOT, communicate, read_corpus, start_localrun

MICRO = REPO_ROOT / "tests" / "configs" / "micro.yml"
ENGINE_TIMEOUT = 1500
# The engine run, then bergamot-translator's npm install and translation (600 s each, tests/bergamot.py), with a
# margin: above the global 1,800 s, which would stop the test before its subprocesses' own timeouts
# (tests/test_test_suite.py checks it).
TEST_TIMEOUT = ENGINE_TIMEOUT + 2 * 600 + 300


def run(config: dict, tmp_path, timeout=ENGINE_TIMEOUT) -> str:
    path = tmp_path / "micro.yml"
    path.write_text(yaml.safe_dump(config))
    process = start_localrun(path, tmp_path / "runs", stderr=subprocess.PIPE)
    stdout, stderr = communicate(process, timeout)
    assert process.returncode == 0, stdout[-5000:] + stderr[-5000:]
    return stdout + stderr  # the engine's job lines are on stderr


def artifacts(tmp_path, label):
    return tmp_path / "runs" / "micro" / label / "artifacts"


def check_distilled_corpus(tmp_path):
    """Backward model, back-translation, teachers, distillation and the cross-entropy filter."""
    mono_trg = read_corpus(artifacts(tmp_path, "corpus-merge-mono-trg-fr") / "corpus.fr.zst")
    backtranslated = artifacts(tmp_path, "backtranslations-mono-trg-dechunk-translations-en-fr")
    assert read_corpus(backtranslated / "corpus.fr.zst") == mono_trg
    # 300 lines read, fewer after cleaning, dedupe and decontamination.
    assert len(read_corpus(backtranslated / "corpus.en.zst")) == len(mono_trg) > 250
    for member in (1, 2):
        teacher = artifacts(tmp_path, f"train-teacher-en-fr-{member}")
        curriculum = yaml.safe_load((teacher / "config.opustrainer.yml").read_text())
        assert curriculum["stages"] == ["pretrain", "finetune"] and curriculum["seed"] == member
        assert "backtranslated" in curriculum["datasets"]
    parallel = artifacts(tmp_path, "distillation-parallel-src-dechunk-translations-en-fr")
    merged = read_corpus(artifacts(tmp_path, "corpus-merge-parallel-en-fr") / "corpus.en.zst")
    assert read_corpus(parallel / "corpus.en.zst") == merged
    assert len(read_corpus(parallel / "corpus.fr.zst")) == len(merged)
    filtered = artifacts(tmp_path, "distillation-corpus-final-filtering-en-fr")
    stats = json.loads((filtered / "stats.json").read_text())
    distilled = json.loads(
        (artifacts(tmp_path, "corpus-merge-distillation-en-fr") / "stats.json").read_text()
    )
    assert stats["lines_in"] == distilled["lines_out"]
    assert stats["removed"] == int(stats["lines_in"] * 0.1)
    assert len(read_corpus(filtered / "corpus.fr.zst")) == stats["lines_out"]


@pytest.mark.e2e
@pytest.mark.timeout(TEST_TIMEOUT)
def test_micro_chain_trains_and_finetunes_a_student(tmp_path):
    """The whole chain in one run (CI time): the distilled corpus, then the student and its last mile. With one
    vocabulary per language (spm-vocab-split), which every model, the shortlist, the int8 model and the export
    carry through to Firefox's engine; the shared vocabulary's chain is the demo's (tests/test_e2e.py)."""
    config = yaml.safe_load(MICRO.read_text())
    config["experiment"]["spm-vocab-split"] = True
    output = run(config, tmp_path)
    vocab = artifacts(tmp_path, "build-vocab-en-fr")
    assert sorted(p.name for p in vocab.glob("*.spm")) == ["vocab.en.spm", "vocab.fr.spm"]
    backward = yaml.safe_load(
        (
            artifacts(tmp_path, "backtranslations-train-backwards-model-en-fr")
            / "final.model.npz.decoder.yml"
        ).read_text()
    )
    assert backward["vocabs"] == ["vocab.fr.spm", "vocab.en.spm"]  # its direction, fr -> en
    check_distilled_corpus(tmp_path)
    student = artifacts(tmp_path, "distillation-student-model-train-en-fr")
    finetuned = artifacts(tmp_path, "distillation-student-model-finetune-en-fr")
    for folder in (student, finetuned):
        assert (folder / "final.model.npz").stat().st_size > 10_000
        log = (folder / "train.log").read_text()
        assert "[config] guided-alignment: 2" in log and "[config] dec-cell: ssru" in log
    assert "[config] quantize-bits: 8" in (finetuned / "train.log").read_text()
    for label in (
        "evaluate-backwards-fr-en-local_data_l10n_en_fr_test",
        "evaluate-teacher-ensemble-en-fr-local_data_l10n_en_fr_test",
    ):
        metrics = json.loads((artifacts(tmp_path, label) / "metrics.json").read_text())
        assert metrics["sentences"] > 0 and "chrf" in metrics
    assert "distillation-student-model-finetune-en-fr" in output
    # The two teachers are ready together and share the cores (localrun.plan.task_threads); the backward model
    # trains alone on all of them.
    cores = len(os.sched_getaffinity(0))
    for member in (1, 2):
        assert f"Running train-teacher-en-fr-{member} ({max(1, cores // 2)} threads)" in output
    assert f"Running backtranslations-train-backwards-model-en-fr ({cores} threads)" in output
    # Shortlist, int8, evaluations, export (loaded in bergamot-translator under node) and the report.
    check_last_mile(tmp_path / "runs" / "micro", "local_data_l10n_en_fr_test")
