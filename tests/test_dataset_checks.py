"""Datasets that cannot exist are refused before any task runs (issue 22, item 2): local files by path,
sacrebleu test sets and pairs in sacrebleu's registry, mtdata ids in mtdata's index."""

import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from translations_taskgraph import dataset_checks
from translations_taskgraph.training_config import ConfigError


def config(**datasets):
    return {
        "experiment": {"name": "checks", "src": "en", "trg": "fr"},
        "datasets": {"train": [], "devtest": [], "test": [], "mono-src": [], "mono-trg": [], **datasets},
    }


@pytest.fixture
def mtdata_index(tmp_path, monkeypatch):
    """mtdata's index as the jsonl mtdata writes beside its cache, with two entries."""
    index = tmp_path / "mtdata.index.jsonl"
    index.write_text(
        '{"did": "Statmt-news_commentary-16-eng-fra", "url": "http://x/y.tgz"}\n'
        '{"did": "Statmt-europarl-10-eng-fra", "url": "http://x/z.tgz"}\n'
    )
    monkeypatch.setattr(dataset_checks, "mtdata_ids_file", lambda: index)


def test_datasets_that_exist_pass(mtdata_index):
    good = config(
        train=["local_data/l10n-en-fr/parallel", "mtdata_Statmt-news_commentary-16-eng-fra", "opus_Books/v1"],
        devtest=["local_data/l10n-en-fr/dev", "flores_dev"],
        test=["sacrebleu_wmt14", "local_data/l10n-en-fr/test"],
        **{"mono-trg": ["local_data/l10n-en-fr/mono"]},
    )
    assert dataset_checks.dataset_problems(good) == []
    dataset_checks.check_datasets(good)


def test_each_missing_dataset_is_one_line_naming_its_key(mtdata_index):
    bad = config(
        train=["local_data/l10n-en-fr/parallel", "local_data/l10n-en-fr/nothing", "mtdata_Statmt-made_up-16-eng-fra"],
        test=["sacrebleu_wmt99", "sacrebleu_wmt14/full"],
        **{"mono-src": ["local_data/l10n-en-fr/dev-only-fr"]},
    )  # fmt: skip
    problems = dataset_checks.dataset_problems(bad)
    assert len(problems) == 4, problems
    assert problems[0].startswith("datasets.train: local_data/l10n-en-fr/nothing: none of ")
    assert "nothing.en.zst" in problems[0]
    assert problems[1] == (
        "datasets.train: mtdata_Statmt-made_up-16-eng-fra: mtdata has no dataset 'Statmt-made_up-16-eng-fra' "
        "in its index (`mtdata list -id -l <l1>-<l2>` lists them)"
    )
    assert problems[2].startswith("datasets.test: sacrebleu_wmt99: sacrebleu has no test set 'wmt99'")
    assert problems[3].startswith("datasets.mono-src: local_data/l10n-en-fr/dev-only-fr: none of")
    assert all("\n" not in problem for problem in problems)
    with pytest.raises(ConfigError) as error:
        dataset_checks.check_datasets(bad)
    assert str(error.value).splitlines() == problems


def test_a_sacrebleu_set_without_the_pair(mtdata_index):
    problems = dataset_checks.dataset_problems(config(test=["sacrebleu_wmt16"]))
    assert len(problems) == 1 and "sacrebleu test set 'wmt16' has no en-fr pair; it has " in problems[0]


