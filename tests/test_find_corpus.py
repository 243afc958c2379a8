"""`task find-corpus` and `task config-generator` (issue 22, item 1) against a loopback server that answers in
each provider's format (tests/fixtures/find_corpus/); mtdata's and sacrebleu's catalogs are the packages' own."""

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import REPO_ROOT, http_server

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "find_corpus"
ROUTES = {
    "/opusapi/": "opusapi-en-fr.json",
    "/news-crawl/en/": "news-crawl-en.html",
    "/news-crawl/fr/": "news-crawl-fr.html",
    "/three/sorted/eng_Latn.map": "hplt-eng_Latn.map",
    "/three/sorted/fra_Latn.map": "hplt-fra_Latn.map",
    "/api/datasets": "hf-datasets-en-fr.json",
}


@pytest.fixture(scope="module")
def providers():
    requested = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requested.append(self.path)
            parts = urlsplit(self.path)
            name = ROUTES.get(parts.path)
            query = parse_qs(parts.query)
            if parts.path == "/opusapi/" and query != {
                "source": ["en"], "target": ["fr"], "preprocessing": ["moses"], "version": ["latest"]
            }:  # fmt: skip
                name = None
            if parts.path == "/api/datasets" and query.get("filter") != ["language:en", "language:fr"]:
                name = None
            body = (FIXTURES / name).read_bytes() if name else b"not found"
            self.send_response(200 if name else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Handler) as base:
        env = {"OPUS_API_MIRROR": base, "NEWSCRAWL_MIRROR": base, "HPLT_MIRROR": base, "HF_ENDPOINT": base}
        yield env, requested


def run(module, args, env, cwd=REPO_ROOT):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", str(REPO_ROOT.parent)),  # mtdata keeps its index under ~/.mtdata
            "HF_HUB_DISABLE_TELEMETRY": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def listing(providers, tmp_path_factory):
    env, requested = providers
    out = tmp_path_factory.mktemp("find") / "listing.json"
    result = run("pipeline.data.find_corpus", ["en", "fr", "--json", out], env)
    assert result.returncode == 0, result.stderr
    return result.stdout, {entry["provider"]: entry for entry in json.loads(out.read_text())}, requested


def test_opus_lists_the_pairs_corpora_largest_first_and_marks_evaluation_sets(listing):
    text, by_provider, _ = listing
    opus = by_provider["opus"]
    assert opus["error"] is None
    names = [d["name"] for d in opus["datasets"]]
    # ELRA-W0201 has no pairs; the rest by size.
    assert names == ["opus_Europarl/v8", "opus_Tatoeba/v2023-04-12", "opus_TED2020/v1", "opus_Books/v1",
                     "opus_WMT-News/v2019", "opus_GNOME/v1"]  # fmt: skip
    europarl = opus["datasets"][0]
    assert (europarl["lines"], europarl["bytes"]) == (2051014, 258766 * 1024)
    assert "evaluation set" in opus["datasets"][4]["note"]
    assert "opus_Europarl/v8" in text and "2,051,014 lines" in text


def test_offline_catalogs_mtdata_sacrebleu_flores(listing):
    _, by_provider, _ = listing
    sacrebleu = [d["name"] for d in by_provider["sacrebleu"]["datasets"]]
    assert "sacrebleu_wmt14" in sacrebleu and "sacrebleu_wmt15" in sacrebleu
    assert all(name.startswith("sacrebleu_") for name in sacrebleu)
    mtdata = by_provider["mtdata"]["datasets"]
    assert mtdata and all(d["name"].startswith("mtdata_") for d in mtdata)
    assert not any(d["name"].lower().startswith("mtdata_opus-") for d in mtdata)  # OPUS's come from its API
    assert [d["name"] for d in by_provider["flores"]["datasets"]] == ["flores_dev", "flores_devtest"]


def test_monolingual_listings_per_language(listing):
    _, by_provider, _ = listing
    news_fr = by_provider["news-crawl (fr)"]["datasets"]
    assert [(d["name"], d["bytes"], d["categories"]) for d in news_fr] == [
        ("news-crawl_news.2023", 950_000_000, ["mono-trg"]),
        ("news-crawl_news.2022", 905_000_000, ["mono-trg"]),
        ("news-crawl_news.2021", 812_000_000, ["mono-trg"]),
    ]
    assert len(by_provider["news-crawl (en)"]["datasets"]) == 5
    (hplt_en,) = by_provider["hplt (en)"]["datasets"]
    assert hplt_en["name"] == "hplt_mono/v3.0" and hplt_en["note"] == "12 shards, document scores 5 to 10"


def test_hugging_face_datasets_by_size_without_speech(listing):
    _, by_provider, requested = listing
    hf = by_provider["hugging face"]["datasets"]
    assert [d["name"] for d in hf] == ["wmt/wmt14", "Helsinki-NLP/europarl", "opus/tatoeba-en-fr"]
    assert hf[0]["note"].startswith("size 10M<n<100M, 14,880 downloads")
    assert any(
        path.startswith("/api/datasets?filter=language%3Aen&filter=language%3Afr") for path in requested
    )


