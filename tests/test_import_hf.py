"""Hugging Face Hub datasets (`hfp_...` parallel, `hf_...` mono, as the reference's configs name them), imported
from a loopback server that answers the Hub's two endpoints the provider uses: the file tree of a revision (in
pages, as the Hub pages it) and each file. Datasets in the Hub's layouts: a card's `configs:` section with
Parquet files, a `translation` column in JSON Lines found by file name, documents of text for a monolingual
set; and a local folder named as the repository."""

import gzip
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from conftest import read_corpus, run_step, step_env

IMPORT = "pipeline.data.import_dataset"
CARD = """---
license: cc-by-4.0
configs:
- config_name: en-gl
  data_files:
  - split: train
    path: en-gl/train-*.parquet
  - split: test
    path: en-gl/test-*.parquet
---
# SciELO-GL
"""


def parquet(rows: list[dict]) -> bytes:
    import pyarrow.parquet

    sink = io.BytesIO()
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), sink)
    return sink.getvalue()


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def hub_files() -> dict[tuple[str, str], dict[str, bytes]]:
    return {
        ("ZJaume/SciELO-GL", "83fc003"): {
            "README.md": CARD.encode(),
            "en-gl/train-00000-of-00002.parquet": parquet(
                [
                    {"frase_fonte": "The cell divides.", "frase_galego": "A célula divídese."},
                    {"frase_fonte": "Empty target", "frase_galego": ""},  # skipped
                ]
            ),
            "en-gl/train-00001-of-00002.parquet": parquet(
                [{"frase_fonte": "Two\nlines", "frase_galego": "Dúas\nliñas"}]
            ),
            "en-gl/test-00000-of-00001.parquet": parquet([{"frase_fonte": "test", "frase_galego": "proba"}]),
        },
        ("org/weblate", "main"): {
            "data/train-00000.jsonl": jsonl(
                [
                    {"translation": {"en": "Save", "gl": "Gardar"}},
                    {"translation": {"en": "Open", "gl": "Abrir"}},
                ]
            ),
            "data/validation-00000.jsonl": jsonl([{"translation": {"en": "no", "gl": "non"}}]),
        },
        ("proxectonos/nos_gl_CC0", "a7ba855"): {
            "train.jsonl.gz": gzip.compress(
                jsonl([{"text": "Primeira liña.\n\nSegunda  liña."}, {"text": "Terceira."}])
            ),
        },
    }


class Hub(BaseHTTPRequestHandler):
    files: dict = {}
    requests: list = []

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        Hub.requests.append(path)
        if path.startswith("/api/datasets/"):
            repo_rev = path.removeprefix("/api/datasets/")
            repo, _, revision = repo_rev.partition("/tree/")
            files = Hub.files.get((repo, revision))
            if files is None:
                return self._send(404, b'{"error": "Revision Not Found"}')
            entries = [{"type": "file", "path": p, "size": len(b)} for p, b in sorted(files.items())]
            page = 1 if "cursor=2" in parts.query else 0
            half = len(entries) // 2
            if page == 0 and half:
                link = f'<http://127.0.0.1:{self.server.server_port}{parts.path}?recursive=true&cursor=2>; rel="next"'
                return self._send(200, json.dumps(entries[:half]).encode(), {"Link": link})
            return self._send(200, json.dumps(entries[half:] if half else entries).encode())
        if path.startswith("/datasets/"):
            repo_rest = path.removeprefix("/datasets/")
            repo, _, rest = repo_rest.partition("/resolve/")
            revision, _, file = rest.partition("/")
            body = Hub.files.get((repo, revision), {}).get(file)
            return self._send(200, body) if body is not None else self._send(404)
        self._send(404)


@pytest.fixture(scope="module")
def hub():
    Hub.files = hub_files()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def import_hf(hub, dataset, out, langs="en,gl", **env):
    return run_step(
        IMPORT,
        ["--dataset", dataset, "--langs", langs, "--output-dir", out],
        env=step_env(HF_ENDPOINT=hub, **env),
        check=False,
    )


