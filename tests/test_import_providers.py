"""Every importer against a real HTTP server on 127.0.0.1 (never any other address), serving small files in
each source's real layout, with a 500, a dropped connection, a truncated body and a resumed download."""

import argparse
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from http.server import BaseHTTPRequestHandler

import pytest
import zstandard

from conftest import http_server, kill_step_after, read_corpus, run_step, step_env
from pipeline.common import download as download_module
from pipeline.common.step import StepError

IMPORT = "pipeline.data.import_dataset"
EN = ["Hello world", "Open the file", "Save changes?", "The cat sleeps"]
FR = ["Bonjour le monde", "Ouvrir le fichier", "Enregistrer les modifications ?", "Le chat dort"]


def gz(lines):
    return gzip.compress(("\n".join(lines) + "\n").encode())


def zip_of(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def tgz_of(members: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sgm(lines, lang, kind):
    segs = "".join(f'<seg id="{i}">{line}</seg>\n' for i, line in enumerate(lines, 1))
    tag = "srcset" if kind == "src" else "refset"
    return f'<{tag} setid="newstest2014" srclang="any" trglang="{lang}">\n<doc sysid="ref" docid="1" genre="news" origlang="en">\n<p>\n{segs}</p>\n</doc>\n</{tag}>\n'


def hplt_doc(lines, score, lang="eng_Latn", seg_langs=None):
    return json.dumps(
        {"text": "\n".join(lines), "lang": [lang], "doc_scores": [score, 1, 2],
         "seg_langs": seg_langs or [lang] * len(lines)}
    )  # fmt: skip


def zst(text: str) -> bytes:
    return zstandard.ZstdCompressor().compress(text.encode())


BIG = gz([f"line {i} of a larger file" for i in range(20000)])  # about 100 kB, for resume tests
SACREBLEU_TGZ = tgz_of(
    {
        "test/newstest2014-fren-src.en.sgm": sgm(EN, "en", "src"),
        "test/newstest2014-fren-ref.fr.sgm": sgm(FR, "fr", "ref"),
    }
)
FILES = {
    # OPUS: moses zip per sorted pair, mono gz per language
    "/OPUS-Tiny/v1/moses/en-fr.txt.zip": zip_of(
        {"Tiny.en-fr.en": "\n".join(EN) + "\n", "Tiny.en-fr.fr": "\n".join(FR) + "\n", "README": "x"}
    ),
    "/OPUS-Tiny/v1/mono/fr.txt.gz": gz(FR),
    "/OPUS-Broken/v1/moses/en-fr.txt.zip": b"this is not a zip archive",
    # mtdata: the URLs of its index, mirrored as /<host>/<path>
    "/data.statmt.org/news-commentary/v16/training/news-commentary-v16.en-fr.tsv.gz": gzip.compress(
        "".join(f"{e}\t{f}\n" for e, f in zip(EN, FR, strict=True)).encode()
    ),
    "/www.statmt.org/europarl/v10/training/europarl-v10.fr-en.tsv.gz": gzip.compress(
        "".join(f"{f}\t{e}\n" for e, f in zip(EN, FR, strict=True)).encode()
    ),
    "/data.statmt.org/wmt20/translation-task/dev.tgz": tgz_of(
        {
            "dev/newstest2014-fren-src.fr.sgm": sgm(FR, "fr", "src"),
            "dev/newstest2014-fren-ref.en.sgm": sgm(EN, "en", "ref"),
        }
    ),
    # sacrebleu: its registry's tarball
    "/wmt14/test-filtered.tgz": SACREBLEU_TGZ,
    # FLORES-200
    "/nllb/flores200_dataset.tar.gz": tgz_of(
        {
            "flores200_dataset/dev/eng_Latn.dev": "\n".join(EN) + "\n",
            "flores200_dataset/dev/fra_Latn.dev": "\n".join(FR) + "\n",
            "flores200_dataset/devtest/eng_Latn.devtest": "\n".join(EN[:2]) + "\n",
            "flores200_dataset/devtest/fra_Latn.devtest": "\n".join(FR[:2]) + "\n",
        }
    ),
    # news-crawl
    "/news-crawl/fr/news.2021.fr.shuffled.deduped.gz": gz(FR),
    "/news-crawl/en/news.2020.en.shuffled.deduped.gz": BIG,
    # HPLT 3.0: the map, then shards named <score bucket>_<n>.jsonl.zst
    "/three/sorted/eng_Latn.map": "".join(
        f"{{server}}/three/sorted/eng_Latn/{name}.jsonl.zst\n" for name in ("9_1", "5_1", "7_1")
    ).encode(),
    "/three/sorted/eng_Latn/9_1.jsonl.zst": zst(
        hplt_doc(["Top doc one.", "Top doc two."], 9.5)
        + "\n"
        + hplt_doc(["Mixed doc.", "Phrase en français."], 9.1, seg_langs=["eng_Latn", "fra_Latn"])
        + "\n"
        + hplt_doc(["Le document français."], 9.0, lang="fra_Latn")
        + "\n"
    ),
    "/three/sorted/eng_Latn/7_1.jsonl.zst": zst(
        hplt_doc(["Score seven point five."], 7.5) + "\n" + hplt_doc(["Score seven point one."], 7.1) + "\n"
    ),
    "/three/sorted/eng_Latn/5_1.jsonl.zst": zst(hplt_doc(["Never read."], 5.0) + "\n"),
    # NTREX-128: English is the source file, every other language a reference file
    "/MicrosoftTranslator/NTREX/raw/468c6b6/NTREX-128/newstest2019-src.eng.txt": "\n".join(EN).encode()
    + b"\n",
    "/MicrosoftTranslator/NTREX/raw/468c6b6/NTREX-128/newstest2019-ref.fra.txt": "\n".join(FR).encode()
    + b"\n",
    # Pontoon's translation memory (TMX 1.4, English source, one unit per string; a unit without the pair's
    # target is skipped)
    "/translation-memory/fr.all-projects.tmx": (
        '<?xml version="1.0" encoding="utf-8" ?>\n<tmx version="1.4"><header srclang="en-US" adminlang="en-US" '
        'creationtool="pontoon" datatype="plaintext" segtype="sentence" o-tmf="plain text"/><body>\n'
        + "".join(
            f'<tu tuid="p{n}" srclang="en-US"><tuv xml:lang="en-US"><seg>{en}</seg></tuv>'
            f'<tuv xml:lang="fr"><seg>{fr}</seg></tuv></tu>\n'
            for n, (en, fr) in enumerate(zip(EN, FR, strict=True))
        )
        + '<tu tuid="x"><tuv xml:lang="en-US"><seg>Lonely</seg></tuv></tu>\n</body></tmx>\n'
    ).encode(),
    # HPLT 2.0: a map of unsorted shards, the same documents
    "/two/cleaned/eng_Latn_map.txt": "".join(
        f"{{server}}/two/cleaned/eng_Latn/{n}.jsonl.zst\n" for n in (1, 2)
    ).encode(),
    "/two/cleaned/eng_Latn/1.jsonl.zst": zst(
        hplt_doc(["Two point oh, low score."], 5.0)
        + "\n"
        + hplt_doc(["Two point oh, first shard."], 8.0)
        + "\n"
    ),
    "/two/cleaned/eng_Latn/2.jsonl.zst": zst(
        hplt_doc(["Second shard."], 9.0) + "\n" + hplt_doc(["Autre langue."], 9.0, lang="fra_Latn") + "\n"
    ),
}


class Handler(BaseHTTPRequestHandler):
    requests: list[tuple[str, str | None]] = []
    faults: dict[str, list[str]] = {}  # path -> actions for the next requests: 500, drop, truncate, norange
    server_url = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        Handler.requests.append((path, self.headers.get("Range")))
        plan = Handler.faults.get(path, [])
        action = plan.pop(0) if plan else None
        body = FILES.get(path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")
            return
        body = body.replace(b"{server}", Handler.server_url.encode())
        if action == "500":
            self.send_response(500)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"oops!")
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and action != "norange":
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if action in ("drop", "truncate"):
            self.wfile.write(rest[: len(rest) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops midway through the body
            return
        self.wfile.write(rest)


@pytest.fixture(scope="module")
def server():
    with http_server(Handler) as url:
        Handler.server_url = url
        yield url


@pytest.fixture(autouse=True)
def no_faults():
    Handler.faults.clear()
    yield
    Handler.faults.clear()


def mirrors(server):
    return {
        "OPUS_MIRROR": server, "MTDATA_MIRROR": server, "SACREBLEU_MIRROR": server, "FLORES_MIRROR": server,
        "NEWSCRAWL_MIRROR": server, "HPLT_MIRROR": server, "NTREX_MIRROR": server, "TMX_MIRROR": server, "DOWNLOAD_BACKOFF": "0.01",
        "DOWNLOAD_ATTEMPTS": "3",
    }  # fmt: skip


def import_dataset(server, dataset, out, langs="en,fr", extra=(), **env):
    return run_step(
        IMPORT,
        ["--dataset", dataset, "--langs", langs, "--output-dir", out, *extra],
        env=step_env(**mirrors(server), **env),
        check=False,
    )


def requests_for(path):
    return [r for r in Handler.requests if r[0] == path]


# ----- each provider, in its source's layout -----


@pytest.mark.parametrize(
    "dataset, langs, expected",
    [
        ("opus_Tiny/v1", "en,fr", {"en": EN, "fr": FR}),
        ("opus_Tiny/v1", "fr", {"fr": FR}),
        ("mtdata_Statmt-news_commentary-16-eng-fra", "en,fr", {"en": EN, "fr": FR}),
        (
            "mtdata_Statmt-europarl-10-fra-eng",
            "en,fr",
            {"en": EN, "fr": FR},
        ),  # the file is fr-en: swapped back
        ("mtdata_Statmt-newstest_fren-2014-fra-eng", "en,fr", {"en": EN, "fr": FR}),  # tgz of sgm files
        ("flores_dev", "en,fr", {"en": EN, "fr": FR}),
        ("flores_devtest", "fr,en", {"en": EN[:2], "fr": FR[:2]}),
        ("news-crawl_news.2021", "fr", {"fr": FR}),
        ("ntrex_test", "en,fr", {"en": EN, "fr": FR}),
        ("ntrex_ntrex128", "en,fr", {"en": EN, "fr": FR}),  # as two reference configs write it
        ("tmx_pontoon", "en,fr", {"en": EN, "fr": FR}),
        ("tmx_pontoon", "fr,en", {"en": EN, "fr": FR}),
        (
            "ntrex_aug-upper_test",
            "en,fr",
            {"en": [line.upper() for line in EN], "fr": [line.upper() for line in FR]},
        ),
    ],
)
def test_each_provider_imports_its_source_layout(server, tmp_path, dataset, langs, expected):
    out = tmp_path / "out"
    result = import_dataset(server, dataset, out, langs=langs)
    assert result.returncode == 0, result.stderr
    for lang, lines in expected.items():
        assert read_corpus(out / f"corpus.{lang}.zst") == lines
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dataset"] == dataset and stats["lines"] == len(next(iter(expected.values())))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"corpus.{lang}.zst" for lang in expected] + ["stats.json"]
    )


def test_sacrebleu_uses_the_registry_and_checks_its_md5(server, tmp_path, monkeypatch):
    """The registry's md5 is checked: our small tarball differs from the real one and is refused..."""
    result = import_dataset(server, "sacrebleu_wmt14", tmp_path / "refused")
    assert result.returncode == 1
    assert "md5 checksum" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "refused" / "corpus.en.zst").exists()
    # ... and with the registry's checksum set to our tarball's, sacrebleu's own SGML processing runs.
    from sacrebleu.dataset import DATASETS

    from pipeline.data import import_dataset as step

    monkeypatch.setattr(DATASETS["wmt14"], "md5", [hashlib.md5(SACREBLEU_TGZ).hexdigest()])
    for name, value in mirrors(server).items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    args = argparse.Namespace(
        dataset="sacrebleu_wmt14", langs="en,fr", max_lines=None, hplt_min_doc_score=0.0, output_dir=out
    )
    step.main(args)
    assert read_corpus(out / "corpus.en.zst") == EN
    assert read_corpus(out / "corpus.fr.zst") == FR


def test_hplt_keeps_documents_above_the_score_in_the_language(server, tmp_path):
    out = tmp_path / "out"
    result = import_dataset(server, "hplt_mono/v3.0", out, langs="en", extra=["--hplt-min-doc-score", "7.3"])
    assert result.returncode == 0, result.stderr
    # best bucket first; the French document, the French segment and the documents under 7.3 are left out
    assert read_corpus(out / "corpus.en.zst") == [
        "Top doc one.",
        "Top doc two.",
        "Mixed doc.",
        "Score seven point five.",
    ]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_low_score"] == 1 and stats["documents_other_language"] == 1
    assert stats["segments_other_language"] == 1
    assert not requests_for("/three/sorted/eng_Latn/5_1.jsonl.zst"), "shards below the score are not fetched"


def test_hplt_2_0_reads_its_shard_map_in_a_seeded_order(server, tmp_path):
    out = tmp_path / "out"
    result = import_dataset(server, "hplt_mono/v2.0", out, langs="en", extra=["--hplt-min-doc-score", "7"])
    assert result.returncode == 0, result.stderr
    assert sorted(read_corpus(out / "corpus.en.zst")) == ["Second shard.", "Two point oh, first shard."]
    again = import_dataset(
        server, "hplt_mono/v2.0", tmp_path / "again", langs="en", extra=["--hplt-min-doc-score", "7"]
    )
    assert again.returncode == 0 and read_corpus(tmp_path / "again" / "corpus.en.zst") == read_corpus(
        out / "corpus.en.zst"
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_low_score"] == 1 and stats["documents_other_language"] == 1


def test_hplt_stops_at_max_lines(server, tmp_path):
    out = tmp_path / "out"
    result = import_dataset(server, "hplt_mono/v3.0", out, langs="en", extra=["--max-lines", "2"])
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.en.zst") == ["Top doc one.", "Top doc two."]


# ----- faults -----


def test_a_500_is_retried(server, tmp_path):
    Handler.faults["/OPUS-Tiny/v1/moses/en-fr.txt.zip"] = ["500"]
    result = import_dataset(server, "opus_Tiny/v1", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "attempt 1/3" in result.stderr and "HTTP 500" in result.stderr


def test_a_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    path = "/news-crawl/en/news.2020.en.shuffled.deduped.gz"
    Handler.faults[path] = ["drop"]
    before = len(requests_for(path))
    result = import_dataset(server, "news-crawl_news.2020", tmp_path / "out", langs="en")
    assert result.returncode == 0, result.stderr
    made = requests_for(path)[before:]
    assert made[0][1] is None and made[1][1] == f"bytes={len(BIG) // 2}-", made
    assert read_corpus(tmp_path / "out" / "corpus.en.zst") == gzip.decompress(BIG).decode().splitlines()


def test_a_server_without_range_support_restarts_the_body(server, tmp_path):
    path = "/news-crawl/en/news.2020.en.shuffled.deduped.gz"
    Handler.faults[path] = ["drop", "norange"]
    result = import_dataset(server, "news-crawl_news.2020", tmp_path / "out", langs="en")
    assert result.returncode == 0, result.stderr
    assert len(read_corpus(tmp_path / "out" / "corpus.en.zst")) == 20000


def test_a_body_that_stays_truncated_fails_clearly_and_leaves_no_output(server, tmp_path):
    path = "/news-crawl/fr/news.2021.fr.shuffled.deduped.gz"
    Handler.faults[path] = ["truncate"] * 3
    out = tmp_path / "out"
    result = import_dataset(server, "news-crawl_news.2021", out, langs="fr")
    assert result.returncode == 1
    assert "after 3 attempts" in result.stderr and "Traceback" not in result.stderr
    assert "news-crawl_news.2021" in result.stderr
    assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == [
        ".work/.news.2021.fr.gz.part"
    ]


def test_a_killed_download_resumes_where_it_stopped(server, tmp_path, monkeypatch):
    """A partial file left by a killed task (SIGKILL mid-body) is continued with Range, not restarted."""
    path = "/news-crawl/en/news.2020.en.shuffled.deduped.gz"
    part = tmp_path / "out" / ".work" / ".news.2020.en.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BIG[:30000])
    before = len(requests_for(path))
    result = import_dataset(server, "news-crawl_news.2020", tmp_path / "out", langs="en")
    assert result.returncode == 0, result.stderr
    assert requests_for(path)[before:] == [(path, "bytes=30000-")]
    assert len(read_corpus(tmp_path / "out" / "corpus.en.zst")) == 20000
    assert not (tmp_path / "out" / ".work").exists()


def test_kill_9_then_rerun_gives_the_same_outputs(server, tmp_path):
    """SIGKILL the import at a random point, run it again: the outputs equal those of an uninterrupted run."""
    reference = tmp_path / "reference"
    assert import_dataset(server, "mtdata_Statmt-news_commentary-16-eng-fra", reference).returncode == 0
    out = tmp_path / "out"
    args = ["--dataset", "mtdata_Statmt-news_commentary-16-eng-fra", "--langs", "en,fr", "--output-dir", out]
    # mid-way: loading mtdata's index takes a few seconds; fails unless the import was still running then
    kill_step_after(IMPORT, args, 1.0, env=step_env(**mirrors(server)), retry_dir=out)
    assert not (out / "stats.json").exists()
    assert import_dataset(server, "mtdata_Statmt-news_commentary-16-eng-fra", out).returncode == 0
    for name in ("corpus.en.zst", "corpus.fr.zst"):
        assert read_corpus(out / name) == read_corpus(reference / name)


# ----- bad input -----


@pytest.mark.parametrize(
    "dataset, langs, message",
    [
        ("opus_Broken/v1", "en,fr", "not a valid zip archive"),
        ("opus_Missing/v1", "en,fr", "HTTP 404"),
        ("mtdata_Nobody-nothing-1-eng-fra", "en,fr", "mtdata has no dataset"),
        ("mtdata_not-an-id", "en,fr", "not an mtdata id"),
        ("mtdata_Statmt-news_commentary-16-eng-fra", "en,de", "not en-de"),
        ("sacrebleu_no-such-set", "en,fr", "sacrebleu has no test set"),
        ("flores_train", "en,fr", "flores_dev and flores_devtest"),
        ("news-crawl_2021", "fr", "news-crawl_news.<year>"),
        ("news-crawl_news.2021", "en,fr", "no parallel datasets"),
        ("flores_dev", "fr", "no mono datasets"),
        ("hplt_mono/v9", "en", "known: hplt_mono/v3.0"),
        ("nowhere_x", "en,fr", "unknown dataset provider 'nowhere'"),
    ],
)
def test_bad_datasets_fail_with_a_clear_error(server, tmp_path, dataset, langs, message):
    out = tmp_path / "out"
    result = import_dataset(server, dataset, out, langs=langs)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not any(p.name.startswith("corpus.") or p.name == "stats.json" for p in out.glob("*"))


def test_a_404_is_not_retried(server, tmp_path):
    before = len(Handler.requests)
    result = import_dataset(server, "opus_Missing/v1", tmp_path / "out")
    assert result.returncode == 1
    assert len(Handler.requests) - before == 1


# ----- the download helper itself -----


def test_mirror_variables_keep_the_path():
    env = {"OPUS_MIRROR": "http://127.0.0.1:9/m", "MTDATA_MIRROR": "http://127.0.0.1:9"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("OPUS_URL", raising=False)
        assert (
            download_module.mirrored("opus", "https://o.example/OPUS-X/v1/a.zip")
            == "http://127.0.0.1:9/m/OPUS-X/v1/a.zip"
        )
        assert (
            download_module.mirrored("mtdata", "https://h.example/p/f.gz", keep_host=True)
            == "http://127.0.0.1:9/h.example/p/f.gz"
        )
        assert download_module.mirrored("flores", "https://f.example/x") == "https://f.example/x"


def test_download_checks_size_and_sha256(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("DOWNLOAD_ATTEMPTS", "2")
    url = f"{server}/news-crawl/fr/news.2021.fr.shuffled.deduped.gz"
    body = FILES["/news-crawl/fr/news.2021.fr.shuffled.deduped.gz"]
    good = download_module.download(
        url, tmp_path / "a.gz", size=len(body), sha256=hashlib.sha256(body).hexdigest()
    )
    assert good.read_bytes() == body
    with pytest.raises(StepError, match="sha256 checksum"):
        download_module.download(url, tmp_path / "b.gz", sha256="0" * 64)
    with pytest.raises(StepError, match="differs from the published 5 bytes"):
        download_module.download(url, tmp_path / "c.gz", size=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gz"]


def test_local_datasets_still_import(tmp_path):
    from conftest import write_corpus

    write_corpus(tmp_path / "d.en.gz", EN)
    write_corpus(tmp_path / "d.fr.txt", ["Bonjour\r", "a\tb", "x y", "z"])
    out = tmp_path / "out"
    result = run_step(IMPORT, ["--dataset", f"local_{tmp_path}/d", "--langs", "en,fr", "--output-dir", out])
    assert result.returncode == 0
    assert read_corpus(out / "corpus.fr.zst") == ["Bonjour", "a b", "x y", "z"]
