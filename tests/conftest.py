import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import zstandard

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = REPO_ROOT / "data" / "l10n-en-fr"
# Tests keep their `local_` datasets under the temporary folder: allow it as a data root (schema and steps).
os.environ["TRANSLATIONS_DATA_ROOT"] = tempfile.gettempdir()


def step_env(**extra) -> dict:
    # Not TASK_ID either: tests run inside a Taskcluster task would otherwise have steps behave as its own.
    env = {
        k: v for k, v in os.environ.items() if k not in ("THREADS", "WORKSPACE", "GPUS", "MARIAN", "TASK_ID")
    }
    env.update({"THREADS": "1", "WORKSPACE": "1000"})
    env.update(extra)
    return env


def run_step(
    module: str, args: list, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Runs a step script the way both engines do: `python -m <module>` from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        env=env if env is not None else step_env(),
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def build_vocab(corpus_dir, out, size: int, sample_size: int | None = None, src="en", trg="fr"):
    """A SentencePiece vocabulary of a test corpus, by the step script; returns the vocab.spm path."""
    args = ["--corpus-dir", corpus_dir, "--src", src, "--trg", trg, "--vocab-size", size, "--output-dir", out]
    if sample_size:
        args += ["--sample-size", sample_size]
    run_step("pipeline.train.spm_vocab", args)
    return out / "vocab.spm"


KILL_ATTEMPTS = 4  # kill_step_after with retry_dir: the delay is halved after each step that finished first


def _sigkill_group(process: subprocess.Popen, group: bool = True) -> int:
    """SIGKILLs a process (its whole process group, for one started in its own session) and returns its exit
    status: -SIGKILL if it was still running, its own status if it had already ended."""
    with contextlib.suppress(ProcessLookupError):
        if group and os.getpgid(process.pid) != process.pid:
            process.kill()
            process.wait()
            pytest.fail(
                "the process was not started in its own session (start_new_session): kill it with group=False"
            )
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGKILL)
    process.communicate()
    return process.returncode


def kill_running(process: subprocess.Popen, group: bool = True, what: str = "the step") -> None:
    """SIGKILLs a process and fails the test unless it was still running: a kill that comes after the end tests
    nothing, and a test that ignored it would pass whatever the resume does. It kills the whole process group
    (the process must have been started with start_new_session), or the process alone with group=False."""
    status = _sigkill_group(process, group)
    if status != -signal.SIGKILL:
        pytest.fail(
            f"{what} had already ended (exit status {status}) when it was to be killed: it was not killed mid-run"
        )


def kill_step_after(
    module: str, args: list, seconds: float, env: dict | None = None, retry_dir: Path | None = None
) -> float:
    """Starts a step in its own process group and SIGKILLs the whole group after `seconds`, as a worker or an
    engine losing the task would; returns the delay at which it was killed. It fails the test unless the step
    was still running then (its exit status is -SIGKILL): a step that failed first, or finished first, was not
    killed mid-run, and a rerun after it would prove nothing. With `retry_dir` (the step's output folder), a step
    that finished first is run again on an emptied folder with half the delay, up to KILL_ATTEMPTS runs."""
    for attempt in range(KILL_ATTEMPTS if retry_dir is not None else 1):
        if attempt:
            shutil.rmtree(retry_dir, ignore_errors=True)
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *map(str, args)],
                cwd=REPO_ROOT,
                env=env or step_env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
            try:
                process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                status = _sigkill_group(process)
            else:
                status = process.returncode
            if status == -signal.SIGKILL:
                return seconds
            if status != 0:
                log.seek(0)
                stderr = log.read().decode("utf-8", "replace")[-3000:]
                pytest.fail(f"{module} failed ({status}) before the kill after {seconds:.2f}s:\n{stderr}")
        seconds /= 2
    pytest.fail(
        f"{module} finished before the kill (the last after {seconds * 2:.2f}s"
        f"{'' if retry_dir is not None else '; no retry_dir to retry sooner'}): it was never killed mid-run"
    )


