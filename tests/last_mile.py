"""Checks of a finished run's last mile (shortlist, int8, evaluations, export, report), shared by the
end-to-end tests: the exported files load and translate in bergamot-translator under node."""

import hashlib
import json
import shutil
import warnings
from pathlib import Path

from bergamot import bergamot_package, bergamot_translate

from conftest import read_corpus


def check_last_mile(run_dir: Path, test_slug: str, src: str = "en", trg: str = "fr"):
    def artifacts(label):
        return run_dir / label / "artifacts"

    pair = f"{src}{trg}"
    quantized = artifacts(f"distillation-student-model-quantize-{src}-{trg}")
    assert (quantized / "final.model.intgemm8.bin").stat().st_size > 0
    shortlist = artifacts(f"distillation-corpus-build-shortlist-{src}-{trg}")
    assert read_corpus(shortlist / "lex.s2t.zst")
    export = artifacts(f"export-{src}-{trg}")
    metadata = json.loads((export / "metadata.json").read_text())
    model = export / f"model.{pair}.intgemm8.bin"
    assert metadata["files"][model.name]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert metadata["sourceLanguage"] == src and metadata["targetLanguage"] == trg
    quantized_metrics = json.loads(
        (artifacts(f"evaluate-quantized-{src}-{trg}-{test_slug}") / "metrics.json").read_text()
    )
    assert metadata["metrics"][quantized_metrics["dataset"]]["chrf"] == quantized_metrics["chrf"]

    report = json.loads((artifacts(f"report-{src}-{trg}") / "report.json").read_text())
    (rows,) = report["gaps"].values()
    assert [row["model"] for row in rows] == ["teacher-ensemble", "student", "student-finetuned", "quantized"]
    assert all(row["words_per_second"] for row in rows)
    curves = {curve["model"] for curve in report["training_curves"]}
    assert f"distillation-student-model-finetune-{src}-{trg}" in curves
    assert f"backtranslations-train-backwards-model-{src}-{trg}" in curves
    # The local engine hands the report each stage's seconds against preflight's estimate.
    stages = {row["stage"]: row for row in report["stage_times"]["stages"]}
    assert stages["train-teacher-model"]["finished"] == stages["train-teacher-model"]["tasks"]
    assert stages["distillation-student-model-train"]["actual_s"] > 0
    assert "report" not in stages
    assert "## Time per stage" in (artifacts(f"report-{src}-{trg}") / "report.md").read_text()

    if not shutil.which("npm"):
        warnings.warn("npm is not installed: the export was not loaded in bergamot-translator", stacklevel=2)
        return
    test_set = artifacts(f"dataset-{test_slug}-{src}-{trg}") / f"corpus.{src}.zst"
    sources = read_corpus(test_set)[:50]
    # One vocabulary per language (spm-vocab-split): srcvocab and trgvocab, both handed to the engine.
    split = (export / f"srcvocab.{pair}.spm").exists()
    vocabs = [f"srcvocab.{pair}.spm.gz", f"trgvocab.{pair}.spm.gz"] if split else [f"vocab.{pair}.spm.gz"]
    assert all(name.removesuffix(".gz") in metadata["files"] for name in vocabs)
    result = bergamot_translate(
        bergamot_package(), sources, export / f"{model.name}.gz", export / vocabs[0],
        export / f"lex.50.50.{pair}.s2t.bin.gz", trg_vocab=export / vocabs[1] if split else None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.splitlines()) == len(sources)
