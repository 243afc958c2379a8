# ruff: noqa: F811 - pytest fixtures imported from test_model_chain are redefined as arguments
"""How a training stops and resumes (issue 24): exact resume after kill -9 between two checkpoints, no line of a
curriculum silently dropped, caps in epochs, updates and wall time, and the stop reason in training.json."""

import json
import re

import numpy as np
import pytest
from test_model_chain import data, kill_when, model, start, train_args  # noqa: F401 - fixtures

from conftest import read_corpus, run_step, write_corpus

TRAIN = "pipeline.train.train"


def weights(path):
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files if not name.startswith("special:")}


def progress(out):
    import yaml

    return yaml.safe_load((out / "model.npz.progress.yml").read_text())


def display_lines(out, after: int) -> list[str]:
    """Marian's progress and validation lines past update `after`, without times, speeds and the last digits
    of the cost (Marian's resume restores its optimizer state in float32)."""
    lines = []
    for line in (out / "train.log").read_text().splitlines():
        match = re.search(r"Ep\. \d+ : Up\. (\d+) : (.*)", line)
        if match and int(match[1]) > after:
            text = re.sub(r" : Time .*", "", match[2])
            lines.append(re.sub(r"Cost (\d+\.\d{4})\d*", r"Cost \1", text))
    return lines


def test_a_training_killed_between_checkpoints_resumes_where_its_checkpoint_was(data, tmp_path):  # noqa: F811
    aligned = ["--alignments", data / "corpus" / "corpus.aln.zst"]
    marian = {"save-freq": 15, "valid-freq": 15, "maxi-batch": 4}
    unkilled = tmp_path / "unkilled"
    run_step(TRAIN, train_args(data, unkilled, updates=45, extra=aligned, **marian))

    killed = tmp_path / "killed"
    args = train_args(data, killed, updates=45, extra=aligned, **marian)
    process = start(TRAIN, args)
    # After the first checkpoint (update 15), before the second: the data already fed beyond update 15
    # (Marian reads ahead, OpusTrainer's old state file ran ahead too) must be fed again.
    kill_when(process, lambda: (killed / "model.npz.progress.yml").exists())
    assert progress(killed)["batches"] == 15
    result = run_step(TRAIN, args)
    assert "resuming the training from the checkpoint" in result.stderr
    assert "Restoring the corpus state to epoch 1, batch 15" in (killed / "train.log").read_text()

    for key in ("batches", "samples", "labels-total"):  # same updates, same lines, same target tokens
        assert progress(killed)[key] == progress(unkilled)[key], key
    summary = json.loads((killed / "training.json").read_text())
    assert summary["updates"] == 45 and summary["stop_reason"] == "after-updates"
    # The same batches in the same order: every display line after the checkpoint (sentences, target labels,
    # cost) and every validation score is the unkilled run's.
    assert display_lines(killed, after=15) == display_lines(unkilled, after=15)
    expected, resumed = weights(unkilled / "model.npz"), weights(killed / "model.npz")
    assert expected.keys() == resumed.keys()
    for name in expected:
        # Attention key biases shift every logit of a query alike, which softmax ignores: their gradient is
        # rounding noise, which Adam scales up, so they differ even between a clean stop and resume and an
        # unstopped run. Every weight that the model's output depends on is the same within float tolerance.
        if not name.endswith("_bk"):
            np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)


STUDENT_CHECKPOINTS = {"save-freq": 10, "valid-freq": 10, "maxi-batch": 4}


