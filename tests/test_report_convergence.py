"""The report's convergence verdicts and copy-source floor, from fake Marian logs and metrics (no training)."""

import json

import pytest

from conftest import run_step
from localrun.__main__ import convergence_flags
from pipeline.eval.report import convergence, copy_source_floor, training_curve

REPORT = "pipeline.eval.report"
TEACHER = "train-teacher-en-fr-1"
STUDENT = "distillation-student-model-train-en-fr"


def marian_log(folder, validations, disp_freq=100, valid_metric="chrf"):
    """A train.log in Marian's own line formats: a training line every disp_freq updates, validations."""
    lines = ["[2024-05-01 10:00:00] [marian] Marian v1.12.0 65bf82ff 2023-02-21 09:56:29 -0800"]
    last = max(update for update, _ in validations)
    valid = dict(validations)
    for update in sorted(set(range(disp_freq, last + 1, disp_freq)) | set(valid)):
        epoch = 1 + update // 400
        if update % disp_freq == 0:
            lines.append(
                f"[2024-05-01 10:{update // 100 % 60:02d}:00] Ep. {epoch} : Up. {update} : Sen. {update * 32:,} : "
                f"Cost {6.0 - update / 1000:.8f} * 51,234 @ 1,234 after {update * 512:,} : Time 10.52s : "
                "4870.11 words/s : gNorm 1.2345 : L.r. 3.0000e-04"
            )
        if update in valid:
            lines.append(
                f"[2024-05-01 10:{update // 100 % 60:02d}:05] [valid] Ep. {epoch} : Up. {update} : "
                f"{valid_metric} : {valid[update]} : new best"
            )
            lines.append(
                f"[2024-05-01 10:{update // 100 % 60:02d}:05] [valid] Ep. {epoch} : Up. {update} : "
                f"ce-mean-words : {3.0 - update / 1000:.4f} : new best"
            )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.log").write_text("\n".join(lines) + "\n")
    return folder / "train.log"


def training_json(folder, updates, stop_reason, **extra):
    stats = {
        "updates": updates,
        "stop_reason": stop_reason,
        "skipped_lines": 0,
        "lines_fed": 40_000,
        "wall_seconds": 612.5,
    }
    (folder / "training.json").write_text(json.dumps({**stats, **extra}))


def metrics(path, model, dataset, chrf, copy_chrf):
    path.mkdir(parents=True, exist_ok=True)
    data = {
        "model": model,
        "model_dir": f"/runs/x/{model}/artifacts",
        "dataset": dataset,
        "sentences": 100,
        "bleu": round(chrf / 2, 1),
        "chrf": chrf,
        "copy_source": {"bleu": 5.0, "chrf": copy_chrf},
    }
    (path / "metrics.json").write_text(json.dumps(data))
    return path / "metrics.json"


@pytest.fixture
def run(tmp_path):
    stats = {
        "imported.json": {"dataset": "local_x", "langs": ["en", "fr"], "lines": 100},
        "cleaned.json": {"dataset": "local_x", "lines_in": 100, "lines_out": 90, "removed": {}},
        "merged.json": {"datasets": [], "lines_in": 90, "duplicates": 0, "capped": 0, "lines_out": 90},
        "devset.json": {"datasets": [], "lines_in": 10, "duplicates": 0, "capped": 0, "lines_out": 10},
    }
    for name, data in stats.items():
        (tmp_path / name).write_text(json.dumps(data))
    # A teacher still climbing steeply when its epochs ran out; a student that has flattened out.
    teacher = tmp_path / "runs" / TEACHER / "artifacts"
    marian_log(teacher, [(250, 8.2), (500, 16.5), (750, 24.9), (1000, 32.9)])
    training_json(teacher, 1000, "after-epochs")
    student = tmp_path / "runs" / STUDENT / "artifacts"
    marian_log(student, [(250, 21.0), (500, 29.4), (750, 30.1), (1000, 30.6), (1250, 30.9)])
    training_json(student, 1400, "early-stopping")
    evaluations = tmp_path / "evaluations"
    evals = [
        metrics(evaluations / "teacher", "teacher-ensemble", "flores", 52.4, 25.9),
        metrics(evaluations / "student", "student", "flores", 51.0, 25.9),
    ]

    def report(quantized_chrf=51.3, *extra, check=True):
        files = evals + [metrics(evaluations / "quantized", "quantized", "flores", quantized_chrf, 25.9)]
        out = tmp_path / "report"
        args = [
            "--experiment", "x", "--src", "en", "--trg", "fr",
            "--imported", tmp_path / "imported.json", "--cleaned", tmp_path / "cleaned.json",
            "--merged", tmp_path / "merged.json", "--devset", tmp_path / "devset.json",
            "--evaluations", *files, "--teacher-logs", teacher / "train.log",
            "--student-logs", student / "train.log", "--output-dir", out, *extra,
        ]  # fmt: skip
        return run_step(REPORT, args, check=check), out

    report.teacher, report.student = teacher, student
    return report


