"""A retried Taskcluster run (RUN_ID > 0) resumes from an earlier run's artifacts: the helper in
pipeline/common/taskcluster_resume.py, the train step's use of it, and the exit status a failed request gives."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_taskcluster import FakeTaskcluster, serve

from conftest import REPO_ROOT, build_vocab, kill_running, run_step, sample_pairs, step_env, write_corpus
from pipeline.common.taskcluster_resume import EXIT_TASKCLUSTER_REQUEST_FAILED

TASK_ID = "TrainTask0000000000000"
CHECKPOINT = {
    "model.npz": b"weights" * 1000,
    "model.npz.optimizer.npz": b"adam" * 1000,
    "model.npz.progress.yml": b"batches: 200\n",
    "train.log": b"[train] Ep. 1 : Up. 200\n",
    "devset.out": b"not wanted\n",
}
HELPER = """
import sys
from pathlib import Path
from pipeline.common.step import run_step
from pipeline.common.taskcluster_resume import fetch_previous_run

def add(parser):
    parser.add_argument("--output-dir", type=Path, required=True)

def main(args):
    print("run", fetch_previous_run(args.output_dir, ["model.npz*", "train.log"], backoff=0.01))

run_step("resume", add, main)
"""


@pytest.fixture
def fake():
    with serve(FakeTaskcluster()) as fake:
        fake.add_task(TASK_ID, {"metadata": {"name": "train-teacher-en-fr-1"}}, state="running", runs=3)
        for name, content in CHECKPOINT.items():
            fake.add_artifact(TASK_ID, f"public/build/{name}", content, run_id=0)
        yield fake


def run_helper(out: Path, fake, **env):
    environment = step_env(TASK_ID=TASK_ID, TASKCLUSTER_ROOT_URL=fake.root_url, **env)
    return subprocess.run(
        [sys.executable, "-c", HELPER, "--output-dir", str(out)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )


def digests(folder: Path) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_a_later_run_fetches_the_latest_earlier_run_with_a_checkpoint(tmp_path, fake):
    # Run 1 was preempted before it uploaded anything; run 2 resumes from run 0.
    result = run_helper(tmp_path / "out", fake, RUN_ID="2")
    assert result.returncode == 0, result.stderr
    assert "run 0" in result.stdout
    expected = {name: hashlib.sha256(c).hexdigest() for name, c in CHECKPOINT.items() if name != "devset.out"}
    assert digests(tmp_path / "out") == expected
    # Listing runs 1 then 0, downloading the 4 wanted files.
    assert [path for method, path in fake.requests if "/runs/1/" in path] == [
        f"/api/queue/v1/task/{TASK_ID}/runs/1/artifacts"
    ]


def test_a_first_run_or_the_local_engine_does_nothing(tmp_path, fake):
    for env in ({"RUN_ID": "0"}, {}):
        result = run_helper(tmp_path / "out", fake, **env)
        assert result.returncode == 0 and "run None" in result.stdout
    assert fake.requests == []
    assert not (tmp_path / "out").exists()


def test_files_already_there_are_kept(tmp_path, fake):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.log").write_bytes(b"local log\n")
    assert run_helper(out, fake, RUN_ID="1").returncode == 0
    assert (out / "train.log").read_bytes() == b"local log\n"
    assert (out / "model.npz").read_bytes() == CHECKPOINT["model.npz"]


def test_bad_environment_fails_clearly(tmp_path, fake):
    result = run_helper(tmp_path / "out", fake, RUN_ID="one")
    assert result.returncode == 1 and "RUN_ID must be a run number" in result.stderr
    env = step_env(RUN_ID="1", TASKCLUSTER_ROOT_URL=fake.root_url)
    env.pop("TASK_ID", None)
    result = subprocess.run(
        [sys.executable, "-c", HELPER, "--output-dir", str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "TASK_ID is not" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_failed_request_exits_with_the_retried_status(tmp_path, fake):
    fake.fail.add(f"/api/queue/v1/task/{TASK_ID}/runs/0/artifacts/")
    result = run_helper(tmp_path / "out", fake, RUN_ID="1")
    assert result.returncode == EXIT_TASKCLUSTER_REQUEST_FAILED == 17
    assert "a Taskcluster request failed" in result.stderr
    # Nothing half-written is left for the next run to trust.
    assert not any(p.name.startswith("model") for p in (tmp_path / "out").glob("*"))


def test_the_train_step_exits_17_when_the_previous_run_cannot_be_fetched(tmp_path, fake):
    fake.fail.add("/api/queue/")
    corpus = tmp_path / "corpus"
    write_corpus(corpus / "corpus.en.zst", ["a"])
    write_corpus(corpus / "corpus.fr.zst", ["b"])
    args = [
        "--model-type", "teacher", "--architecture", "tiny", "--src", "en", "--trg", "fr",
        "--train-dir", corpus, "--devset-dir", corpus, "--vocab", tmp_path / "vocab.spm",
        "--output-dir", tmp_path / "model",
    ]  # fmt: skip
    env = step_env(RUN_ID="1", TASK_ID=TASK_ID, TASKCLUSTER_ROOT_URL=fake.root_url)
    result = run_step("pipeline.train.train", args, env=env, check=False)
    assert result.returncode == 17, result.stderr
    assert any("/runs/0/artifacts" in path for _, path in fake.requests)


def test_kill_9_while_fetching_then_rerun_gives_the_same_files(tmp_path, fake):
    reference = tmp_path / "reference"
    assert run_helper(reference, fake, RUN_ID="1").returncode == 0
    out = tmp_path / "out"
    environment = step_env(TASK_ID=TASK_ID, TASKCLUSTER_ROOT_URL=fake.root_url, RUN_ID="1")
    slow = fake.handle

    def slow_handle(method, path, body):
        time.sleep(0.3)
        return slow(method, path, body)

    fake.handle = slow_handle
    process = subprocess.Popen(
        [sys.executable, "-c", HELPER, "--output-dir", str(out)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while not (out.exists() and any(out.iterdir())) and time.time() < deadline:
        time.sleep(0.05)
    kill_running(process, group=False, what="the fetch")  # fails the test if it had ended
    fake.handle = slow
    assert run_helper(out, fake, RUN_ID="1").returncode == 0
    assert digests(out) == digests(reference)
    assert not list(out.glob(".*.tmp"))


@pytest.mark.e2e
def test_a_retried_training_run_continues_from_the_uploaded_checkpoint(tmp_path):
    """Real Marian: run 0 trains 4 updates and 'uploads' its artifacts folder; run 1 (RUN_ID=1) on a fresh
    folder fetches them from the fake API and goes on to 8 updates instead of starting over."""
    corpus, devset = tmp_path / "corpus", tmp_path / "devset"
    pairs = sample_pairs(500)
    dev = sample_pairs(30, "dev")
    for folder, rows in ((corpus, pairs), (devset, dev)):
        write_corpus(folder / "corpus.en.zst", [s for s, _ in rows])
        write_corpus(folder / "corpus.fr.zst", [t for _, t in rows])
    vocab = tmp_path / "vocab"
    build_vocab(corpus, vocab, 512, sample_size=500)

    def train(out, updates, env):
        marian_args = {"after": f"{updates}u", "valid-freq": 4, "save-freq": 4, "disp-freq": 2}
        return run_step("pipeline.train.train", [
            "--model-type", "teacher", "--architecture", "tiny", "--src", "en", "--trg", "fr",
            "--train-dir", corpus, "--devset-dir", devset, "--vocab", vocab / "vocab.spm",
            "--marian-args", json.dumps(marian_args), "--output-dir", out,
        ], env=env)  # fmt: skip

    first = tmp_path / "run0"
    train(first, 4, step_env())
    with serve(FakeTaskcluster()) as fake:
        fake.add_task(TASK_ID, {"metadata": {"name": "train-teacher-en-fr-1"}}, state="running", runs=2)
        for path in first.iterdir():
            if path.is_file():
                fake.add_artifact(TASK_ID, f"public/build/{path.name}", path.read_bytes(), run_id=0)
        second = tmp_path / "run1"
        result = train(second, 8, step_env(RUN_ID="1", TASK_ID=TASK_ID, TASKCLUSTER_ROOT_URL=fake.root_url))
    assert "resuming from run 0" in result.stderr
    assert "resuming the training from the checkpoint" in result.stderr
    log = (second / "train.log").read_text()
    assert "Up. 4 " in log and "Up. 8 " in log
    # Continued, not restarted: updates 1-4 were trained once, by run 0.
    assert log.count("Up. 2 ") == 1
    assert (second / "final.model.npz").exists()


# -- checkpoints published while training (pipeline/common/taskcluster_checkpoints.py) ---------------------


def publish_checkpoint(fake, run_id: int, updates: int, files: dict[str, bytes]):
    """Seeds what CheckpointPublisher leaves: the files, then their manifest."""
    manifest = {"updates": updates, "files": {}}
    for name, content in files.items():
        fake.add_artifact(TASK_ID, f"public/checkpoints/{updates}/{name}", content, run_id=run_id)
        manifest["files"][name] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    fake.add_artifact(TASK_ID, f"public/checkpoints/{updates}/manifest.json", json.dumps(manifest), run_id)


def test_a_preempted_run_resumes_from_its_newest_published_checkpoint(tmp_path, fake):
    # Run 1 was preempted: no final upload, two published checkpoints and a third without its manifest.
    old = {"model.npz": b"old", "model.npz.progress.yml": b"batches: 400\n"}
    new = {"model.npz": b"new" * 5000, "model.npz.progress.yml": b"batches: 800\n", "devset.out": b"x"}
    publish_checkpoint(fake, 1, 400, old)
    publish_checkpoint(fake, 1, 800, new)
    fake.add_artifact(TASK_ID, "public/checkpoints/1200/model.npz", b"half", run_id=1)
    result = run_helper(tmp_path / "out", fake, RUN_ID="2")
    assert result.returncode == 0, result.stderr
    assert "run 1" in result.stdout and "published at update 800" in result.stderr
    assert (tmp_path / "out" / "model.npz").read_bytes() == new["model.npz"]
    assert not (tmp_path / "out" / "devset.out").exists()  # not one of the wanted patterns


def test_a_final_upload_newer_than_the_published_checkpoint_wins(tmp_path, fake):
    publish_checkpoint(fake, 0, 100, {"model.npz": b"early", "model.npz.progress.yml": b"batches: 100\n"})
    result = run_helper(tmp_path / "out", fake, RUN_ID="1")  # run 0's final upload is at update 200
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.npz").read_bytes() == CHECKPOINT["model.npz"]


def test_a_published_file_that_differs_from_its_manifest_is_refused(tmp_path, fake):
    publish_checkpoint(fake, 1, 900, {"model.npz": b"good", "model.npz.progress.yml": b"batches: 900\n"})
    fake.add_artifact(TASK_ID, "public/checkpoints/900/model.npz", b"corrupted", run_id=1)
    result = run_helper(tmp_path / "out", fake, RUN_ID="2")
    assert result.returncode == EXIT_TASKCLUSTER_REQUEST_FAILED, result.stderr
    assert "sha256 differs" in result.stderr
    assert not (tmp_path / "out" / "model.npz").exists()


def test_snapshot_waits_for_marian_to_finish_saving(tmp_path):
    import zipfile

    from pipeline.common.taskcluster_checkpoints import snapshot

    out, stage = tmp_path / "model", tmp_path / "stage"
    out.mkdir()
    for name in ("model.npz", "model.npz.optimizer.npz"):
        with zipfile.ZipFile(out / name, "w") as archive:
            archive.writestr("w.npy", name * 100)
    (out / "train.log").write_text("log\n")
    assert snapshot(out, ["model.npz*", "train.log"], stage, settle_s=0) is None  # no checkpoint yet
    (out / "model.npz.progress.yml").write_text("epochs: 1\nbatches: 300\n")
    # Just written: Marian may still be writing the rest of the checkpoint.
    assert snapshot(out, ["model.npz*", "train.log"], stage, settle_s=60) is None
    assert snapshot(out, ["model.npz*", "train.log"], stage, settle_s=0) == 300
    assert sorted(p.name for p in stage.iterdir()) == [
        "model.npz", "model.npz.optimizer.npz", "model.npz.progress.yml", "train.log",
    ]  # fmt: skip
    # Saved, but the zip is truncated (a full disk): never published.
    (out / "model.npz.optimizer.npz").write_bytes(b"PK half written")
    assert snapshot(out, ["model.npz*"], stage, settle_s=0) is None


@pytest.mark.e2e
def test_a_training_killed_like_a_preempted_worker_continues_from_its_published_checkpoint(tmp_path):
    """Real Marian on the fake API: run 0 publishes checkpoints while it trains and is SIGKILLed with no
    final upload (a spot instance reclaimed); run 1 on a fresh folder continues from the newest one."""
    corpus, devset = tmp_path / "corpus", tmp_path / "devset"
    for folder, rows in ((corpus, sample_pairs(500)), (devset, sample_pairs(30, "dev"))):
        write_corpus(folder / "corpus.en.zst", [s for s, _ in rows])
        write_corpus(folder / "corpus.fr.zst", [t for _, t in rows])
    vocab = tmp_path / "vocab"
    build_vocab(corpus, vocab, 512, sample_size=500)
    micro = {"dim-emb": 32, "transformer-dim-ffn": 64, "enc-depth": 1, "dec-depth": 1, "mini-batch": 8,
             "mini-batch-fit": False, "maxi-batch": 10, "valid-mini-batch": 16}  # fmt: skip

    def args(out, updates):
        marian_args = {**micro, "after": f"{updates}u", "valid-freq": 20, "save-freq": 20, "disp-freq": 10}
        return [
            "--model-type", "teacher", "--architecture", "tiny", "--src", "en", "--trg", "fr",
            "--train-dir", corpus, "--devset-dir", devset, "--vocab", vocab / "vocab.spm",
            "--marian-args", json.dumps(marian_args), "--output-dir", out,
        ]  # fmt: skip

    with serve(FakeTaskcluster()) as fake:
        fake.add_task(TASK_ID, {"metadata": {"name": "train-teacher-en-fr-1"}, "expires": "2099-01-01T00:00:00.000Z"},
                      state="running", runs=2)  # fmt: skip
        env = {"TASK_ID": TASK_ID, "TASKCLUSTER_PROXY_URL": fake.root_url, "TASKCLUSTER_ROOT_URL": fake.root_url,
               "CHECKPOINT_UPLOAD_MINUTES": "0", "CHECKPOINT_POLL_SECONDS": "0.1",
               "CHECKPOINT_SETTLE_SECONDS": "0.3"}  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.train.train", *map(str, args(tmp_path / "run0", 100000))],
            cwd=REPO_ROOT, env=step_env(RUN_ID="0", **env), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.time() + 300
        manifests = []
        while time.time() < deadline and len(manifests) < 2:
            time.sleep(0.2)
            manifests = [
                n for (_, run, n) in list(fake.artifacts) if run == 0 and n.endswith("manifest.json")
            ]
        kill_running(process, what="the training")  # fails the test if it had ended
        assert len(manifests) >= 2, "no checkpoints were published while training"
        assert not [n for (_, _, n) in fake.artifacts if n.startswith("public/build/")]
        newest = max(int(n.split("/")[2]) for n in manifests)
        manifest = json.loads(fake.artifacts[(TASK_ID, 0, f"public/checkpoints/{newest}/manifest.json")])
        assert {"model.npz", "model.npz.optimizer.npz", "model.npz.progress.yml"} <= set(manifest["files"])

        target = newest + 40
        result = run_step(
            "pipeline.train.train", args(tmp_path / "run1", target), env=step_env(RUN_ID="1", **env)
        )
    assert f"published at update {newest}" in result.stderr
    assert "resuming the training from the checkpoint" in result.stderr
    log = (tmp_path / "run1" / "train.log").read_text()
    assert f"Up. {target} " in log
    progress = (tmp_path / "run1" / "model.npz.progress.yml").read_text()
    assert f"batches: {target}" in progress


def test_the_publisher_uploads_object_artifacts_with_the_manifest_last(tmp_path, monkeypatch):
    import zipfile

    from pipeline.common.taskcluster_checkpoints import CheckpointPublisher

    out = tmp_path / "model"
    out.mkdir()
    with zipfile.ZipFile(out / "model.npz", "w") as archive:
        archive.writestr("w.npy", b"w" * 20000)  # over the inline size: uploaded to a put URL
    (out / "model.npz.progress.yml").write_text("batches: 60\n")
    monkeypatch.setenv("CHECKPOINT_SETTLE_SECONDS", "0")
    with serve(FakeTaskcluster()) as fake:
        fake.add_task(TASK_ID, {"expires": "2099-01-01T00:00:00.000Z"}, state="running")
        for name, value in {"TASK_ID": TASK_ID, "RUN_ID": "0", "TASKCLUSTER_PROXY_URL": fake.root_url,
                            "TASKCLUSTER_ROOT_URL": fake.root_url}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        with CheckpointPublisher(out, ["model.npz*"], interval_s=0, poll_s=0.05) as publisher:
            deadline = time.time() + 30
            while not publisher.published and time.time() < deadline:
                time.sleep(0.05)
        assert publisher.published == [60]
        names = [name for (_, _, name) in fake.artifacts]
        assert names[-1] == "public/checkpoints/60/manifest.json"
        assert (
            fake.artifacts[(TASK_ID, 0, "public/checkpoints/60/model.npz")]
            == (out / "model.npz").read_bytes()
        )
        assert any(path.startswith("/object-data/") for _, path in fake.requests)
    assert not (out / ".checkpoint-upload").exists()
    # Without the proxy (the local engine, a first run elsewhere) it does nothing.
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL")
    assert not CheckpointPublisher(out, ["model.npz*"]).active
