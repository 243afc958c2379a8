"""Write the one-page run summary: the data funnel, every model's scores, the gaps and training curves.

Reads the `stats.json` of the import, cleaning and merge steps, the `metrics.json` of each evaluation and,
with --*-logs, the Marian `train.log` of each trained model (training cost and validations); writes
`<output-dir>/report.md` (for people) and `report.json` (for tools). On each test set, the quality and
speed of the student and the int8 model are compared with the teacher ensemble's (or the best teacher's).
"""

import argparse
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from pipeline.common.io import atomic_path, read_json, task_name, write_json
from pipeline.common.step import StepError, already_done, run_step
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
    # One flag per kind of evaluation, so that each kind can hand its tasks' files over; all are read alike.
    parser.add_argument(
        "--evaluations",
        nargs="+",
        type=Path,
        required=True,
        action="extend",
        help="metrics.json (or the folder) of each evaluation",
    )
    # --- the data funnel (pipeline/eval/funnel.py) ---
    parser.add_argument(
        "--bicleaned", nargs="*", type=Path, default=[], help="stats.json of each bicleaner step"
    )
    parser.add_argument(
        "--mono-cleaned", nargs="*", type=Path, default=[], help="stats.json of each mono cleaning"
    )
    parser.add_argument(
        "--monocleaned", nargs="*", type=Path, default=[], help="stats.json of each monocleaner step"
    )
    parser.add_argument(
        "--mono-merged", nargs="*", type=Path, default=[], help="stats.json of each mono merge"
    )
    for kind in ("teacher-ensemble", "backward", "student", "quantized"):
        parser.add_argument(
            f"--{kind}-evaluations", dest="evaluations", nargs="*", type=Path, action="extend", default=[],
            help=f"metrics.json of the {kind} evaluations",
        )  # fmt: skip
    for kind in ("training", "teacher", "backward", "student", "finetuned"):
        parser.add_argument(
            f"--{kind}-logs", dest="training_logs", nargs="*", type=Path, action="extend", default=[],
            help="Marian's train.log of each trained model (training curves; it holds the validations too)",
        )  # fmt: skip
    parser.add_argument("--output-dir", required=True, type=Path)


# The model chain, from the teacher to what ships; names as evaluate.py records them (`model`).
CHAIN = ["teacher-ensemble", "student", "student-finetuned", "quantized"]
TRAIN_LINE = re.compile(r"Ep\. (\d+) : Up\. (\d+) : .*?Cost ([0-9.]+).*?([0-9.]+) words/s")
VALID_LINE = re.compile(r"\[valid\] Ep\. (\d+) : Up\. (\d+) : ([\w-]+) : ([0-9.eE+-]+)")


def read_evaluation(path: Path) -> dict:
    """An evaluation's metrics.json (the file, or the evaluation's folder) with its speed.json if present."""
    metrics_file = path / "metrics.json" if path.is_dir() else path
    evaluation = {**read_json(metrics_file), "metrics_file": str(metrics_file)}
    if (metrics_file.parent / "speed.json").exists():
        evaluation["speed"] = read_json(metrics_file.parent / "speed.json")
    return evaluation


def model_name(evaluation: dict) -> str:
    if evaluation.get("model"):
        return evaluation["model"]
    return " + ".join(task_name(Path(f)) for f in evaluation["model_dir"].split(", "))


def training_curve(log: Path) -> dict:
    """Cost and speed every disp-freq updates and each validation metric, from Marian's train.log."""
    if not log.is_file():
        raise StepError(f"{log} does not exist: expected the train.log of a trained model")
    train, valid = [], {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := VALID_LINE.search(line):
            epoch, update, metric, value = match.groups()
            point = {"epoch": int(epoch), "update": int(update), "value": float(value)}
            valid.setdefault(metric, []).append(point)
        elif match := TRAIN_LINE.search(line):
            epoch, update, cost, speed = match.groups()
            train.append(
                {
                    "epoch": int(epoch),
                    "update": int(update),
                    "cost": float(cost),
                    "words_per_second": float(speed),
                }
            )
    return {"model": task_name(log.parent), "log": str(log), "train": train, "valid": valid}


def gaps(evaluations: list[dict]) -> dict:
    """Per test set: each model of the chain against the teacher reference (the ensemble, else the best
    single teacher): chrF difference and share, speed ratio."""
    result = {}
    for dataset in sorted({e["dataset"] for e in evaluations}):
        by_name = {model_name(e): e for e in evaluations if e["dataset"] == dataset}
        teachers = [e for name, e in by_name.items() if re.fullmatch(r"teacher-\d+", name)]
        reference = by_name.get("teacher-ensemble") or max(teachers, key=lambda e: e["chrf"], default=None)
        if reference is None:
            continue
        rows = []
        for name in [model_name(reference)] + [n for n in CHAIN[1:] if n in by_name]:
            e = by_name[name]
            speed = (e.get("speed") or {}).get("words_per_second")
            reference_speed = (reference.get("speed") or {}).get("words_per_second")
            rows.append(
                {
                    "model": name,
                    "bleu": e["bleu"],
                    "chrf": e["chrf"],
                    "chrf_gap": round(e["chrf"] - reference["chrf"], 2),
                    "chrf_share": round(100 * e["chrf"] / reference["chrf"], 1)
                    if reference["chrf"]
                    else None,
                    "words_per_second": speed,
                    "speed_ratio": round(speed / reference_speed, 2) if speed and reference_speed else None,
                    "model_bytes": e.get("model_bytes"),
                }
            )
        result[dataset] = rows
    return result


def curve_table(curve: dict) -> list[str]:
    updates = sorted({p["update"] for points in curve["valid"].values() for p in points})
    metrics = sorted(curve["valid"])
    values = {(m, p["update"]): p["value"] for m in metrics for p in curve["valid"][m]}
    costs = {p["update"]: p["cost"] for p in curve["train"]}
    rows = [[u, costs.get(u, "-"), *[values.get((m, u), "-") for m in metrics]] for u in updates]
    return table(["update", "train cost", *[f"valid {m}" for m in metrics]], rows)


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
    evaluations = [read_evaluation(p) for p in args.evaluations]
    curves = [training_curve(log) for log in args.training_logs]
    chain = gaps(evaluations)

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
                model_name(e) if e.get("model") else e["model_dir"],
                e["bleu"],
                e["chrf"],
                e["copy_source"]["bleu"],
                e["copy_source"]["chrf"],
                e["sentences"],
            ]
            for e in evaluations
        ],
    )
    for dataset, rows in chain.items():
        lines += ["", f"### Teacher -> student -> int8 on {dataset}", ""]
        lines += table(
            ["model", "BLEU", "chrF", "chrF gap", "% of teacher chrF", "words/s", "speed x", "size (bytes)"],
            [
                [
                    r["model"],
                    r["bleu"],
                    r["chrf"],
                    r["chrf_gap"],
                    r["chrf_share"],
                    r["words_per_second"],
                    r["speed_ratio"],
                    r["model_bytes"],
                ]
                for r in rows
            ],
        )
    if curves:
        lines += ["", "## Training curves", ""]
        for curve in curves:
            lines += [f"### {curve['model']}", ""]
            lines += curve_table(curve) + [""]
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
        [read_json(p) for p in args.monocleaned],
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
        "gaps": chain,
        "training_curves": curves,
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