def test_a_model_still_improving_is_flagged_with_its_numbers(run):
    result, out = run()
    report = json.loads((out / "report.json").read_text())
    rows = {row["model"]: row for row in report["convergence"]}
    teacher = rows[TEACHER]
    assert teacher["still_improving"] and not teacher["converged"]
    assert (teacher["updates"], teacher["stop_reason"], teacher["metric"]) == (1000, "after-epochs", "chrf")
    assert teacher["last_validations"] == [
        {"update": 500, "chrf": 16.5},
        {"update": 750, "chrf": 24.9},
        {"update": 1000, "chrf": 32.9},
    ]
    assert teacher["last_gain"] == 8.0 and teacher["valid_interval"] == 250
    assert "`marian-args.training-teacher`" in teacher["advice"] and "`after`" in teacher["advice"]
    assert teacher["training"]["lines_fed"] == 40_000

    markdown = (out / "report.md").read_text()
    assert markdown.index("### Teacher -> student -> int8") < markdown.index("## Convergence")
    assert markdown.index("## Convergence") < markdown.index("## Training curves")
    assert (
        f"| {TEACHER} | 1,000 | after-epochs | 16.5 (500) -> 24.9 (750) -> 32.9 (1,000) chrf | +8 "
        "| still improving |" in markdown
    )
    assert f"- **Still improving**: {TEACHER} was still improving" in markdown
    # The task log has the table and the advice too.
    assert "still improving" in result.stderr and "marian-args.training-teacher" in result.stderr

    # The local engine's closing summary prints one line for it, with its numbers.
    (line,) = convergence_flags(report)
    assert line == f"STILL IMPROVING: {teacher['advice']}"
    assert line.startswith(
        f"STILL IMPROVING: {TEACHER} was still improving when it stopped (after-epochs, 1,000 updates)"
    )
    assert (
        "dev chrF 16.5 -> 24.9 -> 32.9 at updates 500, 750, 1,000, +8 in the last interval of 250 updates"
        in line
    )


def test_a_converged_model_is_not_flagged(run):
    # Keys the report does not read, and null optional ones, are kept as they are.
    training_json(
        run.student, 1400, "early-stopping", skipped_lines=None, lines_fed=39_000, stalled_validations=3
    )
    _, out = run()
    report = json.loads((out / "report.json").read_text())
    student = next(row for row in report["convergence"] if row["model"] == STUDENT)
    assert student["converged"] and not student["still_improving"] and student["advice"] is None
    assert (student["updates"], student["stop_reason"], student["last_gain"]) == (1400, "early-stopping", 0.3)
    markdown = (out / "report.md").read_text()
    assert (
        f"| {STUDENT} | 1,400 | early-stopping | 30.1 (750) -> 30.6 (1,000) -> 30.9 (1,250) chrf" in markdown
    )
    assert f"**Still improving**: {STUDENT}" not in markdown
    assert student["training"]["stalled_validations"] == 3 and student["training"]["skipped_lines"] is None
    assert not any(STUDENT in line for line in convergence_flags(report))


def test_without_training_json_the_stop_reason_is_unknown(run):
    (run.teacher / "training.json").unlink()
    _, out = run()
    teacher = json.loads((out / "report.json").read_text())["convergence"][0]
    assert (teacher["stop_reason"], teacher["updates"], teacher["training"]) == ("unknown", 1000, None)
    assert (
        "raise the `after` cap in `marian-args.training-teacher` (or its wall-time cap)" in teacher["advice"]
    )


