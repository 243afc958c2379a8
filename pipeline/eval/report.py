"""Write the one-page run summary: the data funnel, every model's scores, the gaps and training curves.

Reads the `stats.json` of the import, cleaning and merge steps, the `metrics.json` of each evaluation and,
with --*-logs, the Marian `train.log` of each trained model (training cost and validations); writes
`<output-dir>/report.md` (for people), `report.html` (the same with its charts: pipeline/eval/report_html.py)
and `report.json` (for tools). On each test set, the quality and
speed of the student and the int8 model are compared with the teacher ensemble's (or the best teacher's).

Convergence: per trained model, from its dev chrF validations (the best other metric where chrF was not
validated) and the `training.json` its training step wrote beside train.log (updates, stop reason), the
model is flagged as still improving when its last validation interval gained more than
--still-improving-chrf and was a new best; the report then says which cap to raise.

Copy-source floor: when the final model (`quantized`, else the last of the chain evaluated) scores a chrF at
or below what copying the source scores on any test set, the step fails without writing its outputs,
unless --accept-below-copy-source (the config's `experiment.accept-below-copy-source`).
"""

import argparse
import json
import logging
import os
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

from pipeline.common.io import atomic_path, read_json, task_name, write_json
from pipeline.common.marian_log import training_curve
from pipeline.common.step import StepError, add_config_boolean, already_done, run_step
from pipeline.eval import report_html
from pipeline.eval.funnel import build_funnel, funnel_section, funnel_svg, write_funnel

logger = logging.getLogger("report")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--trg", required=True)
    parser.add_argument("--imported", nargs="+", type=Path, required=True, help="stats.json of each import")
    parser.add_argument("--cleaned", nargs="+", type=Path, required=True, help="stats.json of each cleaning")
    parser.add_argument(
        "--merged",
        type=Path,
        help="stats.json of the merged corpus (none: the corpus came from an earlier run)",
    )
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
    for kind in ("teacher", "backward", "student", "finetuned"):
        parser.add_argument(
            f"--{kind}-summaries", dest="training_summaries", nargs="*", type=Path, action="extend",
            default=[], help="training.json of each trained model, beside its train.log (how it stopped)",
        )  # fmt: skip
    parser.add_argument(
        "--still-improving-chrf",
        type=float,
        default=1.0,
        help="flag a model as still improving when its last validation interval gained more than this "
        "(dev chrF points per validation interval; default: %(default)s)",
    )
    add_config_boolean(
        parser,
        "--accept-below-copy-source",
        help="do not fail when the final model scores at or below copying the source "
        "(the training config's experiment.accept-below-copy-source)",
    )
    add_config_boolean(
        parser,
        "--wandb-publication",
        help="publish the curves, scores and report to Weights & Biases (the config's wandb-publication)",
    )
    parser.add_argument(
        "--stage-times",
        type=Path,
        default=os.environ.get("STAGE_TIMES") or None,
        help="each stage's actual seconds against preflight's estimate (JSON; the local engine passes it as "
        "STAGE_TIMES); without it the report has no time section",
    )
    parser.add_argument("--output-dir", required=True, type=Path)