@pytest.fixture(scope="module")
def unkilled_student(data, model, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("student") / "unkilled"
    run_step(TRAIN, student_args(data, model, out))
    return out


def student_args(data, model, out):  # noqa: F811
    init = [
        "--student-init",
        "teacher-encoder",
        "--teachers",
        model,
        "--alignments",
        data / "corpus" / "corpus.aln.zst",
    ]
    return train_args(data, out, "student", updates=30, extra=init, **STUDENT_CHECKPOINTS)


def assert_resumed_as_unkilled(killed, unkilled):
    for key in ("batches", "samples", "labels-total"):
        assert progress(killed)[key] == progress(unkilled)[key], key
    for metric, state in progress(unkilled)["validators"].items():
        # The restored best is the logged one (6 digits), at the far end of its rounding.
        assert progress(killed)["validators"][metric]["stalled"] == state["stalled"], metric
        assert progress(killed)["validators"][metric]["last-best"] == pytest.approx(
            state["last-best"], abs=1e-5
        )
    # Every line after the checkpoint, validations included: a validation's verdict (new best, or stalled N times)
    # depends on the ones before it, the checkpoint's own among them.
    assert display_lines(killed, after=10) == display_lines(unkilled, after=10)
    expected, resumed = weights(unkilled / "final.model.npz"), weights(killed / "final.model.npz")
    assert expected.keys() == resumed.keys()
    for name in expected:
        if not name.endswith("_bk"):  # see the teacher's test above
            np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_student_started_from_the_teachers_encoder_resumes_after_kill_9_as_if_unkilled(
    data,
    model,
    unkilled_student,
    tmp_path,  # noqa: F811
):
    """Killed after its checkpoint at update 10 and Marian's validation there (which Marian writes after the
    checkpoint, so the checkpoint's progress lacks it): the resumed run takes that validation from valid.log and
    not the teacher's encoder again, and ends as the unkilled run."""
    killed = tmp_path / "killed"
    process = start(TRAIN, student_args(data, model, killed))
    kill_when(process, lambda: "Up. 10 : ce-mean-words" in read_text(killed / "valid.log"))
    assert progress(killed)["batches"] == 10
    assert (
        progress(killed)["validators"]["chrf"]["stalled"] == 0
        and progress(killed)["validators"]["chrf"]["last-best"] < 0
    ), "Marian's checkpoint now holds its validation: restore_checkpoint_validation is no longer needed"
    result = run_step(TRAIN, student_args(data, model, killed))
    assert "resuming the training from the checkpoint" in result.stderr
    assert "the checkpoint's validation at update 10 restored" in result.stderr
    assert_resumed_as_unkilled(killed, unkilled_student)
    summary = json.loads((killed / "training.json").read_text())
    assert summary["initialized_from"] == {"embeddings and encoder": str(model)}


def test_a_checkpoint_killed_before_its_validation_was_logged_is_validated_on_resume(
    data,
    model,
    unkilled_student,
    tmp_path,  # noqa: F811
):
    killed = tmp_path / "killed"
    process = start(TRAIN, student_args(data, model, killed))
    kill_when(process, lambda: "Up. 10 : ce-mean-words" in read_text(killed / "valid.log"))
    # As if killed between the checkpoint and Marian's validation line.
    log = killed / "valid.log"
    log.write_text("".join(line for line in log.read_text().splitlines(True) if "Up. 10 :" not in line))
    result = run_step(TRAIN, student_args(data, model, killed))
    assert "the checkpoint's validation at update 10 restored" in result.stderr
    checkpoint_line = [line for line in log.read_text().splitlines() if "Up. 10 : chrf" in line]
    assert len(checkpoint_line) == 1 and "(train.py, the checkpoint's validation)" in checkpoint_line[0]
    # sacrebleu's chrF of the checkpoint, where Marian's validator logged its own: the same score.
    marian_line = [
        line for line in (unkilled_student / "valid.log").read_text().splitlines() if "Up. 10 : chrf" in line
    ]
    assert float(checkpoint_line[0].split(" : ")[3]) == pytest.approx(
        float(marian_line[0].split(" : ")[3]), abs=1e-3
    )
    assert progress(killed)["batches"] == progress(unkilled_student)["batches"]
    chrf = lambda out: progress(out)["validators"]["chrf"]  # noqa: E731
    assert chrf(killed)["stalled"] == chrf(unkilled_student)["stalled"]
    assert chrf(killed)["last-best"] == pytest.approx(chrf(unkilled_student)["last-best"], abs=1e-3)


def read_text(path):
    return path.read_text() if path.exists() else ""


def test_remove_end_punct_drops_only_the_links_of_a_token_that_disappears():
    from opustrainer.modifiers.placeholders import PlaceholderTagModifier
    from opustrainer.modifiers.punctuation import RemoveEndPunctuationModifier

    from pipeline.train.modifiers import RemoveEndPunct, Tags

    glued = "Base64 encoding error.\tBase64-Verschlüsselungsfehler.\t0-0 1-0 2-0"
    # OpusTrainer 0.5 drops every link of the last words although they stay, then its Tags modifier fails on
    # the empty alignment field: the line was silently skipped.
    stock = RemoveEndPunctuationModifier(1.0).remove_punct(glued)
    assert stock == "Base64 encoding error\tBase64-Verschlüsselungsfehler\t"
    with pytest.raises(IndexError):
        PlaceholderTagModifier(1.0, augment=1, tag=0).apply(stock)

    fixed = RemoveEndPunct(1.0)
    assert fixed.remove_punct(glued) == "Base64 encoding error\tBase64-Verschlüsselungsfehler\t0-0 1-0 2-0"
    # A punctuation token of its own goes, with its links; counted over any whitespace (a no-break space).
    assert fixed.remove_punct("Continue ?\tContinuer\u00a0?\t0-0 1-1") == "Continue\tContinuer\t0-0"
    assert fixed.remove_punct("Quit now ?\tQuitter\t0-0 1-0 2-0") == "Quit now\tQuitte\t0-0 1-0"
    assert fixed.remove_punct("Done.\tFertig.") == "Done\tFertig"
    assert not fixed.ends_with_punct("\t.")  # an empty side: no IndexError that would kill the whole batch
    tags = Tags(1.0, augment=1, tag=0)
    assert tags.apply("Base64 encoding error\tBase64-Verschlüsselungsfehler\t") == (
        "Base64 encoding error\tBase64-Verschlüsselungsfehler"
    )


def test_a_line_the_modifiers_cannot_handle_is_marked_not_dropped():
    from pipeline.train.modifiers import SKIPPED_MARK, Tags

    out = list(Tags(0.0, augment=1, tag=0)(["two words\tzwei Wörter\t0-0 1-7", "ok\tgut\t0-0"]))
    assert out[0].startswith(SKIPPED_MARK) and "two words\tzwei Wörter\t0-0 1-7" in out[0]
    assert "Out-of-bound" in out[0]
    assert out[1] == "ok\tgut"


@pytest.fixture
def bad_line_data(data, tmp_path):  # noqa: F811
    """The test corpus with one pair whose alignment points past its last word."""
    folder = tmp_path / "corpus"
    for name in ("corpus.en.zst", "corpus.fr.zst"):
        write_corpus(folder / name, read_corpus(data / "corpus" / name))
    links = read_corpus(data / "corpus" / "corpus.aln.zst")
    links[7] += " 0-99"
    write_corpus(folder / "corpus.aln.zst", links)
    return folder


def test_skipped_curriculum_lines_fail_the_training_naming_them(data, bad_line_data, tmp_path):  # noqa: F811
    def args(out, *extra):
        return [*train_args(data, out, updates=1000, extra=["--alignments", bad_line_data / "corpus.aln.zst",
                *extra], after="1e"), "--train-dir", bad_line_data]  # fmt: skip

    out = tmp_path / "strict"
    result = run_step(TRAIN, args(out), check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "could not handle 1 of" in result.stderr and "Out-of-bound" in result.stderr
    assert "0-99" in result.stderr  # the line itself is quoted
    assert not (out / "final.model.npz").exists() and not (out / "training.json").exists()

    lenient = tmp_path / "lenient"
    run_step(TRAIN, args(lenient, "--max-skipped-fraction", "0.01"))
    summary = json.loads((lenient / "training.json").read_text())
    assert summary["skipped_lines"] == 1 and "0-99" in summary["first_skipped"][0]
    assert summary["stop_reason"] == "after-epochs"
    assert summary["lines_fed"] >= 299


def test_wall_time_caps_a_training_and_early_stopping_is_its_stop_reason(data, tmp_path):  # noqa: F811
    capped = tmp_path / "capped"
    run_step(TRAIN, train_args(data, capped, updates=100_000, after="100000u,6s", **{"valid-freq": 20}))
    summary = json.loads((capped / "training.json").read_text())
    assert summary["stop_reason"] == "wall-time" and 6 <= summary["wall_seconds"] < 30
    assert "Saving training checkpoint" in (capped / "train.log").read_text()
    assert (capped / "final.model.npz").exists()
    # The updates since the last validation are not lost: train.py validates the last weights, logs it the
    # way Marian does, and keeps whichever validates better.
    final = summary["final_validation"]
    log = (capped / "train.log").read_text()
    if final.get("validated_by") == "marian":
        # Rarely, the stop falls right after a validation that was the best: nothing is left to validate.
        assert final["update"] == summary["updates"] == final["best_validated"]["update"]
        assert final["kept"] == "best validated checkpoint"
    else:
        assert final["update"] == summary["updates"] > final["best_validated"]["update"]
        assert f"Up. {final['update']} : chrf : " in log
        assert (final["chrf"] > final["best_validated"]["chrf"]) == (final["kept"] == "last weights")
    kept = capped / ("model.npz" if final["kept"] == "last weights" else "model.npz.best-chrf.npz")
    assert (capped / "final.model.npz").read_bytes() == kept.read_bytes()

    # A cap before the first validation: the last weights become the model, said in the log and training.json.
    early = tmp_path / "early"
    result = run_step(
        TRAIN, train_args(data, early, updates=100_000, after="100000u,4s", **{"valid-freq": 100_000})
    )
    summary = json.loads((early / "training.json").read_text())
    assert summary["stop_reason"] == "wall-time" and "no validation" in summary["model_chosen_by"]
    assert "before its first validation (valid-freq 100000)" in result.stderr
    assert (early / "final.model.npz").read_bytes() == (early / "model.npz").read_bytes()

    # Every validation "stalls" when it must gain 1000 chrF: the second validation ends the training.
    stalled = tmp_path / "stalled"
    run_step(TRAIN, train_args(data, stalled, updates=100_000, **{
        "valid-freq": 5, "early-stopping": 1, "early-stopping-epsilon": 1000}))  # fmt: skip
    summary = json.loads((stalled / "training.json").read_text())
    assert summary["stop_reason"] == "early-stopping" and summary["updates"] == 10


def test_the_wall_time_is_counted_over_resumed_runs(tmp_path):
    """The feeder with a stand-in trainer: a budget already spent by earlier runs stops it at once."""
    import subprocess
    import sys

    from conftest import REPO_ROOT, step_env

    corpus = write_corpus(tmp_path / "c.tsv", [f"a{i}\tb{i}" for i in range(100)])
    config = tmp_path / "c.yml"
    config.write_text(f"datasets: {{c: {corpus}}}\nstages: [s]\ns: [c 1.0, until c inf]\nseed: 1\n")
    clock = tmp_path / "clock.json"
    clock.write_text('{"seconds": 50}')
    reader = "import sys, time\nfor line in sys.stdin: time.sleep(0.001)"
    command = [sys.executable, "-m", "pipeline.train.curriculum_feed", "--config", config, "--report",
               tmp_path / "r.json", "--clock", clock, "--wall-time", "40", "--", sys.executable, "-c", reader]  # fmt: skip
    result = subprocess.run(
        list(map(str, command)), cwd=REPO_ROOT, env=step_env(), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ended_by"] == "wall-time" and report["wall_seconds"] >= 50
    assert json.loads(clock.read_text())["seconds"] >= 50

    bad = subprocess.run(list(map(str, command[:7])), cwd=REPO_ROOT, env=step_env(), capture_output=True)
    assert bad.returncode == 2 and b"give the Marian command" in bad.stderr


def test_a_curriculum_that_fails_stops_the_trainer_instead_of_leaving_it_waiting(tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT, step_env

    corpus = write_corpus(tmp_path / "c.tsv", ["a.\tb.", "a line without its target"])
    config = tmp_path / "c.yml"
    config.write_text(
        f"datasets: {{c: {corpus}}}\nstages: [s]\ns: [c 1.0, until c 1]\nseed: 1\n"
        "modifiers: [{RemoveEndPunct: 1.0}]\n"
    )
    waits = "import sys, time\nfor line in sys.stdin: pass\ntime.sleep(600)"  # would wait after the data
    command = [sys.executable, "-m", "pipeline.train.curriculum_feed", "--config", config, "--report",
               tmp_path / "r.json", "--", sys.executable, "-c", waits]  # fmt: skip
    result = subprocess.run(
        list(map(str, command)), cwd=REPO_ROOT, env=step_env(), capture_output=True, timeout=60
    )
    assert result.returncode == 1 and b"ValueError" in result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["ended_by"] == "feeder-error"

    corpus.unlink()
    result = subprocess.run(
        list(map(str, command)), cwd=REPO_ROOT, env=step_env(), capture_output=True, timeout=60
    )
    assert result.returncode == 1 and b"has no file" in result.stderr


def test_the_skipped_share_is_judged_on_enough_lines():
    from pipeline.train.curriculum_feed import too_many_skipped

    def report(fed, skipped):
        return {"lines_fed": fed, "skipped_lines": skipped}

    assert too_many_skipped(report(5, 1), 0.0, final=False)  # 0: the first skipped line is too many
    assert not too_many_skipped(report(5, 0), 0.0, final=False)
    assert not too_many_skipped(report(99, 1), 0.001, final=False)  # too few lines to judge a share yet
    assert too_many_skipped(report(99, 1), 0.001, final=True)
    assert too_many_skipped(report(20_000, 30), 0.001, final=False)
    assert not too_many_skipped(report(20_000, 20), 0.001, final=True)


def test_a_wall_time_stop_right_after_the_best_validation_keeps_that_checkpoint(tmp_path):
    from types import SimpleNamespace

    from pipeline.train.train import final_validation

    (tmp_path / "train.log").write_text(
        "[2026-12-05 03:00:00] [valid] Ep. 1 : Up. 20 : chrf : 10.5 : new best\n"
        "[2026-12-05 03:00:09] [valid] Ep. 1 : Up. 40 : chrf : 12.25 : new best\n"
    )
    summary = {"updates": 40}
    args = SimpleNamespace(best_metric="chrf")
    assert final_validation(tmp_path, tmp_path, {}, args, summary) is None
    assert summary["final_validation"] == {
        "update": 40,
        "best_validated": {"update": 40, "chrf": 12.25},
        "kept": "best validated checkpoint",
        "validated_by": "marian",
    }


def test_a_sigterm_saves_the_checkpoint_exits_75_and_the_rerun_resumes(data, tmp_path):  # noqa: F811
    """A Slurm job at its time limit, a worker shutting down: SIGTERM to train.py alone is passed on; Marian saves
    its checkpoint, the step exits 75 (retried by the engines) without a final model, and the rerun resumes."""
    import signal
    import time

    out = tmp_path / "teacher"
    args = train_args(data, out, updates=60, **{"valid-freq": 10, "save-freq": 10})
    process = start(TRAIN, args)
    deadline = time.time() + 120
    while not (out / "model.npz.progress.yml").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # train.py alone: it passes it on
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 75, stderr[-3000:]
    assert "stopped before its end (a SIGTERM" in stderr and "run the task again to resume" in stderr
    assert not (out / "final.model.npz").exists()
    saved = progress(out)["batches"]
    assert 10 <= saved < 60
    result = run_step(TRAIN, args)
    assert "resuming the training from the checkpoint" in result.stderr
    assert progress(out)["batches"] == 60 and (out / "final.model.npz").exists()


def test_the_engines_run_time_limit_stops_a_training_to_resume_later(data, tmp_path):  # noqa: F811
    """TASK_RUN_SECONDS (a Slurm job's runtime less the time to save, localrun/slurm.py): the run stops itself
    with a checkpoint and exit 75, before Slurm would kill it."""
    from conftest import step_env

    out = tmp_path / "teacher"
    args = train_args(data, out, updates=100_000, **{"valid-freq": 10, "save-freq": 10})
    result = run_step(TRAIN, args, env=step_env(TASK_RUN_SECONDS="8"), check=False)
    assert result.returncode == 75, result.stderr[-3000:]
    assert "this run's time limit) after" in result.stderr
    assert progress(out)["batches"] > 0 and not (out / "final.model.npz").exists()


@pytest.mark.parametrize(
    "score,best,stalled,copied",
    [(40.5, 40.5, 0, True), (40.1, 40.1, 2, True), (39.0, 40.0, 2, False)],
    ids=["new-best", "better-within-epsilon", "worse"],
)
def test_a_checkpoint_validated_on_resume_is_judged_as_marian_judges(
    tmp_path, monkeypatch, score, best, stalled, copied
):
    """A better score becomes the best even when it stalls (an improvement of at most epsilon), as Marian logs
    `stalled 2 times (last best: <the new score>)`; a new best's checkpoint becomes the best checkpoint."""
    import argparse

    import yaml

    from pipeline.train import train

    out = tmp_path / "out"
    out.mkdir()
    state = {"batches": 500, "epochs": 1, "stalled": 1, "stalled-max": 1, "validator": "chrf",
             "validators": {"chrf": {"last-best": 40.0, "stalled": 1}, "ce-mean-words": {"last-best": 3.0, "stalled": 0}}}  # fmt: skip
    (out / "model.npz.progress.yml").write_text(yaml.safe_dump(state))
    (out / "model.npz").write_bytes(b"checkpoint")
    (out / "valid.log").write_text("[valid] Ep. 1 : Up. 250 : chrf : 40.00000 : new best\n")
    (out / "train.log").write_text("")
    write_corpus(tmp_path / "dev" / "corpus.en.zst", ["a"])
    write_corpus(tmp_path / "dev" / "corpus.fr.zst", ["b"])
    monkeypatch.setattr(train, "validate_last_weights", lambda *args: score)
    options = {
        "valid-freq": 250,
        "valid-metrics": ["chrf", "ce-mean-words"],
        "early-stopping-epsilon": [0.25, 0],
    }
    args = argparse.Namespace(devset_dir=tmp_path / "dev", src="en", trg="fr")
    train.restore_checkpoint_validation(out, tmp_path, options, args)
    restored = yaml.safe_load((out / "model.npz.progress.yml").read_text())
    assert restored["validators"]["chrf"] == {"last-best": best, "stalled": stalled}
    assert restored["validators"]["ce-mean-words"] == {"last-best": 3.0, "stalled": 0}  # not recomputed
    assert (restored["stalled"], restored["stalled-max"]) == (stalled, max(1, stalled))
    assert (out / "model.npz.best-chrf.npz").exists() == copied
    line = (out / "valid.log").read_text().splitlines()[-1]
    assert f"Up. 500 : chrf : {score:.5f}" in line and "(train.py, the checkpoint's validation)" in line
    assert train.logged_validations(out / "valid.log", 500)["chrf"]["stalled"] == stalled
    # Restored once: a second resume finds the line and changes nothing.
    train.restore_checkpoint_validation(out, tmp_path, options, args)
    assert (
        yaml.safe_load((out / "model.npz.progress.yml").read_text())["validators"]["chrf"]["stalled"]
        == stalled
    )


def test_the_cooldown_plan_spreads_its_decays_over_the_updates_the_time_left_holds():
    from pipeline.train.train import plan_cooldown

    cooldown = {"share": 0.25, "decays": 4, "factor": 0.5}
    # 700 updates in 840 s: 360 s left hold 300 updates, 4 decays: one at update 701, then every 75.
    plan = plan_cooldown(cooldown, updates=700, seconds=840.0, wall_time=1200.0)
    assert plan["expected_updates"] == 300 and plan["every"] == 75
    assert plan["marian"] == {
        "lr-decay-strategy": "batches", "lr-decay-start": [701], "lr-decay-freq": 75, "lr-decay": 0.5}  # fmt: skip
    # No time left (a resumed run already past the cap): one decay at once, then every update.
    assert plan_cooldown(cooldown, updates=10, seconds=1300.0, wall_time=1200.0)["every"] == 1


@pytest.mark.parametrize(
    "options,wall_time,message",
    [
        ({"lr-cooldown": 0.3}, None, "give one in `after`"),
        ({"lr-cooldown": 1.5}, 60.0, "between 0 and 1"),
        ({"lr-cooldown": "soon"}, 60.0, "between 0 and 1"),
        ({"lr-cooldown": 0.3, "lr-cooldown-decays": 0}, 60.0, "at least 1"),
        ({"lr-cooldown-decays": 3}, 60.0, "without lr-cooldown"),
        ({"lr-cooldown": 0.3, "lr-decay-freq": 100}, 60.0, "sets lr-decay-freq itself"),
        ({"lr-cooldown": 0.3, "lr-decay": 2}, 60.0, "lr-decay: 2.0 must be between 0 and 1"),
    ],
)
def test_a_cooldown_the_training_cannot_apply_is_refused_naming_the_key(options, wall_time, message):
    from pipeline.common.step import StepError
    from pipeline.train.train import take_cooldown

    with pytest.raises(StepError, match=re.escape(message)):
        take_cooldown(dict(options), wall_time)


def decays_logged(out) -> list[int]:
    return [
        int(n)
        for n in re.findall(
            r"Decaying learning rate to \S+ after (\d+) batches", (out / "train.log").read_text()
        )
    ]


def test_a_cooldown_anneals_the_last_share_of_the_wall_time(data, tmp_path):  # noqa: F811
    out = tmp_path / "cooled"
    options = {"valid-freq": 20, "save-freq": 20, "lr-cooldown": 0.5, "lr-cooldown-decays": 3}
    result = run_step(TRAIN, train_args(data, out, updates=100_000, after="100000u,16s", **options))
    plan = json.loads((out / "lr-cooldown.json").read_text())
    assert 7 <= plan["seconds"] < 12 and plan["from_update"] > 0
    assert "learning-rate cooldown from update" in result.stderr
    start, every = plan["marian"]["lr-decay-start"][0], plan["every"]
    decays = decays_logged(out)
    # Marian decays at the first update of the cooldown and then every `every` updates, until the cap.
    assert decays[:1] == [plan["from_update"] + 1] and len(decays) >= 2
    assert decays == [start + k * every for k in range(len(decays))]
    summary = json.loads((out / "training.json").read_text())
    assert summary["stop_reason"] == "wall-time" and summary["wall_seconds"] >= 16
    assert summary["lr_cooldown"]["every"] == every and summary["updates"] > start + every


def test_a_training_killed_in_its_cooldown_resumes_with_the_same_schedule(data, tmp_path):  # noqa: F811
    out = tmp_path / "cooled"
    options = {"valid-freq": 20, "save-freq": 5, "lr-cooldown": 0.5, "lr-cooldown-decays": 3}
    args = train_args(data, out, updates=100_000, after="100000u,16s", **options)
    # Two Marian runs' worth of output: more than a pipe holds while the test waits.
    process = start(TRAIN, args, output=tmp_path / "killed-run.log")
    plan_file = out / "lr-cooldown.json"

    def checkpoint_in_cooldown():
        if not plan_file.exists() or not (out / "model.npz.progress.yml").exists():
            return False
        return progress(out)["batches"] > json.loads(plan_file.read_text())["from_update"] + 5

    kill_when(process, checkpoint_in_cooldown)
    plan = plan_file.read_bytes()
    killed_at = progress(out)["batches"]
    result = run_step(TRAIN, args)
    assert "resuming the training from the checkpoint" in result.stderr
    assert "learning-rate cooldown from" not in result.stderr  # not planned again
    assert plan_file.read_bytes() == plan
    plan = json.loads(plan)
    start_update, every = plan["marian"]["lr-decay-start"][0], plan["every"]
    assert set(decays_logged(out)) <= {start_update + k * every for k in range(10_000)}
    # The resumed Marian (its command line, logged last) runs the saved schedule.
    command = re.findall(r"\[marian\] (.*)", (out / "train.log").read_text())[-1]
    assert f"--lr-decay-start {start_update} --lr-decay-strategy batches" in command
    assert f"--lr-decay-freq {every}" in command
    summary = json.loads((out / "training.json").read_text())
    assert summary["stop_reason"] == "wall-time" and summary["updates"] > killed_at
    assert summary["lr_cooldown"]["from_update"] == plan["from_update"]


def test_a_validation_that_ran_into_the_stop_is_undone_and_validated_again(tmp_path, monkeypatch):
    """A SIGTERM (wall-time stop, cooldown restart, Slurm limit) that reaches Marian as it validates: the
    validation's data stops, Marian logs an empty translation's score (chrF 0, cross-entropy nan) as a stall and
    saves it in the checkpoint (seen in this project's tests). The resume undoes that stall and validates again."""
    import argparse

    import yaml

    from pipeline.train import train

    out = tmp_path / "out"
    out.mkdir()
    # What Marian saved: the bogus validation at update 360 counted as a 14th stall of chrF, a first one of CE.
    state = {"batches": 360, "epochs": 1, "stalled": 14, "stalled-max": 14, "validator": "chrf",
             "validators": {"chrf": {"last-best": 3.03063, "stalled": 14},
                            "ce-mean-words": {"last-best": 5.351, "stalled": 1}}}  # fmt: skip
    (out / "model.npz.progress.yml").write_text(yaml.safe_dump(state))
    (out / "model.npz").write_bytes(b"checkpoint")
    earlier = [
        "[2026-12-05 17:12:53] [valid] Ep. 1 : Up. 340 : chrf : 1.27855 : stalled 13 times (last best: 3.03063)",
        "[2026-12-05 17:12:53] [valid] Ep. 1 : Up. 340 : ce-mean-words : 5.351 : new best",
    ]
    bogus = [
        "[2026-12-05 17:12:54] [valid] Ep. 1 : Up. 360 : chrf : 0 : stalled 14 times (last best: 3.03063)",
        "[2026-12-05 17:12:54] [valid] Ep. 1 : Up. 360 : ce-mean-words : nan : stalled 1 times (last best: 5.351)",
    ]
    (out / "valid.log").write_text("\n".join(earlier + bogus) + "\n")
    progress_line = (
        "[2026-12-05 17:12:54] Ep. 1 : Up. 360 : Sen. 5,506 : Cost 5.69 : Time 0.5s : 8000 words/s"
    )
    (out / "train.log").write_text(
        "\n".join([*earlier, progress_line, *bogus, "[2026-12-05 17:12:54] Training interrupted (via signal).",
                   "[2026-12-05 17:12:54] Saving model weights and runtime parameters to model.npz"]) + "\n"
    )  # fmt: skip
    write_corpus(tmp_path / "dev" / "corpus.en.zst", ["a"])
    write_corpus(tmp_path / "dev" / "corpus.fr.zst", ["b"])
    monkeypatch.setattr(train, "validate_last_weights", lambda *args: 1.31)
    options = {"valid-freq": 20, "valid-metrics": ["chrf", "ce-mean-words"], "early-stopping-epsilon": 0.25}
    args = argparse.Namespace(devset_dir=tmp_path / "dev", src="en", trg="fr")
    assert train.interrupted_validation(out / "train.log", 360)
    train.restore_checkpoint_validation(out, tmp_path, options, args)
    restored = yaml.safe_load((out / "model.npz.progress.yml").read_text())
    # chrF validated again: the 14th stall is the real score's, with the best before it; CE back to update 340's.
    assert restored["validators"]["chrf"]["stalled"] == 14 and restored["stalled"] == 14
    assert restored["validators"]["chrf"]["last-best"] == pytest.approx(3.03063, abs=1e-5)
    assert restored["validators"]["ce-mean-words"]["stalled"] == 0
    assert restored["validators"]["ce-mean-words"]["last-best"] == pytest.approx(5.351, abs=1e-5)
    for log in ("valid.log", "train.log"):
        text = (out / log).read_text()
        assert "chrf : 0 :" not in text and "nan" not in text
        assert "Up. 360 : chrf : 1.31000 : stalled 14 times" in text
    assert not train.interrupted_validation(out / "train.log", 360)

    # A validation that finished before the stop, followed by later updates, is Marian's and stays.
    (out / "train.log").write_text(
        "\n".join([*earlier, "x Ep. 1 : Up. 341 : Sen. 5,000 : Cost 5.7", INTERRUPTED_LINE])
    )
    assert not train.interrupted_validation(out / "train.log", 340)


INTERRUPTED_LINE = "[2026-12-05 17:12:54] Training interrupted (via signal)."
