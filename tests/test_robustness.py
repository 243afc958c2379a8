"""Defects found by trying the pipeline with broken inputs (issue 7): each test failed before its fix."""

import copy
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import zstandard

from conftest import (
    REPO_ROOT,
    finish,
    run_step,
    sample_pairs,
    start_localrun,
    write_corpus,
    write_failing_plan,
)
from pipeline.common.io import read_lines, write_json, write_lines
from pipeline.common.step import StepError
from translations_taskgraph.training_config import (
    ConfigError,
    parse_training_config,
    validate_training_config,
)

TINY = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
# The alias-bomb tests append their own `taskcluster:` section.
WITHOUT_TASKCLUSTER = {key: value for key, value in TINY.items() if key != "taskcluster"}


def config_with(**changes) -> dict:
    """The tiny config with dotted keys set: config_with(**{"experiment.trg": "zz"})."""
    config = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = config
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return config


def refusal(config) -> str:
    with pytest.raises(ConfigError) as error:
        validate_training_config(config)
    return str(error.value)


# 1. Truncated .zst ---------------------------------------------------------------------------------------


def truncated_zst(path: Path, lines: int = 20_000) -> Path:
    data = "".join(f"sentence number {i} of a corpus that was cut short\n" for i in range(lines)).encode()
    compressed = zstandard.ZstdCompressor(level=3).compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compressed[: len(compressed) * 2 // 5])
    return path


def test_a_truncated_zst_file_is_an_error_not_a_shorter_corpus(tmp_path):
    path = truncated_zst(tmp_path / "mono.en.zst")
    with pytest.raises(StepError, match="truncated"):
        for _ in read_lines(path):
            pass


def test_truncated_zst_in_a_mono_import_fails(tmp_path):
    truncated_zst(tmp_path / "src" / "news.en.zst")
    result = run_step(
        "pipeline.data.import_dataset",
        ["--dataset", f"local_{tmp_path}/src/news", "--langs", "en", "--output-dir", tmp_path / "out"],
        check=False,
    )
    assert result.returncode == 1
    assert "truncated" in result.stderr
    assert not (tmp_path / "out" / "corpus.en.zst").exists()


def test_truncated_zst_in_a_parallel_import_is_named_as_such(tmp_path):
    truncated_zst(tmp_path / "src" / "c.en.zst")
    write_corpus(tmp_path / "src" / "c.fr.zst", [f"phrase {i}" for i in range(20_000)])
    result = run_step(
        "pipeline.data.import_dataset",
        ["--dataset", f"local_{tmp_path}/src/c", "--langs", "en,fr", "--output-dir", tmp_path / "out"],
        check=False,
    )
    assert result.returncode == 1
    assert "truncated" in result.stderr and "line counts differ" not in result.stderr


def test_multi_frame_zst_is_read_whole(tmp_path):
    path = tmp_path / "two-frames.zst"
    path.write_bytes(
        zstandard.ZstdCompressor().compress(b"a\nb\n") + zstandard.ZstdCompressor().compress(b"c\n")
    )
    assert list(read_lines(path)) == ["a", "b", "c"]


# 2. Configs that passed the schema and failed later ------------------------------------------------------


@pytest.mark.parametrize(
    "changes,key,words",
    [
        ({"datasets.train": ["opus_Books"]}, "datasets.train.0", "opus_<corpus>/<version>"),
        ({"datasets.mono-src": ["flores_dev"]}, "datasets.mono-src.0", "cannot be monolingual data"),
        ({"experiment.trg": "zz"}, "experiment.trg", "language identification"),
        (
            {"datasets.test": ["local_data/l10n_en_fr/parallel"]},
            "datasets.test.0",
            "differ only in punctuation",
        ),
        ({"datasets.test": ["local_data/l10n-en-fr/parallel"]}, "datasets.test.0", "also a training dataset"),
    ],
)
def test_checks_of_later_stages_are_made_by_the_schema(changes, key, words):
    message = refusal(config_with(**changes))
    assert f"{key}:" in message and words in message


def test_language_id_can_be_switched_off_for_a_language_it_does_not_know():
    config = validate_training_config(
        config_with(**{"experiment.trg": "zz", "experiment.cleaning": {"language-id": False}})
    )
    assert config["experiment"]["trg"] == "zz"


def test_every_problem_is_reported_in_one_run():
    message = refusal(
        config_with(
            **{
                "datasets.train": [
                    "huggingface_x",
                    "local_data/l10n-en-fr/train",
                    "local_data/l10n_en_fr/train",
                ],
                "experiment.trg": "zz",
                "datasets.mono-src": ["sacrebleu_wmt14"],
            }
        )
    )
    assert "datasets.train.0: dataset 'huggingface_x' has unknown provider" in message
    assert "datasets.train.2: 'local_data/l10n_en_fr/train' and 'local_data/l10n-en-fr/train'" in message
    assert "experiment.trg: language identification" in message
    assert "datasets.mono-src.0: sacrebleu_ datasets are parallel" in message


# 3. Edited local data ------------------------------------------------------------------------------------


def test_editing_a_local_dataset_reruns_its_import(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "dev", "test"):
        pairs = sample_pairs(50, "dev" if split != "train" else "train")
        write_corpus(data / f"{split}.en.txt", [s for s, _ in pairs])
        write_corpus(data / f"{split}.fr.txt", [t for _, t in pairs])
    config = config_with(
        **{
            "experiment.name": "edited",
            "datasets.train": [f"local_{data}/train"],
            "datasets.devtest": [f"local_{data}/dev"],
            "datasets.test": [f"local_{data}/test"],
            "target-stage": "dataset",
        }
    )
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    code, output = finish(start_localrun(config_path, runs))
    assert code == 0, output
    label = next(
        p.parent.parent.name
        for p in (runs / "edited").glob("dataset-*/artifacts/stats.json")
        if json.loads(p.read_text())["dataset"].endswith("/train")
    )
    stats = runs / "edited" / label / "artifacts" / "stats.json"
    assert json.loads(stats.read_text())["lines"] == 50

    with open(data / "train.en.txt", "a") as en, open(data / "train.fr.txt", "a") as fr:
        en.write("One more line.\n")
        fr.write("Une ligne de plus.\n")
    code, output = finish(start_localrun(config_path, runs, "--dry-run"))
    assert re.search(rf"\[ *stale\] {label}", output), output
    code, output = finish(start_localrun(config_path, runs))
    assert code == 0, output
    assert json.loads(stats.read_text())["lines"] == 51


# 4. local_ paths that escape the repository --------------------------------------------------------------


@pytest.mark.parametrize("name", ["local_../../etc/passwd", "local_/etc/passwd", "local_data/../../x"])
def test_local_paths_cannot_escape_the_repository(name, monkeypatch):
    monkeypatch.delenv("TRANSLATIONS_DATA_ROOT", raising=False)
    message = refusal(config_with(**{"datasets.train": [name]}))
    assert "datasets.train.0" in message and ("repository" in message)


def test_the_importer_refuses_a_path_outside_the_repository_too(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRANSLATIONS_DATA_ROOT"}
    result = run_step(
        "pipeline.data.import_dataset",
        ["--dataset", "local_../../etc/passwd", "--langs", "en", "--output-dir", tmp_path / "out"],
        env=env,
        check=False,
    )
    assert result.returncode == 1 and "outside the repository" in result.stderr


# 5. YAML edge cases --------------------------------------------------------------------------------------

ALIAS_BOMB = """
taskcluster:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_yaml_alias_bomb_is_refused_at_once():
    start = time.time()
    with pytest.raises(ConfigError, match="aliases"):
        parse_training_config(yaml.safe_dump(WITHOUT_TASKCLUSTER) + ALIAS_BOMB)
    assert time.time() - start < 5


def test_a_few_aliases_expanding_to_a_huge_config_are_refused():
    few = (
        "taskcluster:\n  a: &a ["
        + ",".join(["x"] * 1000)
        + "]\n  b: &b ["
        + ",".join(["*a"] * 60)
        + "]\n  c: ["
        + ",".join(["*b"] * 30)
        + "]\n"
    )
    with pytest.raises(ConfigError, match="expands to more than"):
        parse_training_config(few)


def test_duplicate_keys_are_refused_with_their_lines():
    with pytest.raises(ConfigError, match=r"duplicate key 'trg' on lines 3 and 4"):
        parse_training_config("experiment:\n  src: en\n  trg: fr\n  trg: de\n")
    # A later value that drops part of the earlier one is refused too.
    with pytest.raises(ConfigError, match=r"duplicate key 'c' on lines 1 and 3"):
        parse_training_config("c:\n  a: 1\nc:\n  b: 2\n")


def test_a_duplicate_key_whose_later_value_holds_all_of_the_earlier_is_kept_with_a_warning(caplog):
    # As in three of the reference's configs: an empty `continuation:` and later the full one.
    text = "continuation:\n  models: {}\nx: 1\ncontinuation:\n  models:\n    backwards: {mode: use}\n"
    assert parse_training_config(text)["continuation"] == {"models": {"backwards": {"mode": "use"}}}
    assert "duplicate key 'continuation' on lines 1 and 4: the later one is used" in caplog.text


def test_yaml_booleans_where_a_language_or_a_number_belongs():
    message = refusal(parse_training_config(yaml.safe_dump(TINY).replace("trg: fr", "trg: no")))
    assert "experiment.trg" in message and "quote" in message
    message = refusal(config_with(**{"experiment.teacher-ensemble": True}))
    assert "experiment.teacher-ensemble: expected an integer, got the YAML boolean true" in message


def run_localrun(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localrun", *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_config_files_and_folders_that_are_not_configs_get_one_line(tmp_path):
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(yaml.safe_dump(TINY).replace("name: tiny", "name: tiny # café").encode("latin-1"))
    file_as_runs_dir = tmp_path / "runs-file"
    file_as_runs_dir.write_text("")
    cases = [
        (["--config", latin1], "is not UTF-8 text (line"),
        (["--config", tmp_path], "is a directory"),
        (
            ["--config", REPO_ROOT / "configs" / "tiny.yml", "--runs-dir", file_as_runs_dir, "--dry-run"],
            "--runs-dir",
        ),
    ]
    for args, words in cases:
        result = run_localrun(*args)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr, result.stderr


# 6. NUL bytes, a cap of 0 --------------------------------------------------------------------------------


def test_nul_bytes_in_a_corpus_are_refused(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "c.en.txt").write_bytes(b"fine\nbad\x00line\n")
    (tmp_path / "src" / "c.fr.txt").write_bytes(b"bien\nmauvais\n")
    result = run_step(
        "pipeline.data.import_dataset",
        ["--dataset", f"local_{tmp_path}/src/c", "--langs", "en,fr", "--output-dir", tmp_path / "out"],
        check=False,
    )
    assert result.returncode == 1 and "line 2 holds a NUL byte" in result.stderr


def test_merge_refuses_a_cap_of_zero(tmp_path, parallel_dir):
    result = run_step(
        "pipeline.clean.merge_corpus",
        [
            "--input-dirs",
            parallel_dir,
            "--src",
            "en",
            "--trg",
            "fr",
            "--max-sentences",
            "0",
            "--output-dir",
            tmp_path / "m",
        ],
        check=False,
    )
    assert result.returncode == 2 and "must be at least 1" in result.stderr
    assert not (tmp_path / "m").exists()


# 7. File modes -------------------------------------------------------------------------------------------


def test_outputs_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"bleu": 1})
        with write_lines(tmp_path / "corpus.en.zst") as out:
            out.write("a")
    finally:
        os.umask(old)
    for name in ("metrics.json", "corpus.en.zst"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


# 8. Docs that name entry points ------------------------------------------------------------------------


def test_every_task_the_docs_name_exists():
    taskfile = yaml.safe_load((REPO_ROOT / "Taskfile.yml").read_text())
    texts = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    texts += sorted((REPO_ROOT / "configs").glob("*.yml"))
    for path in texts:
        for name in re.findall(r"`task ([a-z][a-z0-9-]*)", path.read_text()):
            assert name in taskfile["tasks"], f"{path.name} names `task {name}`, which Taskfile.yml lacks"


# 9. Each attempt's log is kept ---------------------------------------------------------------------------


def test_a_rerun_keeps_the_log_of_the_failed_attempt(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_failing_plan(run_dir, tmp_path / "missing")
    command = [
        sys.executable,
        "-m",
        "localrun.run_task",
        "--plan",
        run_dir / "plan.json",
        "--label",
        "merge",
        "--threads",
        "1",
        "--mem-mb",
        "1000",
        "--log",
        run_dir / "merge" / "task.log",
    ]
    env = dict(os.environ)
    for _ in range(2):
        assert subprocess.run(list(map(str, command)), cwd=REPO_ROOT, env=env).returncode == 1
    logs = sorted(p.name for p in (run_dir / "merge").glob("task*.log"))
    assert logs == ["task.1.log", "task.log"]
    first = (run_dir / "merge" / "task.1.log").read_text()
    assert "attempt 1" in first and "does not exist" in first and "exit status 1" in first
    current = (run_dir / "merge" / "task.log").read_text()
    assert "attempt 2" in current and "task.1.log" in current

    # An attempt that was killed (its log has no "attempt finished" line) is marked so when the next starts.
    with open(run_dir / "merge" / "task.log", "w") as log:
        log.write("[localrun] merge: attempt 2, started ...\nrunning: ...\n")
    subprocess.run(list(map(str, command)), cwd=REPO_ROOT, env=env)
    killed = (run_dir / "merge" / "task.2.log").read_text()
    assert "ended without a result" in killed
    assert "attempt 3" in (run_dir / "merge" / "task.log").read_text()


# The reference pipeline's config format ------------------------------------------------------------------

REFERENCE_STYLE = """
experiment:
  name: baseline
  src: en
  trg: fr
  best-model: chrf
  use-opuscleaner: "true"
  opuscleaner-mode: "custom"
  bicleaner:
    default-threshold: 0.5
    dataset-thresholds:
      opus_Books_v1: 0.0
  mono-max-sentences-src: 500_000_000
  mono-max-sentences-trg:
    total: 200_000_000
    per-dataset: 100_000_000
  spm-sample-size: 10_000_000
  spm-vocab-size: 32000
  teacher-ensemble: 2
  teacher-mode: "two-stage"
  teacher-decoder: ctranslate2
  student-model: base-memory
datasets:
  devtest: [flores_dev, flores_aug-mix_dev]
  test: [flores_devtest, sacrebleu_wmt14]
  train: [opus_Books/v1, mtdata_Statmt-news_commentary-16-eng-fra]
  mono-src: [news-crawl_news.2021, hplt_mono/v1.2]
  mono-trg: [news-crawl_news.2021]
marian-args:
  decoding-backward: {beam-size: '12', mini-batch-words: '2000'}
  training-teacher: {early-stopping: '20'}
target-stage: all-pipeline
previous-group-ids: []
wandb-publication: true
continuation:
  models:
    backwards: {url: "https://example.org/model", mode: use, type: default}
taskcluster:
  split-chunks: 20
  worker-classes: {default: gcp-spot}
"""


def test_a_config_in_the_reference_format_fails_only_on_what_is_not_built_yet():
    message = refusal(parse_training_config(REFERENCE_STYLE))
    lines = message.splitlines()[1:]
    assert lines and all("not supported yet" in line for line in lines), message
    assert "HPLT" in message
    # Built since: augmented evaluation sets (pipeline/data/augment.py), W&B (pipeline/eval/publish_wandb.py),
    # CTranslate2 teacher decoding (pipeline/translate/ctranslate2_decoder.py), a continued backward model.
    for built in ("aug-", "wandb", "teacher-decoder", "continuation.models.backwards"):
        assert built not in message


def test_the_reference_format_validates_once_the_unbuilt_settings_are_gone():
    text = REFERENCE_STYLE.replace("teacher-decoder: ctranslate2", "teacher-decoder: marian")
    text = text.replace(", hplt_mono/v1.2", ", hplt_mono/v2.0")
    text = text.split("continuation:")[0] + "taskcluster:" + text.split("taskcluster:")[1]
    config = validate_training_config(parse_training_config(text))
    assert config["experiment"]["use-opuscleaner"] is True
    assert config["experiment"]["mono-max-sentences-src"]["total"] == 500_000_000
    assert config["experiment"]["spm-vocab-size"] == 32000
    assert "previous-group-ids" not in config


def test_the_devtest_dataset_cannot_also_be_the_test_set():
    # The devset is decontaminated against the test sets: it would come out empty.
    message = refusal(config_with(**{"datasets.test": ["local_data/l10n-en-fr/dev"]}))
    assert "datasets.test.0: 'local_data/l10n-en-fr/dev' is also the devtest dataset" in message


def test_a_sigterm_to_the_task_runner_reaches_the_step_and_is_logged(tmp_path):
    # Slurm's time-limit warning (or scancel) may signal the runner alone: the step must get the SIGTERM
    # (not go on orphaned) and the runner must wait for it and log how it ended.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    step = {
        "module": "timeit",
        "args": [["-n", "1"], ["-s", "import time"], ["time.sleep(120)", []]],
        "outputs": [],
        "env": {},
    }
    task = {"kind": "sleep", "stage": "sleep", "step": step, "dependencies": [], "digest": "abc"}
    (run_dir / "plan.json").write_text(
        json.dumps({"order": ["sleep"], "targets": ["sleep"], "tasks": {"sleep": task}})
    )
    log = run_dir / "sleep" / "task.log"
    command = [sys.executable, "-m", "localrun.run_task", "--plan", run_dir / "plan.json", "--label", "sleep"]
    command += ["--threads", "1", "--mem-mb", "1000", "--log", log]
    env = dict(os.environ)
    runner = subprocess.Popen(list(map(str, command)), cwd=REPO_ROOT, env=env)
    deadline = time.time() + 30
    while "running:" not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # the step has started
    started = time.time()
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 128 + signal.SIGTERM  # the step's status, passed on
    assert time.time() - started < 20
    text = log.read_text()
    assert f"sleep failed with exit status {-signal.SIGTERM}" in text
    assert "attempt finished: exit status" in text
    assert not (run_dir / "sleep" / "done.json").exists()