# The model chain, from the teacher to what ships; names as evaluate.py records them (`model`).
CHAIN = ["teacher-ensemble", "student", "student-finetuned", "quantized"]
# What pipeline/train/train.py writes beside train.log once Marian has stopped.
TRAINING_FILE = "training.json"
# Stop reasons of a training that a cap ended, not convergence.
CAPPED = ("wall-time", "after-updates", "after-epochs", "after-labels", "end-of-data")
STOP_REASONS = (
    "early-stopping",
    "after-updates",
    "after-epochs",
    "after-labels",
    "wall-time",
    "end-of-data",
    "unknown",
)
# Its keys the report reads: required, and optional ones (null where the training could not tell).
TRAINING_KEYS = {"updates": (int,), "stop_reason": (str,)}
TRAINING_OPTIONAL_KEYS = {
    "skipped_lines": (int,),
    "lines_fed": (int,),
    "wall_seconds": (int, float),
}
# The metrics a convergence verdict can read, in order of preference; True where higher is better. train.py
# always validates chrF; the others serve logs of other trainings.
VERDICT_METRICS = {
    "chrf": True,
    "bleu-detok": True,
    "bleu": True,
    "bleu-segmented": True,
    "ce-mean-words": False,
    "ce-mean": False,
    "cross-entropy": False,
    "perplexity": False,
}
METRIC_NAMES = {"chrf": "chrF", "bleu-detok": "BLEU", "bleu": "BLEU", "bleu-segmented": "BLEU (segmented)"}
# The training kinds' task labels and the `marian-args` stage that configures each.
STAGE_OF_LABEL = [
    ("train-teacher-", "training-teacher"),
    ("backtranslations-train-backwards-model-", "training-backward"),
    ("distillation-student-model-train-", "training-student"),
    ("distillation-student-model-finetune-", "training-student-finetuned"),
]


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


def read_training_stats(log: Path) -> dict | None:
    """The `training.json` beside a train.log (updates and stop reason; lines fed and skipped and wall time
    where known; other keys are kept as they are), or None where the training step wrote none."""
    path = log.parent / TRAINING_FILE
    if not path.exists():
        return None
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StepError(
            f"{path} is not readable JSON ({error}): it should be the training step's summary"
        ) from None
    if not isinstance(stats, dict):
        raise StepError(f"{path} must hold a JSON object, not {type(stats).__name__}")
    problems = [f"`{key}` is missing" for key in TRAINING_KEYS if key not in stats]
    problems += [
        f"`{key}` must be {' or '.join(t.__name__ for t in types)}, not {stats[key]!r}"
        for key, types in {**TRAINING_KEYS, **TRAINING_OPTIONAL_KEYS}.items()
        if key in stats
        and not (key in TRAINING_OPTIONAL_KEYS and stats[key] is None)
        and (isinstance(stats[key], bool) or not isinstance(stats[key], types))
    ]
    if isinstance(stats.get("stop_reason"), str) and stats["stop_reason"] not in STOP_REASONS:
        problems.append(
            f"`stop_reason` must be one of {', '.join(STOP_REASONS)}, not {stats['stop_reason']!r}"
        )
    if problems:
        raise StepError(f"{path} is malformed: {'; '.join(problems)}")
    return stats


def stage_of(model: str) -> str | None:
    """The `marian-args` stage of a training task's label (None for a folder of another name)."""
    return next((stage for prefix, stage in STAGE_OF_LABEL if model.startswith(prefix)), None)


def convergence(curve: dict, stats: dict | None, threshold: float) -> dict:
    """Whether a model was still improving when its training stopped, from its last validations.

    The gain is that of the last validation over the one a regular validation interval (the median
    spacing) before it, per interval: with evenly spaced validations, the last minus the previous. A model
    is still improving when that gain is above `threshold` and its last validation is its best so far.
    """
    valid = curve["valid"]
    metric = next((m for m in VERDICT_METRICS if valid.get(m)), None)
    if metric is None:  # an unknown metric: higher taken as better
        metric = next((m for m in sorted(valid) if valid[m]), None)
    points = valid.get(metric, []) if metric else []
    updates = [p["update"] for p in points]
    values = [p["value"] for p in points]
    seen = max([p["update"] for p in curve["train"]] + updates, default=0)
    row = {
        "model": curve["model"],
        "stage": stage_of(curve["model"]),
        "metric": metric,
        "updates": stats["updates"] if stats else seen,
        "stop_reason": stats["stop_reason"] if stats else "unknown",
        "last_validations": [
            {"update": u, metric: v} for u, v in zip(updates[-3:], values[-3:], strict=True)
        ],
        "last_gain": None,
        "valid_interval": None,
        "still_improving": False,
        "converged": False,
        "verdict": "too few validations",
        "advice": None,
        "training": stats,
    }
    if len(points) < 2:
        if row["stop_reason"] in CAPPED:
            row["advice"] = (
                f"{row['model']} was stopped by its cap ({row['stop_reason']}) after {row['updates']:,} updates "
                f"and {len(points)} validation(s): too short to tell whether it converged; raise its cap in "
                f"{stage_text(row)} or validate more often (`valid-freq`)"
            )
        return row
    sign = 1 if VERDICT_METRICS.get(metric, True) else -1
    spacings = [b - a for a, b in zip(updates, updates[1:], strict=False)]
    interval = statistics.median(spacings)
    # The latest validation at least one interval before the last (the previous one when evenly spaced).
    start = next((i for i in range(len(updates) - 2, -1, -1) if updates[-1] - updates[i] >= interval), 0)
    gain = sign * (values[-1] - values[start]) * interval / (updates[-1] - updates[start])
    new_best = all(sign * (values[-1] - v) > 0 for v in values[:-1])
    still_improving = gain > threshold and new_best
    row.update(
        {
            "last_gain": round(gain, 2),
            "valid_interval": round(interval),
            "still_improving": still_improving,
            "converged": not still_improving,
            "verdict": "still improving" if still_improving else "converged",
        }
    )
    if still_improving:
        row["advice"] = advice(row)
    return row


