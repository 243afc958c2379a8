"""Publishes a finished run to Weights & Biases (`wandb-publication: true`), with the `wandb` package itself:

- one W&B run per trained model (backward model, teachers, student, fine-tuning), named after its task, with
  its Marian curves: `train/cost` and `train/words_per_second` every disp-freq updates, `valid/<metric>` at each
  validation (the W&B step is Marian's update), and its training summary (updates, stop reason, ...) as config;
- one run `evaluation` with every model's scores per test set (`<test set>/<model>/<metric>` in its summary and
  a table), the report's convergence verdicts, and report.html, report.md and report.json as an artifact.

All in project `<src>-<trg>`, group `<experiment>` (the reference's layout). Online where WANDB_API_KEY is set
(WANDB_BASE_URL names a self-hosted server); otherwise, and always where WANDB_MODE=offline, the runs are
written offline under `<output-dir>/wandb/` and `wandb sync <output-dir>/wandb/offline-run-*` sends them later.
"""

import logging
import os
from pathlib import Path

logger = logging.getLogger("report")

METRICS = ("bleu", "chrf", "chrfpp", "spbleu", "comet")


def mode() -> str:
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def publish(report: dict, output_dir: Path, training_stats: dict[str, dict | None]) -> list[str]:
    """Writes (or sends) the W&B runs of `report` (report.json's content); returns their names."""
    import wandb

    common = {
        "project": f"{report['src']}-{report['trg']}",
        "group": report["experiment"],
        "dir": str(output_dir),
        "mode": mode(),
        "reinit": "create_new",
        "settings": wandb.Settings(silent=True, x_disable_stats=True, disable_git=True),
    }
    names = []
    for curve in report["training_curves"]:
        model = curve["model"]
        run = wandb.init(name=model, job_type="training", config={"model": model, **(training_stats.get(model) or {})}, **common)  # fmt: skip
        points: dict[int, dict] = {}
        for point in curve["train"]:
            points.setdefault(point["update"], {}).update(
                {"train/cost": point["cost"], "train/words_per_second": point["words_per_second"]}
            )
        for metric, series in curve["valid"].items():
            for point in series:
                points.setdefault(point["update"], {})[f"valid/{metric}"] = point["value"]
        for update in sorted(points):
            run.log(points[update], step=update)
        run.finish()
        names.append(model)

    run = wandb.init(
        name="evaluation", job_type="evaluation", config={"experiment": report["experiment"]}, **common
    )
    columns = ["test set", "model", *METRICS, "copy-source chrF"]
    rows = []
    for evaluation in report["evaluations"]:
        model = evaluation.get("model") or evaluation["model_dir"]
        scores = {metric: evaluation.get(metric) for metric in METRICS}
        rows.append([evaluation["dataset"], model, *scores.values(), evaluation["copy_source"]["chrf"]])
        for metric, value in scores.items():
            if value is not None:
                run.summary[f"{evaluation['dataset']}/{model}/{metric}"] = value
    run.log({"evaluations": wandb.Table(columns=columns, data=rows)})
    for row in report.get("convergence", []):
        run.summary[f"convergence/{row['model']}"] = row.get("verdict") or (
            "still improving" if row.get("still_improving") else ""
        )
    artifact = wandb.Artifact(f"{report['experiment']}-report", type="report")
    for name in ("report.html", "report.md", "report.json"):
        if (output_dir / name).exists():
            artifact.add_file(str(output_dir / name))
    run.log_artifact(artifact)
    run.finish()
    names.append("evaluation")
    logger.info("Weights & Biases (%s): %d runs in project %s, group %s", common["mode"], len(names), common["project"], common["group"])  # fmt: skip
    return names
