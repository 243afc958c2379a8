"""The data funnel: per dataset, imported -> removed by each stage -> kept, as JSON, SVG and a report section."""

import json
import xml.etree.ElementTree as ET

from conftest import run_step
from pipeline.eval.funnel import build_funnel, funnel_section, funnel_svg

IMPORTED = [
    {"dataset": "opus_A/v1", "langs": ["en", "fr"], "lines": 1000},
    {"dataset": "local_test", "langs": ["en", "fr"], "lines": 50},  # a test set: not in the funnel
    {"dataset": "hplt_mono/v3.0", "langs": ["en"], "lines": 400},
    {"dataset": "hplt_mono/v3.0", "langs": ["fr"], "lines": 300},
]
CLEANED = [
    {"dataset": "opus_A/v1", "lines_in": 1000, "lines_out": 900, "removed": {"langid": 60, "max_length": 40},
     "lengths": {"src": {"5": 900}, "trg": {"8": 900}}},
    {"dataset": "hplt_mono/v3.0", "lang": "en", "lines_in": 400, "lines_out": 350, "removed": {"alpha_ratio": 50}},
    {"dataset": "hplt_mono/v3.0", "lang": "fr", "lines_in": 300, "lines_out": 0, "removed": {"langid": 300},
     "warning": "no line of 300 survived cleaning"},
]  # fmt: skip
MERGED = [
    {"datasets": [{"dataset": "opus_A/v1", "lines": 900, "duplicates_exact": 30, "duplicates_normalized": 20,
                   "in_parallel_corpus": 0, "decontaminated": 5, "capped": 45, "kept": 800}]},
    {"lang": "en", "datasets": [{"dataset": "hplt_mono/v3.0", "lines": 350, "duplicates_exact": 10,
                                 "duplicates_normalized": 0, "in_parallel_corpus": 15, "decontaminated": 0,
                                 "capped": 0, "kept": 325}]},
    {"lang": "fr", "datasets": [{"dataset": "hplt_mono/v3.0", "lines": 0, "duplicates_exact": 0,
                                 "duplicates_normalized": 0, "in_parallel_corpus": 0, "decontaminated": 0,
                                 "capped": 0, "kept": 0}]},
]  # fmt: skip


def test_the_funnel_adds_up_per_dataset():
    funnel = build_funnel(IMPORTED, CLEANED, MERGED)
    rows = {(r["dataset"], tuple(r["langs"])): r for r in funnel["datasets"]}
    assert len(rows) == 3, "test sets are not training data"
    parallel = rows[("opus_A/v1", ("en", "fr"))]
    assert (
        parallel["cleaning"],
        parallel["duplicates"],
        parallel["decontamination"],
        parallel["cap"],
        parallel["kept"],
    ) == (100, 50, 5, 45, 800)
    assert (
        parallel["imported"]
        == parallel["cleaning"]
        + parallel["duplicates"]
        + parallel["decontamination"]
        + parallel["cap"]
        + parallel["kept"]
    )
    mono_en = rows[("hplt_mono/v3.0", ("en",))]
    assert (mono_en["cleaning"], mono_en["in parallel corpus"], mono_en["kept"]) == (50, 15, 325)
    assert rows[("hplt_mono/v3.0", ("fr",))]["warning"] == "no line of 300 survived cleaning"
    assert funnel["totals"]["imported"] == 1700 and funnel["totals"]["kept"] == 1125


def test_the_chart_is_valid_svg_and_the_section_has_a_row_per_dataset():
    funnel = build_funnel(IMPORTED, CLEANED, MERGED)
    svg = ET.fromstring(funnel_svg(funnel))
    assert svg.tag.endswith("svg")
    assert any("opus_A/v1" in (t.text or "") for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    section = "\n".join(funnel_section(funnel))
    assert "![data funnel](funnel.svg)" in section
    assert "| opus_A/v1 | 1,000 | 100 | 0 | 0 | 50 | 0 | 5 | 45 | 800 |" in section
    assert "Warning: hplt_mono/v3.0: no line of 300 survived cleaning." in section


def test_the_report_writes_the_funnel(tmp_path):
    files = {
        "imported.json": IMPORTED[0], "test.json": IMPORTED[1], "mono-en.json": IMPORTED[2],
        "cleaned.json": CLEANED[0], "mono-cleaned.json": CLEANED[1], "merged.json": {**MERGED[0], "lines_in": 900, "duplicates": 50, "capped": 45, "lines_out": 800},
        "mono-merged.json": MERGED[1], "devset.json": {"datasets": [], "lines_out": 10},
        "metrics.json": {"dataset": "local_test", "model_dir": "m", "sentences": 1, "bleu": 1, "chrf": 2, "copy_source": {"bleu": 0, "chrf": 0}},
    }  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    out = tmp_path / "report"
    run_step(
        "pipeline.eval.report",
        ["--experiment", "x", "--src", "en", "--trg", "fr",
         "--imported", tmp_path / "imported.json", tmp_path / "test.json", tmp_path / "mono-en.json",
         "--cleaned", tmp_path / "cleaned.json", "--merged", tmp_path / "merged.json", "--devset", tmp_path / "devset.json",
         "--evaluations", tmp_path / "metrics.json", "--mono-cleaned", tmp_path / "mono-cleaned.json",
         "--mono-merged", tmp_path / "mono-merged.json", "--output-dir", out],
    )  # fmt: skip
    funnel = json.loads((out / "funnel.json").read_text())
    assert [r["dataset"] for r in funnel["datasets"]] == ["opus_A/v1", "hplt_mono/v3.0"]
    assert (out / "funnel.svg").read_text().startswith("<svg")
    assert "## Data funnel" in (out / "report.md").read_text()


def test_bicleaner_removals_have_their_own_column():
    funnel = build_funnel(
        IMPORTED, CLEANED, MERGED, [{"dataset": "opus_A/v1", "removed": 30, "lines_out": 870}]
    )
    row = next(r for r in funnel["datasets"] if r["dataset"] == "opus_A/v1")
    assert row["bicleaner"] == 30 and funnel["totals"]["bicleaner"] == 30
