"""Inputs, retries and settings that misbehave (issue 23): each test failed on the code before its fix."""

import os
import random
import re
import string
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, finish, run_step, start_localrun, step_env, write_corpus, write_failing_plan
from pipeline.common.io import read_lines, read_pairs
from translations_taskgraph.training_config import (
    ConfigError,
    parse_training_config,
    validate_training_config,
)
from translations_taskgraph.transforms.step import local_input_digests

IMPORT = "pipeline.data.import_dataset"


def import_local(prefix: Path, output: Path, langs="en,fr", data_root: Path | None = None):
    env = step_env(TRANSLATIONS_DATA_ROOT=str(data_root or prefix.parent))
    return run_step(
        IMPORT, ["--dataset", f"local_{prefix}", "--langs", langs, "--output-dir", output], env, False
    )


# 1. Line ends of classic Mac OS, and 10c. a UTF-8 byte-order mark -------------------------------------------


def test_a_file_with_carriage_return_line_ends_is_refused_not_read_as_one_line(tmp_path):
    (tmp_path / "mac.en").write_bytes(b"one\rtwo\rthree\r")
    (tmp_path / "mac.fr").write_bytes(b"un\ndeux\ntrois\n")
    result = import_local(tmp_path / "mac", tmp_path / "out")
    assert result.returncode == 1
    assert "carriage return alone" in result.stderr and "mac.en" in result.stderr
    assert "tr '\\r' '\\n'" in result.stderr
    assert not (tmp_path / "out" / "corpus.en.zst").exists()