def stage_text(row: dict) -> str:
    return (
        f"`marian-args.{row['stage']}`"
        if row["stage"]
        else "the `marian-args.training-*` stage that trained it"
    )


def advice(row: dict) -> str:
    """One sentence: what to change so that a model still improving trains until it has converged."""
    stage = stage_text(row)
    metric = row["metric"]
    shown = METRIC_NAMES.get(metric, metric)
    points = row["last_validations"]
    values = " -> ".join(f"{p[metric]:g}" for p in points)
    updates = ", ".join(f"{p['update']:,}" for p in points)
    numbers = (
        f"{row['model']} was still improving when it stopped ({row['stop_reason']}, {row['updates']:,} updates): "
        f"dev {shown} {values} at updates {updates}, {row['last_gain']:+g} in the last interval of "
        f"{row['valid_interval']:,} updates"
    )
    reason = row["stop_reason"]
    if reason == "wall-time":
        change = f"raise its wall-time cap (the `after: <minutes>m` of {stage}) or give it a faster machine"
    elif reason == "end-of-data":
        change = f"its curriculum ran out of data: give it more passes (the `after` of {stage}) or more data"
    elif reason == "early-stopping":
        change = (
            f"early stopping ended it on another metric while dev {shown} still rose: raise `early-stopping` "
            f"in {stage} or validate on chrF (`experiment.best-model: chrf`)"
        )
    else:
        change = f"raise the `after` cap in {stage} (or its wall-time cap)"
    return f"{numbers}; {change}, since early stopping ends a training once it has converged."


def convergence_table(rows: list[dict]) -> list[str]:
    return table(
        ["model", "updates", "stop reason", "last 3 dev validations (update)", "last gain", "verdict"],
        [
            [
                r["model"],
                f"{r['updates']:,}",
                r["stop_reason"],
                " -> ".join(f"{p[r['metric']]:g} ({p['update']:,})" for p in r["last_validations"])
                + (f" {r['metric']}" if r["last_validations"] else "-"),
                "-" if r["last_gain"] is None else f"{r['last_gain']:+g}",
                r["verdict"],
            ]
            for r in rows
        ],
    )


def convergence_section(rows: list[dict], threshold: float, floor: dict) -> list[str]:
    lines = [
        "",
        "## Convergence",
        "",
        f"A model is still improving when its last validation gained more than {threshold:g} dev chrF over "
        "the validation interval before it and was its best so far.",
        "",
    ]
    lines += convergence_table(rows) if rows else ["No training log was given."]
    flagged = [r for r in rows if r["advice"]]
    if flagged:
        lines += [""] + [
            f"- **{'Still improving' if r['still_improving'] else 'Not judged'}**: {r['advice']}"
            for r in flagged
        ]
    if floor["below"]:
        lines += [""] + [
            f"- **Below copying the source, accepted**: {floor_sentence(floor['model'], b)}."
            for b in floor["below"]
        ]
    return lines


