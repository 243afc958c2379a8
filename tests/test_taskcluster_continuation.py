"""Continuation: a config that names an earlier run's vocabulary or teacher models (addresses or task ids) gets
download tasks in their place, and the graph leaves out exactly the tasks they replace. Plus the download step
(pipeline/data/download_artifacts.py): from a folder address, from a task's artifacts, bad input, kill -9."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fake_taskcluster import FakeTaskcluster, serve

from conftest import REPO_ROOT, kill_running, run_step, step_env
from translations_taskgraph.render import generator_for
from translations_taskgraph.training_config import ConfigError, validate_training_config

DOWNLOAD = "pipeline.data.download_artifacts"
TASK_ID = "TeacherTask00000000000"
FILES = {
    "final.model.npz": b"weights" * 20000,
    "final.model.npz.decoder.yml": b"models: [final.model.npz]\n",
    "vocab.spm": b"sentencepiece" * 100,
}


def tiny(**continuation):
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    # The teacher path, without back-translation and distillation.
    config["datasets"]["mono-src"] = config["datasets"]["mono-trg"] = []
    if continuation:
        config["continuation"] = continuation
    return config


def target(config) -> dict:
    graph = generator_for(validate_training_config(config)).target_task_graph
    return {label: task for label, task in graph.tasks.items() if not label.startswith("docker-image-")}


VOCAB = {"src": "https://example.org/run1/vocab", "trg": "https://example.org/run1/vocab"}


def test_a_continued_vocab_downloads_and_leaves_out_the_vocab_training():
    config = tiny(vocab=VOCAB)
    config["target-stage"] = "build-vocab"
    plain = tiny()
    plain["target-stage"] = "build-vocab"
    before, after = target(plain), target(config)
    # Training the vocabulary needed the whole corpus preparation; downloading it needs nothing.
    assert set(before) == {
        "build-vocab-en-fr",
        "corpus-merge-parallel-en-fr",
        "corpus-clean-parallel-local_data_l10n_en_fr_parallel-en-fr",
        "corpus-clean-parallel-bicleaner-ai-local_data_l10n_en_fr_parallel-en-fr",
        "dataset-local_data_l10n_en_fr_parallel-en-fr",
        # the devtest and test sets decontaminate the corpus
        "dataset-local_data_l10n_en_fr_dev-en-fr",
        "dataset-local_data_l10n_en_fr_test-en-fr",
    }
    assert set(after) == {"build-vocab-en-fr"}
    step = after["build-vocab-en-fr"].attributes["step"]
    assert step["module"] == DOWNLOAD
    assert ["--source", VOCAB["src"]] in step["args"] and ["--files", "vocab.spm"] in step["args"]


def test_continued_split_vocabularies_download_each_from_its_own_address(caplog):
    """The reference's configs give each vocabulary's file address (`.../public%2Fbuild%2Fvocab.ar.spm`)."""
    src = "https://tc.example.org/api/queue/v1/task/T/runs/0/artifacts/public%2Fbuild%2Fvocab.en.spm"
    trg = "https://tc.example.org/api/queue/v1/task/T/runs/0/artifacts/public%2Fbuild%2Fvocab.fr.spm"
    config = tiny(vocab={"src": src, "trg": trg})
    config["experiment"]["spm-vocab-split"] = True
    config["target-stage"] = "build-vocab"
    step = target(config)["build-vocab-en-fr"].attributes["step"]
    assert step["outputs"] == ["vocab.en.spm", "vocab.fr.spm"]
    assert json.loads(dict(step["args"])["--file-sources"]) == {"vocab.en.spm": src, "vocab.fr.spm": trg}
    # Without spm-vocab-split, two addresses are the reference's one shared vocabulary under two names.
    config["experiment"]["spm-vocab-split"] = False
    step = target(config)["build-vocab-en-fr"].attributes["step"]
    assert step["outputs"] == ["vocab.spm"] and ["--source", src] in step["args"]
    assert "src is used as the shared vocabulary" in caplog.text


def test_continued_teachers_are_downloaded_per_member():
    urls = ["https://example.org/run1/teacher1", TASK_ID]
    config = tiny(models={"teacher": {"urls": urls, "mode": "use", "type": "default"}})
    config["experiment"]["teacher-ensemble"] = 2
    config["target-stage"] = "evaluate-teacher"
    after = target(config)
    assert {label for label in after if label.startswith("train-teacher")} == {
        "train-teacher-en-fr-1",
        "train-teacher-en-fr-2",
    }
    for member, url in enumerate(urls, 1):
        task = after[f"train-teacher-en-fr-{member}"]
        assert ["--source", url] in task.attributes["step"]["args"]
        assert task.task["workerType"] == "b-linux-large"
    # Evaluation still runs (on the downloaded models); the corpus and the vocabulary are not needed.
    assert {label for label in after if label.startswith("evaluate-teacher")}
    assert not any(label.startswith(("corpus-", "build-vocab")) for label in after)
    assert set(after) - {
        label for label in after if label.startswith(("train-teacher", "evaluate-teacher"))
    } == {"dataset-local_data_l10n_en_fr_test-en-fr"}


def test_a_continued_backward_model_is_downloaded_and_its_training_left_out():
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())  # with back-translation
    config["continuation"] = {"models": {"backwards": {"url": "https://example.org/run1/backward"}}}
    after = target(config)
    task = after["backtranslations-train-backwards-model-en-fr"]
    assert task.attributes["step"]["module"] == DOWNLOAD
    assert ["--source", "https://example.org/run1/backward"] in task.attributes["step"]["args"]
    # Back-translation uses the downloaded model; the report reads no training log of it (there is none).
    assert any(label.startswith("backtranslations-mono-trg-translate") for label in after)
    report = dict(after["report-en-fr"].attributes["step"]["args"])
    assert "--backward-logs" not in report and "--backward-summaries" not in report
    assert "--teacher-logs" in report


def test_init_mode_downloads_the_weights_and_the_vocabulary_and_trains_from_them():
    urls = ["https://example.org/es-en/teacher1", "https://example.org/es-en/teacher2"]
    config = tiny(models={"teacher": {"urls": urls, "mode": "init"}})
    config["experiment"]["teacher-ensemble"] = 2
    config["target-stage"] = "train-teacher"
    after = target(config)
    # The vocabulary is the pretrained model's: downloaded from the first teacher's folder.
    vocab = after["build-vocab-en-fr"].attributes["step"]
    assert vocab["module"] == DOWNLOAD and ["--source", urls[0]] in vocab["args"]
    for member, url in enumerate(urls, 1):
        init = after[f"continuation-init-model-teacher-en-fr-{member}"].attributes["step"]
        assert ["--source", url] in init["args"] and ["--files", "final.model.npz"] in init["args"]
        train = dict(after[f"train-teacher-en-fr-{member}"].attributes["step"]["args"])
        # The teacher still trains, on this run's corpus, from its own member's weights.
        assert train["--init-model"] == {
            "task": f"continuation-init-model-teacher-en-fr-{member}",
            "artifact": "final.model.npz",
        }
        assert train["--train-dir"]["task"] == "corpus-merge-parallel-en-fr"
    # Without init, no such task and no --init-model.
    plain = tiny()
    plain["target-stage"] = "train-teacher"
    before = target(plain)
    assert not any(label.startswith("continuation-init-model") for label in before)
    assert "--init-model" not in dict(before["train-teacher-en-fr-1"].attributes["step"]["args"])
    # mode continue is refused, naming the key.
    config["continuation"]["models"]["teacher"]["mode"] = "continue"
    with pytest.raises(
        ConfigError, match="continuation.models.teacher.mode: not supported yet: mode 'continue'"
    ):
        validate_training_config(config)


def test_the_references_pretrained_models_read_as_continuation():
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    config["experiment"]["pretrained-models"] = {
        "train-backwards": {"urls": [TASK_ID], "mode": "use", "type": "default"}
    }
    validated = validate_training_config(config)
    assert validated["continuation"]["models"]["backwards"] == {
        "url": TASK_ID,
        "mode": "use",
        "type": "default",
    }
    assert "pretrained-models" not in validated["experiment"]
    # One reference config names the role itself.
    config["experiment"]["pretrained-models"] = {"backwards": {"urls": [TASK_ID], "mode": "use"}}
    assert validate_training_config(config)["continuation"]["models"]["backwards"]["url"] == TASK_ID
    config["experiment"]["pretrained-models"] = {"train-student": {"urls": [TASK_ID]}}
    with pytest.raises(ConfigError, match="experiment.pretrained-models.train-student: not supported yet"):
        validate_training_config(config)


@pytest.mark.parametrize(
    "continuation,key",
    [
        ({"vocab": {"src": "ftp://a/v", "trg": "https://b/v"}}, "continuation.vocab.src"),
        (
            {"models": {"teacher": {"urls": ["https://a/1", "https://a/2"]}}},
            "continuation.models.teacher.urls",
        ),
        ({"models": {"teacher": {"urls": ["ftp://a/1"]}}}, "continuation.models.teacher.urls.0"),
        (
            {"models": {"teacher": {"urls": ["https://a/1"], "mode": "continue"}}},
            "continuation.models.teacher.mode",
        ),
        ({"corpora": {"distillation": {"src": "https://a/s"}}}, "continuation.corpora.distillation.trg"),
        ({"corpora": {"monolingual": {"src": "https://a/s", "trg": "https://a/t"}}}, "continuation.corpora"),
    ],
)
def test_a_wrong_continuation_is_refused_naming_the_key(continuation, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_training_config(tiny(**continuation))


@pytest.fixture
def fake():
    with serve(FakeTaskcluster()) as fake:
        fake.add_task(TASK_ID, {"metadata": {"name": "train-teacher-en-fr-1"}})
        for name, content in FILES.items():
            fake.add_artifact(TASK_ID, f"public/build/{name}", content)
        yield fake


def digests(folder: Path) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


EXPECTED = {name: hashlib.sha256(content).hexdigest() for name, content in FILES.items()}


FILE_LIST = ",".join(FILES)


def args(source, out, files=FILE_LIST):
    return ["--source", source, "--files", files, "--output-dir", out, "--retry-seconds", "0.01"]


def test_download_from_a_folder_address_and_from_a_task(tmp_path, fake):
    folder = f"{fake.root_url}/storage/{TASK_ID}/0/public/build"
    run_step(DOWNLOAD, args(folder, tmp_path / "a"))
    assert digests(tmp_path / "a") == EXPECTED
    run_step(DOWNLOAD, args(TASK_ID, tmp_path / "b"), env=step_env(TASKCLUSTER_ROOT_URL=fake.root_url))
    assert digests(tmp_path / "b") == EXPECTED
    requests = len(fake.requests)
    assert "nothing to do" in run_step(DOWNLOAD, args(folder, tmp_path / "a")).stderr
    assert len(fake.requests) == requests


def test_download_bad_input_fails_clearly_and_writes_nothing(tmp_path, fake):
    out = tmp_path / "out"
    for bad, message in (
        (args("ftp://example.org/x", out), "--source must be"),
        (
            args(f"{fake.root_url}/storage/{TASK_ID}/0/public/build", out, files="../etc/passwd"),
            "plain file names",
        ),
        (
            args(f"{fake.root_url}/storage/{TASK_ID}/0/public/build", out, files="missing.npz"),
            "does not exist",
        ),
    ):
        result = run_step(DOWNLOAD, bad, check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    env = step_env()
    env.pop("TASKCLUSTER_ROOT_URL", None)
    env.pop("TASKCLUSTER_PROXY_URL", None)
    result = run_step(DOWNLOAD, args(TASK_ID, out), env=env, check=False)
    assert result.returncode == 1 and "TASKCLUSTER_ROOT_URL" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_failed_taskcluster_request_exits_17(tmp_path, fake):
    fake.fail.add("/api/queue/")
    result = run_step(
        DOWNLOAD,
        args(TASK_ID, tmp_path / "out"),
        env=step_env(TASKCLUSTER_ROOT_URL=fake.root_url),
        check=False,
    )
    assert result.returncode == 17, result.stderr


def test_kill_9_during_the_download_then_rerun_gives_the_same_files(tmp_path, fake):
    original = fake.handle

    def slow(method, path, body):
        time.sleep(0.4)
        return original(method, path, body)

    fake.handle = slow
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", DOWNLOAD, *map(str, args(TASK_ID, out))],
        cwd=REPO_ROOT,
        env=step_env(TASKCLUSTER_ROOT_URL=fake.root_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while (
        not (out.exists() and any(p.name == "final.model.npz" for p in out.iterdir()))
        and time.time() < deadline
    ):
        time.sleep(0.05)
    kill_running(process, group=False, what="the download")  # fails the test if it had ended
    assert len(digests(out)) < len(FILES)
    fake.handle = original
    run_step(DOWNLOAD, args(TASK_ID, out), env=step_env(TASKCLUSTER_ROOT_URL=fake.root_url))
    assert digests(out) == EXPECTED
    assert not list(out.glob(".*.tmp"))


def test_a_reference_model_folder_is_read_under_its_own_names(tmp_path, fake):
    """The reference publishes final.model.npz.best-chrf.npz and its decoder config: fetched as ours, the decoder
    config rewritten to name our files."""
    fake.add_artifact("RefTeacher000000000000", "public/build/final.model.npz.best-chrf.npz", b"ref" * 1000)
    fake.add_artifact(
        "RefTeacher000000000000",
        "public/build/final.model.npz.best-chrf.npz.decoder.yml",
        b"models: [/data/model.npz.best-chrf.npz]\nvocabs: [/data/vocab.spm, /data/vocab.spm]\nbeam-size: 4\n",
    )
    folder = f"{fake.root_url}/storage/RefTeacher000000000000/0/public/build"
    out = tmp_path / "out"
    result = run_step(DOWNLOAD, args(folder, out, files="final.model.npz,final.model.npz.decoder.yml"))
    assert "(the reference's final.model.npz.best-chrf.npz)" in result.stderr
    assert (out / "final.model.npz").read_bytes() == b"ref" * 1000
    decoder = yaml.safe_load((out / "final.model.npz.decoder.yml").read_text())
    assert decoder == {
        "models": ["final.model.npz"],
        "vocabs": ["vocab.spm", "vocab.spm"],
        "beam-size": 4,
        "relative-paths": True,
    }


def test_file_sources_fetch_each_file_from_its_own_address(tmp_path, fake):
    folder = f"{fake.root_url}/storage/{TASK_ID}/0/public/build"
    sources = {"vocab.en.spm": f"{folder}/vocab.spm", "final.model.npz": TASK_ID}
    out = tmp_path / "out"
    run_step(
        DOWNLOAD,
        ["--file-sources", json.dumps(sources), "--output-dir", out, "--retry-seconds", "0.01"],
        env=step_env(TASKCLUSTER_ROOT_URL=fake.root_url),
    )
    assert (out / "vocab.en.spm").read_bytes() == FILES["vocab.spm"]
    assert (out / "final.model.npz").read_bytes() == FILES["final.model.npz"]
    both = ["--file-sources", "{}", "--source", folder, "--files", "x", "--output-dir", tmp_path / "b"]
    result = run_step(DOWNLOAD, both, check=False)
    assert result.returncode == 1 and "not both" in result.stderr


CORPUS = "https://tc.example.org/api/queue/v1/task/D/runs/0/artifacts/public%2Fbuild%2Fcorpus"


def test_a_continued_distilled_corpus_trains_the_student_alone(caplog):
    """The reference's redistill configs: no train datasets, the distilled corpus and the vocabulary of an
    earlier run; the graph is the student's chain."""
    config = tiny(
        vocab={"src": "https://example.org/run1/vocab", "trg": "https://example.org/run1/vocab"},
        corpora={
            "distillation": {
                "src": f"{CORPUS}.en.zst",
                "trg": f"{CORPUS}.fr.zst",
                "alignments": f"{CORPUS}.aln.zst",
            }
        },
    )
    del config["datasets"]["train"]
    with caplog.at_level("INFO", logger="training-config"):
        validated = validate_training_config(config)
    assert validated["datasets"]["train"] == []
    assert "continuation.corpora.distillation: its alignments are recomputed here" in caplog.text
    config["target-stage"] = "all-pipeline"
    after = target(config)
    kinds = {task.kind for task in after.values()}
    assert {"train-teacher", "backtranslations-train-backwards-model", "corpus-merge-parallel"}.isdisjoint(
        kinds
    )
    assert {"distillation-student-model-train", "export", "report", "corpus-align-distillation"} <= kinds
    step = after["distillation-corpus-final-filtering-en-fr"].attributes["step"]
    assert step["module"] == DOWNLOAD and step["outputs"] == ["corpus.en.zst", "corpus.fr.zst"]
    assert json.loads(dict(step["args"])["--file-sources"]) == {
        "corpus.en.zst": f"{CORPUS}.en.zst",
        "corpus.fr.zst": f"{CORPUS}.fr.zst",
    }
    # The report has no merged corpus to describe; the alignment has no priors of the parallel corpus.
    assert "--merged" not in dict(after["report-en-fr"].attributes["step"]["args"])
    assert "--priors" not in dict(after["corpus-align-distillation-en-fr"].attributes["step"]["args"])


