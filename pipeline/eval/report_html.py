"""The run report as one self-contained HTML file: the report's sections (the Markdown of report.md, rendered),
with its charts embedded as SVG (pipeline/eval/charts.py): quality against speed and size per test set,
training curves per model family, the data funnel; and the run's provenance (experiment, languages, datasets,
the code's commit where the step runs from a git checkout)."""

import html
import re
import subprocess
from pathlib import Path

from pipeline.eval import charts

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { margin: 0.5em 0 1.5em; overflow-x: auto; }
code { background: #f3f3f3; padding: 0 0.2em; }
.provenance td { text-align: left; }
"""


def inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def markdown_to_html(lines: list[str], images: dict[str, str]) -> str:
    """The subset of Markdown report.md is written in: headings, tables, list items, paragraphs, and images,
    each replaced by its inline SVG from `images` (keyed by the image's file name)."""
    out, table = [], []

    def flush_table():
        if table:
            header, *rows = [[inline(c.strip()) for c in row.strip().strip("|").split("|")] for row in table]
            rows = [r for r in rows if not all(set(c) <= set("- ") for c in r)]
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in header) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
            out.append("</table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if match := re.match(r"(#{1,4}) (.*)", line):
            level = len(match.group(1))
            out.append(f"<h{level}>{inline(match.group(2))}</h{level}>")
        elif match := re.fullmatch(r"!\[(.*)\]\((.*)\)", line.strip()):
            svg = images.get(match.group(2))
            out.append(f"<figure>{svg}</figure>" if svg else f"<p>{inline(match.group(1))}</p>")
        elif line.startswith("- "):
            out.append(f"<ul><li>{inline(line[2:])}</li></ul>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    return "\n".join(out)


def code_commit() -> str:
    """The commit of the checkout this step runs from (with `+changes` when it has uncommitted edits), or
    'unknown' outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' +changes' if dirty else ''}"


def provenance(report: dict) -> str:
    rows = [
        ("experiment", report["experiment"]),
        ("languages", f"{report['src']} -> {report['trg']}"),
        ("written", report.get("written", "")),
        ("code", code_commit()),
        ("datasets", ", ".join(sorted({d["dataset"] for d in report["imported"]}))),
        ("devset", f"{report['devset'].get('lines_out', '?')} pairs"),
    ]
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<h2>Provenance</h2>\n<table class="provenance">{cells}</table>'


def chart_sections(report: dict) -> str:
    parts = []
    for dataset, rows in report["gaps"].items():
        parts.append(f"<figure>{charts.quality_speed_size_svg(dataset, rows)}</figure>")
    families: dict[str, list[dict]] = {}
    for curve in report["training_curves"]:
        families.setdefault(charts.family_of(curve["model"]), []).append(curve)
    order = [family for family, _ in charts.FAMILIES] + ["other"]
    for family in sorted(families, key=order.index):
        parts.append(f"<figure>{charts.curves_svg(family, families[family])}</figure>")
    if (report.get("stage_times") or {}).get("stages"):
        parts.append(f"<figure>{charts.stage_times_svg(report['stage_times']['stages'])}</figure>")
    return "<h2>Charts</h2>\n" + "\n".join(parts) if parts else ""


def render(report: dict, markdown_lines: list[str], funnel_svg: str) -> str:
    title = html.escape(f"Run {report['experiment']}: {report['src']} -> {report['trg']}")
    body = markdown_to_html(markdown_lines, {"funnel.svg": funnel_svg})
    # The charts right after the scores, before the convergence verdicts and the tables they draw.
    cut = body.find("<h2>Convergence</h2>")
    cut = len(body) if cut < 0 else cut
    body = f"{body[:cut]}{chart_sections(report)}\n{body[cut:]}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n{provenance(report)}\n</body>\n</html>\n"
    )