def final_model(evaluations: list[dict]) -> str | None:
    """The model the run ships: `quantized`, else the last model of the chain that was evaluated."""
    names = {model_name(e) for e in evaluations}
    return next((name for name in reversed(CHAIN) if name in names), None)


def copy_source_floor(evaluations: list[dict]) -> dict:
    """The test sets on which the final model scores a chrF at or below that of copying the source."""
    model = final_model(evaluations)
    below = [
        {"dataset": e["dataset"], "chrf": e["chrf"], "copy_source_chrf": e["copy_source"]["chrf"]}
        for e in evaluations
        if model and model_name(e) == model and "copy_source" in e and e["chrf"] <= e["copy_source"]["chrf"]
    ]
    return {"model": model, "below": below}


def floor_sentence(model: str, below: dict) -> str:
    return (
        f"the final model {model} scores chrF {below['chrf']:g} on {below['dataset']}, at or below the "
        f"{below['copy_source_chrf']:g} chrF of copying the source"
    )


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


def read_stage_times(path: Path | None) -> dict | None:
    """The local engine's file; on Taskcluster (TASK_ID and the Queue's address set), the task group's times.
    The Queue out of reach is no reason to fail a report: the section then says why it is missing."""
    if path:
        return read_json(path)
    if not os.environ.get("TASK_ID") or not (
        os.environ.get("TASKCLUSTER_PROXY_URL") or os.environ.get("TASKCLUSTER_ROOT_URL")
    ):
        return None
    from pipeline.eval.taskcluster_times import taskcluster_stage_times

    try:
        return taskcluster_stage_times(os.environ["TASK_ID"])
    except Exception as error:  # the Queue's client raises its own errors (network, 404, scopes)
        logger.warning("no stage times from the task group: %r", error)
        return {"stages": [], "unavailable": f"the task group's times could not be read ({error!r:.300})"}


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def stage_time_section(stage_times: dict | None) -> list[str]:
    """Each stage's task seconds (summed over its tasks) against preflight's estimate for the machine."""
    if stage_times and stage_times.get("unavailable"):
        return ["", "## Time per stage", "", f"Not available: {stage_times['unavailable']}.", ""]
    if not stage_times or not stage_times.get("stages"):
        return []
    rows = stage_times["stages"]
    if stage_times.get("engine") == "taskcluster":
        where = "Taskcluster's workers, one task each; every run of a task counted"
    else:
        where = f"this machine, {stage_times.get('cores')} cores" + (
            f", {stage_times['gpus']} GPUs" if stage_times.get("gpus") else ""
        )
    lines = [
        "",
        "## Time per stage",
        "",
        f"Seconds summed over each stage's finished tasks, against preflight's estimate ({where}; "
        "`task preflight-check`). The report and what ran beside it are not counted.",
        "",
    ]
    lines += table(
        ["stage", "tasks", "estimate", "actual", "actual / estimate"],
        [
            [
                row["stage"],
                f"{row['finished']}/{row['tasks']}",
                minutes(row["estimate_s"]),
                minutes(row["actual_s"]),
                "-" if row["actual_over_estimate"] is None else f"{row['actual_over_estimate']:.2f}",
            ]
            for row in rows
        ],
    )
    estimate = sum(row["estimate_s"] for row in rows)
    actual = sum(row["actual_s"] for row in rows)
    lines += ["", f"In all: {minutes(actual)} of task time against {minutes(estimate)} estimated.", ""]
    return lines


