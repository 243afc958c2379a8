"""The url_ and opus_ importers against a real HTTP server on 127.0.0.1 (never any other address)."""

import gzip
import io
import json
import zipfile
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import http_server, read_corpus, run_step, step_env

IMPORT = "pipeline.data.import_dataset"
EN = ["Hello world", "Open the file", "Save changes?"]
FR = ["Bonjour le monde", "Ouvrir le fichier", "Enregistrer les modifications ?"]


def opus_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Tiny.en-fr.en", "\n".join(EN) + "\n")
        archive.writestr("Tiny.en-fr.fr", "\n".join(FR) + "\n")
        archive.writestr("README", "sample")
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    requests: list[str] = []
    flaky_failures = {"count": 0}

    def log_message(self, *args):
        pass

    def send_body(self, body: bytes, length: int | None = None, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Handler.requests.append(self.path)
        texts = {"en": EN, "fr": FR}
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/ok/") or self.path.startswith("/flaky/"):
            if self.path.startswith("/flaky/") and Handler.flaky_failures["count"] < 1:
                Handler.flaky_failures["count"] += 1
                self.send_body(b"try later", status=503)
                return
            lang = name.split(".")[1]
            self.send_body(gzip.compress(("\n".join(texts[lang]) + "\n").encode()))
        elif self.path.startswith("/truncated/"):
            body = gzip.compress(("\n".join(EN) + "\n").encode())
            self.send_body(body[: len(body) // 2], length=len(body))
        elif self.path == "/OPUS-Tiny/v1/moses/en-fr.txt.zip":
            self.send_body(opus_zip())
        elif self.path == "/OPUS-Broken/v1/moses/en-fr.txt.zip":
            self.send_body(b"this is not a zip archive")
        else:
            self.send_body(b"not found", status=404)


@pytest.fixture(scope="module")
def server():
    with http_server(Handler) as url:
        yield url


def import_dataset(dataset, out, **env):
    return run_step(
        IMPORT,
        ["--dataset", dataset, "--langs", "en,fr", "--output-dir", out],
        env=step_env(DOWNLOAD_BACKOFF="0.01", DOWNLOAD_ATTEMPTS="3", **env),
        check=False,
    )


def test_url_dataset_is_downloaded_per_language(server, tmp_path):
    out = tmp_path / "out"
    result = import_dataset(f"url_{server}/ok/corpus.[LANG].gz", out)
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.en.zst") == EN
    assert read_corpus(out / "corpus.fr.zst") == FR
    assert json.loads((out / "stats.json").read_text())["lines"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["corpus.en.zst", "corpus.fr.zst", "stats.json"]


def test_a_missing_file_fails_at_once_with_the_status(server, tmp_path):
    out = tmp_path / "out"
    before = len(Handler.requests)
    result = import_dataset(f"url_{server}/missing/corpus.[LANG].gz", out)
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and "Traceback" not in result.stderr
    assert len(Handler.requests) - before == 1, "a 404 is not retried"
    assert not (out / "corpus.en.zst").exists()


def test_a_truncated_download_is_retried_then_refused(server, tmp_path):
    out = tmp_path / "out"
    before = len(Handler.requests)
    result = import_dataset(f"url_{server}/truncated/corpus.[LANG].gz", out)
    assert result.returncode == 1
    assert "truncated body" in result.stderr
    assert len(Handler.requests) - before == 3
    assert not (out / "corpus.en.zst").exists()
    assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == [
        ".work/.download.en.gz.part"
    ]


def test_a_server_error_is_retried(server, tmp_path):
    out = tmp_path / "out"
    result = import_dataset(f"url_{server}/flaky/corpus.[LANG].gz", out)
    assert result.returncode == 0, result.stderr
    assert "attempt 1/3" in result.stderr and "503" in result.stderr
    assert read_corpus(out / "corpus.fr.zst") == FR


def test_opus_dataset_from_a_mirror(server, tmp_path):
    out = tmp_path / "out"
    result = import_dataset("opus_Tiny/v1", out, OPUS_URL=server)
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.en.zst") == EN
    assert read_corpus(out / "corpus.fr.zst") == FR
    broken = import_dataset("opus_Broken/v1", tmp_path / "broken", OPUS_URL=server)
    assert broken.returncode == 1 and "not a valid zip archive" in broken.stderr