def test_a_continued_corpus_without_train_datasets_needs_the_vocabulary():
    config = tiny(corpora={"distillation": {"src": f"{CORPUS}.en.zst", "trg": f"{CORPUS}.fr.zst"}})
    del config["datasets"]["train"]
    with pytest.raises(
        ConfigError, match="continuation.vocab: required with continuation.corpora.distillation"
    ):
        validate_training_config(config)
    # Back-translations alone are no corpus to train on.
    config = tiny(corpora={"backtranslations": {"src": f"{CORPUS}.en.zst", "trg": f"{CORPUS}.fr.zst"}})
    del config["datasets"]["train"]
    with pytest.raises(ConfigError, match="datasets.train: required key not provided"):
        validate_training_config(config)


def test_continued_back_translations_replace_the_back_translation():
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    config["continuation"] = {
        "corpora": {"backtranslations": {"src": f"{CORPUS}.bt.en.zst", "trg": f"{CORPUS}.bt.fr.zst"}}
    }
    config["target-stage"] = "train-teacher"
    after = target(config)
    step = after["backtranslations-mono-trg-dechunk-translations-en-fr"].attributes["step"]
    assert step["module"] == DOWNLOAD
    assert not any(label.startswith("backtranslations-mono-trg-translate") for label in after)
    assert not any(label.startswith("backtranslations-train-backwards-model") for label in after)
