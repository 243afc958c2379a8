"""The data funnel: for each dataset, how many lines were imported, removed by each cleaning filter, by
bicleaner or monocleaner, by deduplication, by test-set decontamination and by the cap, and how many were kept; with the
length histograms of the kept lines. Built from the `stats.json` of the import, clean and merge steps, written
as JSON and as an SVG chart, and shown as a section of the run report (pipeline/eval/report.py calls
`write_funnel` and `funnel_section`).
"""

from pathlib import Path

from pipeline.common.io import atomic_path, write_json

# Stages of the funnel, in order, with the colour each gets in the chart.
STAGES = [
    ("cleaning", "#e07b39"),
    ("bicleaner", "#c44e52"),
    ("monocleaner", "#b5a642"),
    ("duplicates", "#8172b3"),
    ("in parallel corpus", "#937860"),
    ("decontamination", "#da8bc3"),
    ("cap", "#8c8c8c"),
]
KEPT_COLOUR = "#55a868"


def _key(name, lang=None):
    """Datasets are told apart by name and, for monolingual ones, language (hplt_mono/v3.0 en and fr)."""
    return (name, lang)


def _by_dataset(stats: list[dict]) -> dict:
    return {_key(s.get("dataset"), s.get("lang")): s for s in stats if isinstance(s, dict)}


def build_funnel(
    imported: list[dict],
    cleaned: list[dict],
    merged: list[dict],
    bicleaned: list[dict] = (),
    monocleaned: list[dict] = (),
) -> dict:
    """{"datasets": [row per dataset], "totals": {...}}; `merged` holds the stats.json of each merge (parallel
    corpus, mono per side) whose `datasets` list carries the per-dataset dedupe/decontamination/cap counts."""
    cleaned_by, bicleaned_by, monocleaned_by = (
        _by_dataset(cleaned),
        _by_dataset(bicleaned),
        _by_dataset(monocleaned),
    )
    merged_by = {}
    for merge in merged:
        for entry in merge.get("datasets", []):
            merged_by[_key(entry.get("dataset"), merge.get("lang"))] = entry
    rows = []
    for record in imported:
        name = record.get("dataset")
        langs = record.get("langs") or []
        key = _key(name, langs[0] if len(langs) == 1 else None)
        clean = cleaned_by.get(key)
        if clean is None and key not in merged_by:
            continue  # devtest/test sets: not part of the training data
        merge = merged_by.get(key, {})
        bicleaner = bicleaned_by.get(key, {})
        row = {
            "dataset": name,
            "langs": record.get("langs"),
            "imported": record.get("lines", 0),
            "cleaning": sum((clean or {}).get("removed", {}).values()),
            "cleaning_by_filter": dict((clean or {}).get("removed", {})),
            "bicleaner": bicleaner.get("removed", 0),
            "monocleaner": monocleaned_by.get(key, {}).get("removed", 0),
            "duplicates": merge.get("duplicates_exact", 0) + merge.get("duplicates_normalized", 0),
            "duplicates_exact": merge.get("duplicates_exact", 0),
            "duplicates_normalized": merge.get("duplicates_normalized", 0),
            "in parallel corpus": merge.get("in_parallel_corpus", 0),
            "decontamination": merge.get("decontaminated", 0),
            "cap": merge.get("capped", 0),
            "kept": merge.get("kept", (clean or {}).get("lines_out", record.get("lines", 0))),
            "lengths": (clean or {}).get("lengths", {}),
        }
        if clean and clean.get("warning"):
            row["warning"] = clean["warning"]
        rows.append(row)
    totals = {key: sum(r[key] for r in rows) for key in ["imported", *(s for s, _ in STAGES), "kept"]}
    return {"datasets": rows, "totals": totals}


def funnel_svg(funnel: dict) -> str:
    """A horizontal bar per dataset: the kept lines, then each stage's removals (matplotlib, SVG)."""
    from pipeline.eval.charts import funnel_chart_svg

    return funnel_chart_svg(funnel, STAGES, KEPT_COLOUR)


def write_funnel(output_dir: Path, funnel: dict) -> None:
    write_json(output_dir / "funnel.json", funnel)
    with atomic_path(output_dir / "funnel.svg") as tmp:
        tmp.write_text(funnel_svg(funnel), encoding="utf-8")


def funnel_section(funnel: dict) -> list[str]:
    """The report's markdown section: the chart and one table row per dataset."""
    header = ["dataset", "imported", *(name for name, _ in STAGES), "kept"]
    lines = ["## Data funnel", "", "![data funnel](funnel.svg)", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    for row in [*funnel["datasets"], {"dataset": "**total**", **funnel["totals"]}]:
        lines.append(
            "| " + " | ".join(str(row[h]) if h == "dataset" else f"{row[h]:,}" for h in header) + " |"
        )
    lines.append("")
    filtered = [r for r in funnel["datasets"] if r.get("cleaning_by_filter")]
    if filtered:
        lines.append("Removed by each cleaning filter: " + "; ".join(
            f"{r['dataset']}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["cleaning_by_filter"].items()))
            for r in filtered
        ) + ".")  # fmt: skip
        lines.append("")
    for row in funnel["datasets"]:
        if row.get("warning"):
            lines.append(f"Warning: {row['dataset']}: {row['warning']}.")
    return lines
