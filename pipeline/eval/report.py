"""Write the one-page run summary: the data funnel and every model's scores on every test set.

Reads the `stats.json` of the import, cleaning and merge steps and the `metrics.json` of each evaluation;
writes `<output-dir>/report.md` (for people) and `report.json` (for tools).
"""

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

from pipeline.common.io import atomic_path, read_json, write_json
from pipeline.common.step import already_done, run_step
from pipeline.eval.funnel import build_funnel, funnel_section, write_funnel

logger = logging.getLogger("report")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--imported", nargs="+", type=Path, required=True, help="stats.json of each import")
    parser.add_argument("--cleaned", nargs="+", type=Path, required=True, help="stats.json of each cleaning")
    parser.add_argument("--merged", type=Path, required=True, help="stats.json of the merged corpus")
    parser.add_argument("--devset", type=Path, required=True, help="stats.json of the merged devset")
    parser.add_argument(
        "--evaluations", nargs="+", type=Path, required=True, help="metrics.json of each evaluation"
    )
    # --- the data funnel (pipeline/eval/funnel.py) ---
    parser.add_argument(
        "--bicleaned", nargs="*", type=Path, default=[], help="stats.json of each bicleaner step"
    )
    parser.add_argument(
        "--mono-cleaned", nargs="*", type=Path, default=[], help="stats.json of each mono cleaning"
    )
    parser.add_argument(
        "--mono-merged", nargs="*", type=Path, default=[], help="stats.json of each mono merge"
    )
    parser.add_argument("--output-dir", required=True, type=Path)


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def main(args):
    if already_done(args.output_dir, ["report.md", "report.json", "funnel.json", "funnel.svg"]):
        return
    imported = [read_json(p) for p in args.imported]
    cleaned = [read_json(p) for p in args.cleaned]
    merged, devset = read_json(args.merged), read_json(args.devset)
    evaluations = [{**read_json(p), "metrics_file": str(p)} for p in args.evaluations]

    lines = [
        f"# Run `{args.experiment}`: {args.src} -> {args.trg}",
        "",
        f"Written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "## Evaluation",
        "",
    ]
    lines += table(
        ["test set", "model", "BLEU", "chrF", "copy-source BLEU", "copy-source chrF", "sentences"],
        [
            [
                e["dataset"],
                e["model_dir"],
                e["bleu"],
                e["chrf"],
                e["copy_source"]["bleu"],
                e["copy_source"]["chrf"],
                e["sentences"],
            ]
            for e in evaluations
        ],
    )
    lines += ["", "## Data", "", "Imported datasets:", ""]
    lines += table(
        ["dataset", "languages", "lines"],
        [[d["dataset"], ",".join(d["langs"]), d["lines"]] for d in imported],
    )
    lines += ["", "Cleaning (pairs removed by each filter):", ""]
    lines += table(
        ["dataset", "in", "out", "removed"],
        [
            [
                c.get("dataset"),
                c["lines_in"],
                c["lines_out"],
                ", ".join(f"{k} {v}" for k, v in sorted(c["removed"].items())) or "-",
            ]
            for c in cleaned
        ],
    )
    lines += [
        "",
        f"Merged training corpus: {merged['lines_in']} pairs in, {merged['duplicates']} duplicates, "
        f"{merged['capped']} over the cap, **{merged['lines_out']} pairs out**.",
        f"Devset: {devset['lines_out']} pairs.",
        "",
    ]
    # --- the data funnel (pipeline/eval/funnel.py) ---
    funnel = build_funnel(
        imported,
        cleaned + [read_json(p) for p in args.mono_cleaned],
        [merged] + [read_json(p) for p in args.mono_merged],
        [read_json(p) for p in args.bicleaned],
    )
    write_funnel(args.output_dir, funnel)
    lines += funnel_section(funnel)
    lines += [
        "## Files",
        "",
    ]
    lines += [f"- metrics: `{e['metrics_file']}`; model: `{e['model_dir']}`" for e in evaluations]
    report = {
        "experiment": args.experiment,
        "src": args.src,
        "trg": args.trg,
        "evaluations": evaluations,
        "imported": imported,
        "cleaned": cleaned,
        "merged": merged,
        "devset": devset,
    }
    write_json(args.output_dir / "report.json", report)
    with atomic_path(args.output_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.output_dir / "report.md")


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