def main(args):
    if already_done(
        args.output_dir, ["report.md", "report.html", "report.json", "funnel.json", "funnel.svg"]
    ):
        return
    imported = [read_json(p) for p in args.imported]
    cleaned = [read_json(p) for p in args.cleaned]
    merged = read_json(args.merged) if args.merged else None
    devset = read_json(args.devset)
    evaluations = [read_evaluation(p) for p in args.evaluations]
    curves = [training_curve(log) for log in args.training_logs]
    logs = {log.parent.resolve() for log in args.training_logs}
    for summary in args.training_summaries:
        if summary.parent.resolve() not in logs:
            raise StepError(f"{summary} is not beside any of the train.log files given (--*-logs)")
    chain = gaps(evaluations)
    converging = [
        convergence(curve, read_training_stats(log), args.still_improving_chrf)
        for curve, log in zip(curves, args.training_logs, strict=True)
    ]
    for line in convergence_table(converging):
        logger.info("convergence %s", line)
    for row in converging:
        if row["advice"]:
            logger.warning("%s", row["advice"])
    floor = copy_source_floor(evaluations)
    floor["accepted"] = args.accept_below_copy_source == "true"
    if floor["below"] and not floor["accepted"]:
        raise StepError(
            "; ".join(floor_sentence(floor["model"], b) for b in floor["below"])
            + ": it is worse than no model. Train longer (see the convergence table above), or accept it with "
            "`experiment.accept-below-copy-source: true` in the training config "
            "(--accept-below-copy-source for pipeline/eval/report.py)"
        )
    for below in floor["below"]:
        logger.warning("%s (accepted)", floor_sentence(floor["model"], below))

    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Run `{args.experiment}`: {args.src} -> {args.trg}",
        "",
        f"Written {written}.",
        "",
        "## Evaluation",
        "",
    ]
    lines += table(
        [
            "test set",
            "model",
            "BLEU",
            "chrF",
            "chrF++",
            "spBLEU",
            "COMET",
            "copy-source BLEU",
            "copy-source chrF",
            "sentences",
        ],
        [
            [
                e["dataset"],
                model_name(e) if e.get("model") else e["model_dir"],
                e["bleu"],
                e["chrf"],
                e.get("chrfpp", "-"),
                "-" if e.get("spbleu") is None else e["spbleu"],
                "-" if e.get("comet") is None else e["comet"],
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
    lines += convergence_section(converging, args.still_improving_chrf, floor)
    if curves:
        lines += ["", "## Training curves", ""]
        for curve in curves:
            lines += [f"### {curve['model']}", ""]
            lines += curve_table(curve) + [""]
    stage_times = read_stage_times(args.stage_times)
    lines += stage_time_section(stage_times)
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
        f"{merged['capped']} over the cap, **{merged['lines_out']} pairs out**."
        if merged
        else "Training corpus: from an earlier run (continuation.corpora).",
        f"Devset: {devset['lines_out']} pairs.",
        "",
    ]
    # --- the data funnel (pipeline/eval/funnel.py) ---
    funnel = build_funnel(
        imported,
        cleaned + [read_json(p) for p in args.mono_cleaned],
        [merged] * bool(merged) + [read_json(p) for p in args.mono_merged],
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
        "written": written,
        "src": args.src,
        "trg": args.trg,
        "evaluations": evaluations,
        "gaps": chain,
        "training_curves": curves,
        "convergence": converging,
        "copy_source_floor": floor,
        "imported": imported,
        "cleaned": cleaned,
        "merged": merged,
        "devset": devset,
        "stage_times": stage_times,
    }
    with atomic_path(args.output_dir / "report.html") as tmp:
        tmp.write_text(report_html.render(report, lines, funnel_svg(funnel)), encoding="utf-8")
    write_json(args.output_dir / "report.json", report)
    with atomic_path(args.output_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.output_dir / "report.md")
    if args.wandb_publication == "true":
        from pipeline.eval.publish_wandb import publish

        try:
            publish(report, args.output_dir, {row["model"]: row.get("training") for row in converging})
        except Exception as error:  # wandb raises its own errors (network, key): the retry publishes again
            (args.output_dir / "report.json").unlink(missing_ok=True)
            raise StepError(f"publishing to Weights & Biases failed: {error!r}") from None


if __name__ == "__main__":
    run_step(__doc__.splitlines()[0], add_arguments, main)
