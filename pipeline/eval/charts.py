"""The report's charts, drawn with matplotlib as SVG (text kept as text, so that a browser can search it):
training curves per model family, the data funnel, and quality against speed and size per test set.

Each validation line carries an SVG id `valid-<metric>-<model>` (and each train-cost line `train-cost-<model>`),
with one marker per point, so that a test or a script can find them in the page.
"""

import io
import itertools
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "translations-report", "font.size": 9})

# Model families, by the training kinds' task labels, in the chain's order.
FAMILIES = [
    ("backward", "backtranslations-train-backwards-model-"),
    ("teacher", "train-teacher-"),
    ("student", "distillation-student-model-train-"),
    ("student fine-tuned", "distillation-student-model-finetune-"),
]
METRIC_LABELS = {"chrf": "dev chrF", "bleu-detok": "dev BLEU", "ce-mean-words": "dev cross-entropy per word"}


def family_of(model: str) -> str:
    return next((family for family, prefix in FAMILIES if model.startswith(prefix)), "other")


def svg_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


_FIGURES = itertools.count(1)
_OWN_IDS = ("valid-", "train-cost-")


def to_svg(figure) -> str:
    """The figure as an <svg> element (no XML prolog, so that it embeds in HTML). matplotlib names clip paths,
    markers and groups alike in every figure; in one HTML page ids are shared, so each figure's get a prefix
    of their own (the `valid-`/`train-cost-` line ids excepted)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    prefix = f"fig{next(_FIGURES)}-"

    def own(name: str) -> str:
        return name if name.startswith(_OWN_IDS) else prefix + name

    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{own(m.group(1))}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{own(m.group(1))})", text)
    return re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{own(m.group(1))}"', text)


def curves_svg(family: str, curves: list[dict]) -> str:
    """One row of plots for a model family: train cost per update, then each validation metric per update;
    one line per model."""
    metrics = sorted({m for curve in curves for m in curve["valid"]}, key=lambda m: (m != "chrf", m))
    figure, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.2 * (1 + len(metrics)), 3.0), squeeze=False)
    axes = axes[0]
    for curve in curves:
        model = curve["model"]
        if curve["train"]:
            (line,) = axes[0].plot(
                [p["update"] for p in curve["train"]], [p["cost"] for p in curve["train"]], label=model
            )
            line.set_gid(svg_id(f"train-cost-{model}"))
        for axis, metric in zip(axes[1:], metrics, strict=True):
            points = curve["valid"].get(metric, [])
            if points:
                (line,) = axis.plot(
                    [p["update"] for p in points],
                    [p["value"] for p in points],
                    marker="o",
                    markersize=4,
                    label=model,
                )
                line.set_gid(svg_id(f"valid-{metric}-{model}"))
    axes[0].set_title(f"{family}: train cost")
    for axis, metric in zip(axes[1:], metrics, strict=True):
        axis.set_title(f"{family}: {METRIC_LABELS.get(metric, 'dev ' + metric)}")
    for axis in axes:
        axis.set_xlabel("update")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    return to_svg(figure)


def funnel_chart_svg(funnel: dict, stages: list[tuple[str, str]], kept_colour: str) -> str:
    """A horizontal bar per dataset: the lines kept, then each stage's removals."""
    rows = funnel["datasets"]
    figure, axis = plt.subplots(figsize=(8.5, 0.9 + 0.32 * max(len(rows), 1)))
    labels = [f"{row['dataset'][:42]} ({row['imported']:,})" for row in rows]
    left = [0] * len(rows)
    for name, colour in [("kept", kept_colour), *stages]:
        values = [row[name] for row in rows]
        if any(values):
            axis.barh(labels, values, left=left, color=colour, label=name)
            left = [a + b for a, b in zip(left, values, strict=True)]
    axis.invert_yaxis()
    axis.set_xlabel("lines")
    axis.set_title("Data funnel: lines kept and removed per dataset")
    axis.legend(fontsize=7, ncol=4, loc="lower right")
    return to_svg(figure)


def quality_speed_size_svg(dataset: str, rows: list[dict]) -> str:
    """chrF against translation speed (words/s, log scale), one point per model, its area the model's size."""
    figure, axis = plt.subplots(figsize=(6.0, 3.8))
    measured = [r for r in rows if r.get("words_per_second")]
    largest = max((r.get("model_bytes") or 0 for r in measured), default=0) or 1
    for row in measured:
        size = row.get("model_bytes") or 0
        axis.scatter(row["words_per_second"], row["chrf"], s=40 + 400 * size / largest, alpha=0.6)
        axis.annotate(
            f"{row['model']}\n{size / 1e6:.0f} MB" if size else row["model"],
            (row["words_per_second"], row["chrf"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=7,
        )
    axis.set_xscale("log")
    axis.set_xlabel("words/s (log scale)")
    axis.set_ylabel("chrF")
    axis.set_title(f"Quality, speed and size on {dataset}")
    axis.grid(alpha=0.3)
    return to_svg(figure)


def stage_times_svg(rows: list[dict]) -> str:
    """Each stage's actual minutes beside preflight's estimate, one pair of bars per stage, in run order."""
    labels = [row["stage"] for row in rows]
    positions = range(len(rows))
    figure, axis = plt.subplots(figsize=(6.5, 0.9 + 0.28 * len(rows)))
    axis.barh([p + 0.2 for p in positions], [row["estimate_s"] / 60 for row in rows], 0.4, label="estimate")
    axis.barh([p - 0.2 for p in positions], [row["actual_s"] / 60 for row in rows], 0.4, label="actual")
    axis.set_yticks(list(positions), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("minutes (summed over the stage's tasks)")
    axis.set_title("Time per stage against preflight's estimate")
    axis.legend(fontsize=7)
    axis.grid(axis="x", alpha=0.3)
    return to_svg(figure)