def _default_sigint():
    # As in a terminal: a test suite started from a background shell (nohup, `cmd &`) inherits SIGINT ignored,
    # and the engine would then never see the Ctrl-C that tests send it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_localrun(config_path, runs_dir, *extra, **popen) -> subprocess.Popen:
    """Starts the local engine on a config, as the README's `task run-local` does; output is captured
    (stderr merged into stdout unless `stderr=` says otherwise). Its own session: `communicate` kills the whole
    engine when a test gives up on it."""
    command = [sys.executable, "-m", "localrun", "--config", str(config_path), "--runs-dir", str(runs_dir)]
    popen = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,
        "preexec_fn": _default_sigint,
        **popen,
    }
    return subprocess.Popen([*command, *extra], cwd=REPO_ROOT, text=True, **popen)


def communicate(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """process.communicate, but a timeout or a test interrupted (pytest-timeout) kills the engine's whole
    process group: an orphaned training would slow every later test."""
    try:
        return process.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    """Waits for a process started with merged output; returns its exit status and output."""
    output, _ = communicate(process, timeout)
    return process.returncode, output


def descendants(graph, labels) -> set:
    """`labels` and every task of the taskgraph `graph` that depends on them, directly or not."""
    children = {}
    for label, task in graph.tasks.items():
        for dep in task.dependencies.values():
            children.setdefault(dep, set()).add(label)
    seen, pending = set(), list(labels)
    while pending:
        label = pending.pop()
        if label not in seen:
            seen.add(label)
            pending.extend(children.get(label, ()))
    return seen


def write_failing_plan(run_dir: Path, missing: Path) -> Path:
    """A local-engine plan of one task, `merge`, whose step fails at once (its input `missing` does not
    exist); returns the plan's path."""
    step = {
        "module": "pipeline.clean.merge_corpus",
        "args": [
            ["--input-dirs", str(missing)],
            ["--src", "en"],
            ["--trg", "fr"],
            ["--output-dir", {"artifacts": True}],
        ],
        "outputs": ["corpus.en.zst"],
        "env": {},
        "resources": {"cpus": 1, "mem-gb": 0.5},
    }
    task = {"kind": "merge", "stage": "merge", "step": step, "dependencies": [], "digest": "abc"}
    plan = run_dir / "plan.json"
    plan.write_text(json.dumps({"order": ["merge"], "targets": ["merge"], "tasks": {"merge": task}}))
    return plan


def write_corpus(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    elif path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def read_corpus(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.suffix == ".zst":
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    elif path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8").splitlines()


def tree_digest(folder: Path) -> dict:
    """{relative path: (sha256, mtime)} of every file under folder: proves inputs stay untouched."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def sample_pairs(count: int, split: str = "train") -> list[tuple[str, str]]:
    src = read_corpus(SHARED_SAMPLE / f"{split}.en.gz")[:count]
    trg = read_corpus(SHARED_SAMPLE / f"{split}.fr.gz")[:count]
    return list(zip(src, trg, strict=True))


@pytest.fixture
def parallel_dir(tmp_path):
    """A dataset folder as the import step writes it: corpus.en.zst, corpus.fr.zst, stats.json."""
    folder = tmp_path / "imported"
    pairs = sample_pairs(300)
    write_corpus(folder / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(folder / "corpus.fr.zst", [t for _, t in pairs])
    (folder / "stats.json").write_text('{"dataset": "local_sample", "langs": ["en", "fr"], "lines": 300}')
    return folder


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A .tgz holding `files` (name -> content), as model packs are published."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextlib.contextmanager
def http_server(handler):
    """Serves `handler` (a BaseHTTPRequestHandler class) on a free port of 127.0.0.1, one thread per request;
    yields the base URL, and stops the server afterwards."""
    import threading
    from http.server import ThreadingHTTPServer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def file_server(files: dict[str, bytes]):
    """Serves `files` (URL path -> body) on 127.0.0.1, 404 for any other path; under /slow/ the same files
    drip 16 bytes per 0.25 s, so that a kill lands mid-download. Yields (base URL, the paths requested)."""
    import time
    from http.server import BaseHTTPRequestHandler

    requested = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requested.append(self.path)
            slow = self.path.startswith("/slow/")
            body = files.get(self.path.removeprefix("/slow")) if slow else files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            step = 16 if slow else len(body or b"") or 1
            for start in range(0, len(body or b""), step):
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
                if slow:
                    time.sleep(0.25)

    with http_server(Handler) as url:
        yield url, requested