def test_an_unreachable_provider_is_reported_and_the_others_listed(providers, tmp_path):
    env, _ = providers
    down = {**env, "OPUS_API_MIRROR": "http://127.0.0.1:9", "FIND_CORPUS_TIMEOUT": "2"}
    result = run("pipeline.data.find_corpus", ["en", "fr", "--providers", "opus,flores"], down)
    assert result.returncode == 0, result.stderr
    assert "## opus\n   not listed: http://127.0.0.1:9/opusapi/?source=en&target=fr" in result.stdout
    assert "flores_devtest" in result.stdout


def test_an_unknown_language_or_provider_is_refused(providers):
    env, _ = providers
    result = run("pipeline.data.find_corpus", ["en", "xx"], env)
    assert result.returncode == 2 and "language 'xx' has no ISO 639-3 mapping" in result.stderr
    result = run("pipeline.data.find_corpus", ["en", "fr", "--providers", "opus,tmx"], env)
    assert result.returncode == 2 and "--providers: unknown tmx" in result.stderr


def test_the_generated_config_follows_the_rule_and_passes_dry_run(providers, tmp_path):
    env, _ = providers
    config_path = tmp_path / "en-fr.small.yml"
    result = run(
        "pipeline.data.config_generator", ["en", "fr", "--size", "small", "--output", config_path], env
    )
    assert result.returncode == 0, result.stderr
    text = config_path.read_text()
    assert text.startswith("# Generated by `task config-generator -- en fr --size small --min-pairs 10000`")
    config = yaml.safe_load(text)
    datasets = config["datasets"]
    opus_train = [name for name in datasets["train"] if name.startswith("opus_")]
    # At least 10,000 pairs, largest first; WMT-News (an evaluation set) and GNOME (150 pairs) left out.
    assert opus_train == ["opus_Europarl/v8", "opus_Tatoeba/v2023-04-12", "opus_TED2020/v1", "opus_Books/v1"]
    assert datasets["devtest"] == ["flores_dev"]
    assert datasets["test"][0] == "flores_devtest"
    assert 1 <= len(datasets["test"]) - 1 <= 3 and all(
        n.startswith("sacrebleu_wmt") for n in datasets["test"][1:]
    )
    assert datasets["mono-src"] == ["news-crawl_news.2023", "news-crawl_news.2022", "news-crawl_news.2021",
                                    "hplt_mono/v3.0"]  # fmt: skip
    assert datasets["mono-trg"][-1] == "hplt_mono/v3.0"
    experiment = config["experiment"]
    assert (experiment["name"], experiment["teacher-model"], experiment["student-model"]) == (
        "en-fr-small", "base", "tiny"
    )  # fmt: skip
    # The template's thresholds for datasets this config does not have are dropped (the schema refuses them).
    assert "local_data_l10n_en_fr_train" not in experiment["bicleaner"]["dataset-thresholds"]
    dry = subprocess.run(
        [sys.executable, "-m", "localrun", "--config", config_path, "--runs-dir", tmp_path / "runs", "--dry-run"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(REPO_ROOT.parent)),
             **env},
    )  # fmt: skip
    components_missing = "is not installed here" in dry.stderr
    assert dry.returncode == 0 or components_missing, dry.stderr
    if (
        components_missing
    ):  # bicleaner-ai and monocleaner are extras: the refusal names them, and nothing else
        assert all("not installed here" in line for line in dry.stderr.strip().splitlines()), dry.stderr
    else:
        assert "Rendered the task graph" in dry.stdout


def test_the_rule_for_mtdata_newest_version_no_elrc_nothing_opus_gives():
    from pipeline.data.config_generator import mtdata_training

    names = ["mtdata_Statmt-news_commentary-16-eng-fra", "mtdata_Statmt-news_commentary-18.1-eng-fra",
             "mtdata_Statmt-news_commentary-9-eng-fra", "mtdata_ELRC-antibiotic-1-eng-fra",
             "mtdata_Statmt-europarl-10-fra-eng", "mtdata_Tilde-ecb-2017-eng-fra"]  # fmt: skip
    assert mtdata_training(names, ["opus_Europarl/v8"]) == [
        "mtdata_Statmt-news_commentary-18.1-eng-fra",
        "mtdata_Tilde-ecb-2017-eng-fra",
    ]


def test_a_pair_without_training_data_is_refused_in_one_line():
    from pipeline.common.step import StepError
    from pipeline.data.config_generator import build_config
    from pipeline.data.find_corpus import Dataset, Listing

    listings = [
        Listing("flores", "", [Dataset("flores_dev", ["devtest"]), Dataset("flores_devtest", ["test"])])
    ]
    with pytest.raises(StepError, match=r"^no dataset found for train of en-fr by the rule"):
        build_config("en", "fr", "small", listings, 10_000)