def test_dry_run_refuses_a_missing_dataset_before_rendering(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "experiment": {"name": "bad", "src": "en", "trg": "fr", "spm-vocab-size": 1000},
                "datasets": {
                    "train": ["local_data/l10n-en-fr/parallel", "local_data/l10n-en-fr/missing"],
                    "devtest": ["local_data/l10n-en-fr/dev"],
                    "test": ["sacrebleu_wmt99"],
                },
            }
        )
    )
    for command in (["-m", "localrun", "--dry-run", "--runs-dir", str(tmp_path / "runs")],
                    ["-m", "translations_taskgraph.preflight", "--output-dir", str(tmp_path / "pre")]):  # fmt: skip
        result = subprocess.run(
            [sys.executable, *command, "--config", str(path)],
            cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode in (1, 2), result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("error: datasets.train: local_data/l10n-en-fr/missing: none of "), lines
        assert lines[1].startswith("datasets.test: sacrebleu_wmt99: sacrebleu has no test set"), lines
        assert "Rendered" not in result.stdout
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.fixture
def online(monkeypatch):
    """DATASET_CHECKS_ONLINE=1 against a loopback server: the OPUS API (find-corpus's recorded response) and
    files that answer HEAD."""
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import urlsplit

    from conftest import http_server

    api = (REPO_ROOT / "tests" / "fixtures" / "find_corpus" / "opusapi-en-fr.json").read_bytes()
    files = {
        "/news-crawl/fr/news.2023.fr.shuffled.deduped.gz", "/data/corpus.en.gz", "/data/corpus.fr.gz",
        "/run1/teacher/final.model.npz", "/ref/teacher0/final.model.npz.best-chrf.npz", "/run1/vocab.spm",
    }  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.send_response(200 if urlsplit(self.path).path in files else 404)
            self.end_headers()

        def do_GET(self):
            found = urlsplit(self.path).path == "/opusapi/"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(api if found else b"")

    dataset_checks._opus_listing.cache_clear()
    with http_server(Handler) as base:
        monkeypatch.setenv("DATASET_CHECKS_ONLINE", "1")
        monkeypatch.setenv("OPUS_API_MIRROR", base)
        monkeypatch.setenv("NEWSCRAWL_MIRROR", base)
        monkeypatch.setenv("DATASET_CHECKS_TIMEOUT", "5")
        yield base
    dataset_checks._opus_listing.cache_clear()


def test_online_checks_ask_the_opus_api_and_head_the_files(online, mtdata_index):
    good = config(
        train=["opus_Europarl/v8", f"url_{online}/data/corpus.[LANG].gz"],
        **{"mono-trg": ["news-crawl_news.2023"]},
    )
    assert dataset_checks.dataset_problems(good) == []
    bad = config(
        train=["opus_Europarl/v3", "opus_NoSuchCorpus/v1", f"url_{online}/data/missing.[LANG].gz"],
        **{"mono-trg": ["news-crawl_news.1999"]},
    )
    problems = dataset_checks.dataset_problems(bad)
    assert (
        problems[0]
        == "datasets.train: opus_Europarl/v3: OPUS lists no Europarl/v3 for en-fr; it has opus_Europarl/v8"
    )
    assert problems[1] == "datasets.train: opus_NoSuchCorpus/v1: OPUS lists no NoSuchCorpus/v1 for en-fr"
    assert (
        problems[2]
        == f"datasets.train: url_{online}/data/missing.[LANG].gz: {online}/data/missing.en.gz does not exist (HTTP 404)"
    )
    assert (
        problems[3].startswith("datasets.mono-trg: news-crawl_news.1999: ") and "news.1999.fr" in problems[3]
    )


def test_online_checks_are_off_by_default(monkeypatch, mtdata_index):
    monkeypatch.delenv("DATASET_CHECKS_ONLINE", raising=False)
    monkeypatch.setenv("OPUS_API_MIRROR", "http://127.0.0.1:9")
    assert dataset_checks.dataset_problems(config(train=["opus_NoSuchCorpus/v1"])) == []


def test_online_checks_head_the_continuation_addresses(online, mtdata_index):
    """A pretrained model's or vocabulary's address that does not exist is refused before any task runs; a
    folder of the reference (its model named final.model.npz.best-chrf.npz) is found."""
    good = config(train=["opus_Europarl/v8"])
    good["continuation"] = {
        "vocab": {"src": f"{online}/run1/vocab.spm", "trg": f"{online}/run1/vocab.spm"},
        "models": {"teacher": {"urls": [f"{online}/run1/teacher", f"{online}/ref/teacher0/"], "mode": "use"}},
    }
    assert dataset_checks.dataset_problems(good) == []
    bad = config(train=["opus_Europarl/v8"])
    bad["continuation"] = {
        "models": {"backwards": {"url": f"{online}/run1/no-such-model", "mode": "use"}},
        "vocab": {"src": "TeacherTask00000000000", "trg": "TeacherTask00000000000"},  # checked by its task
    }
    assert dataset_checks.dataset_problems(bad) == [
        f"continuation.models.backwards.url: {online}/run1/no-such-model/final.model.npz does not exist (HTTP 404)"
    ]