def test_a_parquet_dataset_with_a_card_imports_its_subset_and_split(hub, tmp_path):
    out = tmp_path / "out"
    Hub.requests.clear()
    result = import_hf(hub, "hfp_ZJaume/SciELO-GL:en-gl:train:frase_fonte:frase_galego@83fc003", out)
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.en.zst") == ["The cell divides.", "Two lines"]
    assert read_corpus(out / "corpus.gl.zst") == ["A célula divídese.", "Dúas liñas"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["hf_records_empty"] == 1 and len(stats["hf_files"]) == 2
    # The revision pinned in the name is what was read; the tree came in two pages.
    assert all("/83fc003" in r for r in Hub.requests)
    assert sum(r.startswith("/api/datasets/") for r in Hub.requests) == 2
    # The swapped direction reads the same columns into the other languages.
    swapped = tmp_path / "swapped"
    result = import_hf(
        hub, "hfp_ZJaume/SciELO-GL:en-gl:test:frase_galego:frase_fonte@83fc003", swapped, "gl,en"
    )
    assert result.returncode == 0, result.stderr
    assert read_corpus(swapped / "corpus.gl.zst") == ["proba"]


def test_a_translation_column_found_by_file_name(hub, tmp_path):
    out = tmp_path / "out"
    result = import_hf(hub, "hfp_org/weblate:default:train:en:gl", out)
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.en.zst") == ["Save", "Open"]
    assert read_corpus(out / "corpus.gl.zst") == ["Gardar", "Abrir"]


def test_a_monolingual_dataset_is_read_a_line_of_each_document_at_a_time(hub, tmp_path):
    out = tmp_path / "out"
    result = import_hf(hub, "hf_proxectonos/nos_gl_CC0:default:train:text@a7ba855", out, langs="gl")
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.gl.zst") == ["Primeira liña.", "Segunda liña.", "Terceira."]


def test_a_local_folder_named_as_the_repository(tmp_path):
    folder = tmp_path / "data" / "hfp_dataset"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_bytes(jsonl([{"src": "Hello", "trg": "Ola"}]))
    out = tmp_path / "out"
    result = run_step(
        IMPORT,
        ["--dataset", "hfp_data/hfp_dataset:default:train:src:trg", "--langs", "en,gl", "--output-dir", out],
        env=step_env(TRANSLATIONS_DATA_ROOT=str(tmp_path)),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert read_corpus(out / "corpus.gl.zst") == ["Ola"]


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("hfp_ZJaume/SciELO-GL:en-pt:train:frase_fonte:frase_galego@83fc003", "has no subset 'en-pt'"),
        (
            "hfp_ZJaume/SciELO-GL:en-gl:validation:frase_fonte:frase_galego@83fc003",
            "has no split 'validation'",
        ),
        ("hfp_ZJaume/SciELO-GL:en-gl:train:source:frase_galego@83fc003", "no field 'source'"),
        ("hfp_ZJaume/SciELO-GL:en-gl:train:frase_fonte:frase_galego@0000000", "HTTP 404"),
        ("hfp_org/weblate:default:test:en:gl", "no data file for subset 'default', split 'test'"),
        ("hfp_org/weblate:default:train:en", "is written <repo>:<subset>:<split>:<src field>:<trg field>"),
    ],
)
def test_a_wrong_dataset_fails_with_a_clear_message_and_no_output(hub, tmp_path, dataset, message):
    out = tmp_path / "out"
    result = import_hf(hub, dataset, out)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "corpus.en.zst").exists()


def test_kill_9_during_the_import_then_rerun_gives_the_same_outputs(hub, tmp_path):
    """The second file is served slowly; the import is killed while it waits for it, then run again."""
    import subprocess
    import sys
    import time

    from conftest import REPO_ROOT, kill_running

    reference = tmp_path / "reference"
    assert import_hf(hub, "hfp_org/weblate:default:train:en:gl", reference).returncode == 0
    original = Hub.do_GET

    def slow(handler):
        if "/resolve/" in handler.path:
            time.sleep(3)
        original(handler)

    Hub.do_GET = slow
    out = tmp_path / "out"
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", IMPORT, "--dataset", "hfp_org/weblate:default:train:en:gl", "--langs", "en,gl",
             "--output-dir", str(out)],
            cwd=REPO_ROOT, env=step_env(HF_ENDPOINT=hub), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(1.5)
        kill_running(process, what="the import")
    finally:
        Hub.do_GET = original
    assert not (out / "corpus.en.zst").exists()
    assert import_hf(hub, "hfp_org/weblate:default:train:en:gl", out).returncode == 0
    for name in ("corpus.en.zst", "corpus.gl.zst"):
        assert read_corpus(out / name) == read_corpus(reference / name)