def test_windows_line_ends_and_stray_carriage_returns_still_read(tmp_path):
    (tmp_path / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    (tmp_path / "stray.txt").write_bytes(b"a\rb\nc\n")
    assert list(read_lines(tmp_path / "win.txt")) == ["one", "two"]
    assert list(read_lines(tmp_path / "stray.txt")) == ["a\rb", "c"]


def test_a_byte_order_mark_does_not_stick_to_the_first_sentence(tmp_path):
    (tmp_path / "bom.en").write_bytes("\ufeffHello\nWorld\n".encode())
    write_corpus(tmp_path / "bom.fr.gz", ["Bonjour", "Monde"])
    assert list(read_pairs(tmp_path / "bom.en", tmp_path / "bom.fr.gz")) == [
        ("Hello", "Bonjour"),
        ("World", "Monde"),
    ]
    result = import_local(tmp_path / "bom", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert list(read_lines(tmp_path / "out" / "corpus.en.zst"))[0] == "Hello"


# 2. Two files for one language ---------------------------------------------------------------------------


def test_a_gz_beside_the_plain_file_is_refused_as_ambiguous(tmp_path):
    write_corpus(tmp_path / "both.en", ["new line"])
    write_corpus(tmp_path / "both.en.gz", ["stale line"])
    write_corpus(tmp_path / "both.fr", ["nouvelle ligne"])
    result = import_local(tmp_path / "both", tmp_path / "out")
    assert result.returncode == 1
    assert "both.en.gz and" in result.stderr and "both.en all exist" in result.stderr
    assert "remove or rename all but one" in result.stderr
    assert not (tmp_path / "out" / "corpus.en.zst").exists()


# 5. Symbolic links out of the data folder ----------------------------------------------------------------


def test_a_symlink_out_of_the_data_folder_is_refused(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    write_corpus(outside / "secret.txt", ["root:x:0:0"])
    write_corpus(data / "link.fr", ["bonjour"])
    data.joinpath("link.en").symlink_to(outside / "secret.txt")
    result = import_local(data / "link", tmp_path / "out", data_root=data)
    assert result.returncode == 1
    assert (
        f"links to {outside / 'secret.txt'}, which is outside the repository and TRANSLATIONS_DATA_ROOT"
        in (result.stderr)
    )
    assert not (tmp_path / "out" / "corpus.en.zst").exists()
    # A link that stays inside the data folder is followed.
    write_corpus(data / "real.txt", ["hello"])
    data.joinpath("link.en").unlink()
    data.joinpath("link.en").symlink_to(data / "real.txt")
    assert import_local(data / "link", tmp_path / "out", data_root=data).returncode == 0
    assert list(read_lines(tmp_path / "out" / "corpus.en.zst")) == ["hello"]


# 3. Names with glob characters -----------------------------------------------------------------------------


def test_an_edit_to_a_dataset_whose_name_holds_glob_characters_makes_it_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATIONS_DATA_ROOT", str(tmp_path))
    for name in ("corpus[1]", "what?", "a[b]c"):
        write_corpus(tmp_path / f"{name}.en", ["Hello"])
        write_corpus(tmp_path / f"{name}.fr", ["Bonjour"])
        before = local_input_digests(f"local_{tmp_path / name}")
        assert sorted(before) == [f"{name}.en", f"{name}.fr"], name
        write_corpus(tmp_path / f"{name}.fr", ["Salut"])
        after = local_input_digests(f"local_{tmp_path / name}")
        assert after[f"{name}.fr"] != before[f"{name}.fr"] and after[f"{name}.en"] == before[f"{name}.en"]


# 4. Every attempt's log, through Snakemake's retries --------------------------------------------------------


def test_snakemake_retries_keep_every_attempts_log_numbered(tmp_path):
    from localrun.__main__ import snakemake_command

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan = write_failing_plan(run_dir, tmp_path / "missing")
    args = Namespace(cores=1, mem_gb=1.0, retries=2)
    env = dict(os.environ)
    result = subprocess.run(
        snakemake_command(plan, run_dir, args), cwd=REPO_ROOT, env=env, capture_output=True
    )
    assert result.returncode != 0
    logs = {p.name: p.read_text() for p in (run_dir / "merge").glob("task*.log")}
    assert sorted(logs) == ["task.1.log", "task.2.log", "task.log"]
    for number, name in enumerate(["task.1.log", "task.2.log", "task.log"], start=1):
        assert f"merge: attempt {number}," in logs[name], name
        assert "does not exist" in logs[name] and "exit status 1" in logs[name]


# 7. --cores and the other numbers of the local engine ----------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--cores", "0"], "--cores: must be at least 1, got 0"),
        (["--cores", "-1"], "--cores: must be at least 1, got -1"),
        (["--cores", "two"], "--cores: expected a number, got 'two'"),
        (["--mem-gb", "0"], "--mem-gb: must be at least 0.1"),
        (["--retries", "-1"], "--retries: must be 0 or more"),
    ],
)
def test_bad_engine_numbers_are_refused_at_once(tmp_path, option, message):
    started = time.monotonic()
    code, output = finish(start_localrun(REPO_ROOT / "configs" / "tiny.yml", tmp_path, *option), timeout=60)
    assert code == 2 and message in output, output
    assert time.monotonic() - started < 30
    assert not list(tmp_path.iterdir())


# 8. marian-args ------------------------------------------------------------------------------------------


def tiny_with_marian_args(stage: str, **options) -> dict:
    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["marian-args"].setdefault(stage, {}).update(options)
    return config


RESERVED = ("model", "train-sets", "vocabs", "cpu-threads", "workspace")


@pytest.mark.parametrize(
    ("stage", "options", "message"),
    [
        (
            "training-teacher",
            {"beam-sise": 4},
            "no option --beam-sise for training; did you mean 'beam-size'?",
        ),
        ("training-teacher", {"after": "10x"}, "'10x': each comma-separated cap is a whole number with e"),
        ("training-teacher", {"after": "1.5e"}, "'1.5e': each comma-separated cap"),
        ("training-student", {"after": "10e,20q"}, "each comma-separated cap"),
        ("decoding-teacher", {"beam-size": 0}, "beam-size: must be at least 1, got 0"),
        ("training-backward", {"learn-rate": "fast"}, "learn-rate: must be a number, got 'fast'"),
        ("training-backward", {"early-stopping": -1}, "a whole number of 0 or more"),
        ("training-backward", {"valid-freq": "often"}, "valid-freq: 'often': a whole number"),
        ("training-backward", {"overwrite": False}, "set by the pipeline itself"),
        ("training-backward", {"sync-sgd": "yes"}, "sync-sgd: is a switch: true or false"),
        ("decoding-backward", {"n-best": True}, "set by the pipeline itself for every decoding step"),
        ("decoding-backward", {"after": "2e"}, "no option --after for decoding"),
    ]
    + [("training-teacher", {option: "x"}, "set by the pipeline itself") for option in RESERVED],
)
def test_bad_marian_args_are_refused_before_any_task(stage, options, message):
    with pytest.raises(ConfigError) as refused:
        validate_training_config(tiny_with_marian_args(stage, **options))
    assert f"marian-args.{stage}.{next(iter(options))}" in str(refused.value)
    assert message in str(refused.value)


def test_marian_args_the_reference_writes_are_accepted():
    # As the reference's production config writes them: numbers as strings, decoder options per stage.
    config = tiny_with_marian_args("decoding-teacher", **{"mini-batch-words": "4000", "precision": "float16"})
    teacher, student = config["marian-args"]["training-teacher"], config["marian-args"]["training-student"]
    teacher.update({"early-stopping": "20", "learn-rate": "3e-4", "after": "800000u"})
    teacher.pop("lr-cooldown"), teacher.pop("lr-cooldown-decays")  # ours, a share of a wall-time cap
    student.update({"after": "10e,45m", "valid-freq": "5000u", "dim-vocabs": [8000, 8000]})
    validate_training_config(config)


def test_after_with_after_epochs_warns(caplog, monkeypatch):
    import translations_taskgraph.training_config as training_config

    monkeypatch.setattr(training_config, "_WARNED", set())  # warned once per process
    validate_training_config(tiny_with_marian_args("training-teacher", **{"after-epochs": 3}))
    assert "both `after` and `after-epochs` are set" in caplog.text


def test_the_shipped_marian_option_list_is_the_installed_marians():
    from translations_taskgraph.marian_options import installed_options, known_options

    assert known_options() == installed_options(), "run `task marian-options` after upgrading Marian"


# 9. Names too long, a full disk -------------------------------------------------------------------------


def test_an_experiment_name_too_long_for_a_folder_is_refused_by_the_schema():
    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["experiment"]["name"] = "x" * 300
    with pytest.raises(ConfigError, match=r"experiment.name: name has 300 characters; at most 100"):
        validate_training_config(config)
    config["experiment"]["name"] = "tiny"
    config["datasets"]["train"] = ["local_" + "d" * 250]
    with pytest.raises(ConfigError, match=r"datasets.train.0: dataset name .* has 256 bytes; at most 200"):
        validate_training_config(config)


def test_a_name_the_file_system_cannot_hold_fails_in_one_line(tmp_path):
    write_corpus(tmp_path / "ok.en", ["Hello"])
    write_corpus(tmp_path / "ok.fr", ["Bonjour"])
    result = import_local(tmp_path / "ok", tmp_path / ("o" * 300))
    assert result.returncode == 1
    assert (
        "a file name is too long for the file system" in result.stderr and "300 characters" in result.stderr
    )
    assert "Traceback" not in result.stderr


def mount_small_tmpfs(folder: Path, size: str) -> list[str]:
    """A command prefix that runs its command with a `size` tmpfs on `folder` (root, or a user namespace)."""
    folder.mkdir(parents=True, exist_ok=True)
    inner = f'mount -t tmpfs -o size={size} tmpfs {folder} && exec "$@"'
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", inner, "sh", "true"], capture_output=True)
        if probe.returncode == 0:
            return [*prefix, "sh", "-c", inner, "sh"]
    pytest.skip("cannot mount a small tmpfs here (neither root nor user namespaces)")


LIST_AFTER = """
import os, subprocess, sys
code = subprocess.run([sys.executable, "-m", "pipeline.data.import_dataset", *sys.argv[2:]]).returncode
folder = sys.argv[1]
print(sorted(os.listdir(folder)) if os.path.isdir(folder) else "no folder")
sys.exit(code)
"""


def test_a_full_disk_fails_in_one_line_and_leaves_nothing_partial(tmp_path):
    # Random letters compress badly: about 1 MB of zstd output for a 256 kB file system.
    rng = random.Random(1)
    lines = ["".join(rng.choices(string.ascii_letters, k=60)) for _ in range(20000)]
    write_corpus(tmp_path / "big.en", lines)
    write_corpus(tmp_path / "big.fr", lines)
    output = tmp_path / "small" / "out"
    prefix = mount_small_tmpfs(tmp_path / "small", "256k")
    arguments = ["--dataset", f"local_{tmp_path / 'big'}", "--langs", "en,fr", "--output-dir", str(output)]
    result = subprocess.run(
        [*prefix, sys.executable, "-c", LIST_AFTER, str(output), *arguments],
        cwd=REPO_ROOT,
        env=step_env(TRANSLATIONS_DATA_ROOT=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "no space left on the device holding" in result.stderr, result.stderr
    # The two sides are written side by side: either may meet the full device first (under load, French).
    assert re.search(r"could not write \S+/corpus\.(en|fr)\.zst after [0-9.]+ MiB", result.stderr), (
        result.stderr
    )
    assert "MiB free of 0.2 MiB" in result.stderr and "Traceback" not in result.stderr
    # Seen from inside the mount: no temporary or partial corpus left behind.
    assert ".tmp" not in result.stdout and ".zst" not in result.stdout, result.stdout


# 10. Messages that name the fix -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be at least 1, got 0"),
        ("lots", "expected an integer, got str 'lots'"),
        (1.5, "expected an integer"),
    ],
)
def test_corpus_max_sentences_says_what_it_takes(value, message):
    config = yaml.safe_load((REPO_ROOT / "configs" / "tiny.yml").read_text())
    config["experiment"]["corpus-max-sentences"] = value
    with pytest.raises(ConfigError, match=f"experiment.corpus-max-sentences: {message}"):
        validate_training_config(config)


def test_yaml_on_and_off_read_as_booleans_come_with_a_hint():
    text = (
        (REPO_ROOT / "configs" / "tiny.yml")
        .read_text()
        .replace("opuscleaner-mode: custom", "opuscleaner-mode: Off")
    )
    with pytest.raises(ConfigError) as refused:
        validate_training_config(parse_training_config(text))
    assert "experiment.opuscleaner-mode: must be one of defaults, custom, got the YAML boolean false" in str(
        refused.value
    )
    assert "YAML reads unquoted yes/no/on/off/true/false as booleans: quote the word" in str(refused.value)