@pytest.mark.parametrize("chrf", [25.5, 25.9], ids=["below", "equal"])
def test_a_final_model_at_or_below_copy_source_fails_the_report(run, chrf):
    result, out = run(chrf, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.splitlines()[-1]
    assert f"the final model quantized scores chrF {chrf:g} on flores" in error
    assert "25.9 chrF of copying the source" in error
    assert "experiment.accept-below-copy-source: true" in error and "--accept-below-copy-source" in error
    # The convergence table is in the log, but nothing is written, so that a rerun evaluates again.
    assert f"| {TEACHER} | 1,000 | after-epochs |" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("flag", [["--accept-below-copy-source"], ["--accept-below-copy-source", "true"]])
def test_the_config_can_accept_a_model_below_copy_source(run, flag):
    result, out = run(25.5, *flag)
    assert "at or below the 25.9 chrF of copying the source (accepted)" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["copy_source_floor"] == {
        "model": "quantized",
        "accepted": True,
        "below": [{"dataset": "flores", "chrf": 25.5, "copy_source_chrf": 25.9}],
    }
    assert "**Below copying the source, accepted**" in (out / "report.md").read_text()
    assert any(
        line.startswith("BELOW COPYING THE SOURCE (accepted): quantized")
        for line in convergence_flags(report)
    )


def test_false_does_not_accept(run):
    result, _ = run(25.5, "--accept-below-copy-source", "false", check=False)
    assert result.returncode == 1 and "accept-below-copy-source" in result.stderr


def test_the_floor_judges_the_last_model_of_the_chain_only():
    def evaluation(model, chrf, dataset="flores"):
        return {"model": model, "dataset": dataset, "chrf": chrf, "copy_source": {"bleu": 1.0, "chrf": 30.0}}

    # A teacher below the floor does not fail a run whose shipped model is above it.
    assert copy_source_floor([evaluation("teacher-1", 20.0), evaluation("quantized", 40.0)])["below"] == []
    # Without an int8 model, the last of the chain that was evaluated is the final one.
    floor = copy_source_floor(
        [
            evaluation("student", 41.0),
            evaluation("student-finetuned", 29.0, "wmt"),
            evaluation("student-finetuned", 45.0),
        ]
    )
    assert floor == {
        "model": "student-finetuned",
        "below": [{"dataset": "wmt", "chrf": 29.0, "copy_source_chrf": 30.0}],
    }
    assert copy_source_floor([evaluation("teacher-1", 20.0)]) == {"model": None, "below": []}


def test_verdicts_from_resumed_logs_and_other_metrics(tmp_path):
    # A training resumed from its update-500 checkpoint logs updates 750 and 1,000 again: the later lines win.
    log = marian_log(tmp_path / "resumed", [(250, 10.0), (500, 20.0), (750, 21.0), (1000, 21.5)])
    with open(log, "a") as handle:
        handle.write(
            "[2024-05-01 11:00:00] [valid] Ep. 2 : Up. 750 : chrf : 26.0 : new best\n"
            "[2024-05-01 11:01:00] [valid] Ep. 2 : Up. 1000 : chrf : 30.0 : new best\n"
        )
    row = convergence(training_curve(log), None, 1.0)
    assert [p["chrf"] for p in row["last_validations"]] == [20.0, 26.0, 30.0]
    assert row["still_improving"] and row["last_gain"] == 4.0
    # No chrF validated: the verdict reads BLEU; a rise that is no new best is not "still improving".
    log = marian_log(
        tmp_path / "bleu", [(100, 20.0), (200, 25.0), (300, 22.0), (400, 24.0)], valid_metric="bleu-detok"
    )
    row = convergence(training_curve(log), None, 1.0)
    assert (row["metric"], row["last_gain"], row["still_improving"], row["converged"]) == (
        "bleu-detok",
        2.0,
        False,
        True,
    )
    # A single validation cannot tell.
    log = marian_log(tmp_path / "short", [(250, 12.0)])
    row = convergence(training_curve(log), None, 1.0)
    assert (row["verdict"], row["converged"], row["still_improving"]) == ("too few validations", False, False)
    assert row["advice"] is None  # nothing says a cap stopped it
    capped = convergence(training_curve(log), {"updates": 289, "stop_reason": "wall-time"}, 1.0)
    assert "stopped by its cap (wall-time) after 289 updates and 1 validation(s)" in capped["advice"]
    assert not capped["still_improving"]


@pytest.mark.parametrize(
    "content,words",
    [
        ("{not json", "is not readable JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"updates": 10, "stop_reason": "bored", "skipped_lines": 0, "lines_fed": 1, "wall_seconds": 1}',
         "`stop_reason` must be one of early-stopping"),
        ('{"updates": "10", "lines_fed": 1, "wall_seconds": "1s"}',
         "`stop_reason` is missing; `updates` must be int, not '10'; `wall_seconds` must be int or float, not '1s'"),
    ],
    ids=["not-json", "not-object", "stop-reason", "keys"],
)  # fmt: skip
def test_a_malformed_training_json_fails_clearly(run, content, words):
    (run.teacher / "training.json").write_text(content)
    result, out = run(check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(run.teacher / "training.json") in result.stderr and words in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_a_missing_train_log_fails_clearly(run):
    (run.student / "train.log").unlink()
    result, out = run(check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{run.student / 'train.log'} does not exist" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
