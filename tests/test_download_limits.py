"""Downloads in bounded time (issue 23 A): a trickling, a silent and a too-slow server against the stall timeout
(DOWNLOAD_MIN_SPEED over DOWNLOAD_STALL_TIMEOUT) and the overall DOWNLOAD_DEADLINE, with small limits set
through the environment. Every server listens on 127.0.0.1 only."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import http_server
from pipeline.common import download as download_module
from pipeline.common.download import DownloadError
from pipeline.common.step import StepError

BODY = bytes(range(256)) * 64  # 16 KiB
BOUND = 10.0  # seconds any failure below must take at most


class Handler(BaseHTTPRequestHandler):
    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Handler.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/slow-headers":
            return self.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 16384\r\n\r\n", 0.5)
        start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").rstrip("-"))
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        rest = BODY[start:]
        if self.path == "/trickle":  # 1 byte/s, for ever (the body would take 4.5 hours)
            self.drip(rest, 1.0)
        elif self.path == "/speeds-up":
            # 1 s below any limit (5 bytes), then 5 KB/s for 3 s (above 1024 bytes/s), then the rest at once
            self.drip(rest[:5], 0.2)
            self.drip(rest[5 : 5 + 30 * 512], 0.1, piece=512)
            self.wfile.write(rest[5 + 30 * 512 :])
        else:
            self.wfile.write(rest)

    def drip(self, data: bytes, pause: float, piece: int = 1) -> None:
        """Writes `data` in pieces of `piece` bytes, `pause` seconds apart."""
        try:
            for offset in range(0, len(data), piece):
                self.wfile.write(data[offset : offset + piece])
                self.wfile.flush()
                time.sleep(pause)
        except OSError:  # the client gave up
            pass


@pytest.fixture(scope="module")
def server():
    with http_server(Handler) as url:
        yield url


@pytest.fixture
def silent_server():
    """Accepts connections, reads what comes, never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture
def small_limits(monkeypatch):
    for name, value in {
        "DOWNLOAD_STALL_TIMEOUT": "2",
        "DOWNLOAD_MIN_SPEED": "1024",
        "DOWNLOAD_ATTEMPTS": "2",
        "DOWNLOAD_BACKOFF": "0.01",
        "DOWNLOAD_DEADLINE": "60",
        "DOWNLOAD_TIMEOUT": "60",
    }.items():
        monkeypatch.setenv(name, value)


def made(path):
    return [r for r in Handler.requests if r[0] == path]


def failure(url, destination):
    """The DownloadError of downloading `url`, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(DownloadError) as error:
        download_module.download(url, destination)
    return str(error.value), time.monotonic() - started


def test_a_trickling_server_fails_in_bounded_time_and_a_rerun_resumes(server, small_limits, tmp_path):
    destination = tmp_path / "f.bin"
    part = tmp_path / ".f.bin.part"
    before = len(made("/trickle"))
    message, took = failure(f"{server}/trickle", destination)
    # Two attempts of about the stall timeout each, instead of 4.5 hours.
    assert 3.5 < took < BOUND, took
    assert message.startswith(f"cannot download {server}/trickle after 2 attempts: the transfer stalled:")
    assert "fewer than 1024 bytes/s over 2 s" in message
    assert "DOWNLOAD_MIN_SPEED" in message and "DOWNLOAD_STALL_TIMEOUT" in message
    got = part.stat().st_size
    assert 2 <= got <= 8, got  # about a byte a second
    assert f"received {got:,} of 16,384 bytes, kept in {part}" in message
    assert part.read_bytes() == BODY[:got] and not destination.exists()
    # The retry after the stall resumed (Range) where the first attempt stopped.
    first, second = made("/trickle")[before:]
    assert first[1] is None and second[1] is not None and second[1].startswith("bytes=")
    # A rerun continues the kept partial file (here from a healthy copy of the same file).
    part.rename(tmp_path / ".g.bin.part")
    assert download_module.download(f"{server}/fast", tmp_path / "g.bin").read_bytes() == BODY
    assert made("/fast")[-1] == ("/fast", f"bytes={got}-")
    assert not (tmp_path / ".g.bin.part").exists()


def test_a_silent_server_fails_within_about_the_stall_timeout_per_attempt(
    silent_server, small_limits, tmp_path
):
    url, held = silent_server
    message, took = failure(f"{url}/file", tmp_path / "f.bin")
    assert 3.5 < took < BOUND, took
    assert message == (
        f"cannot download {url}/file after 2 attempts: the transfer stalled: no data for 2 s "
        "(raise DOWNLOAD_STALL_TIMEOUT for a slow source); received 0 bytes"
    )
    assert len(held) == 2  # it did connect, twice
    assert list(tmp_path.iterdir()) == []


def test_the_stall_timeout_covers_trickled_headers(server, small_limits, tmp_path):
    """The socket timeout alone would never fire: a header byte comes every 0.5 s."""
    message, took = failure(f"{server}/slow-headers", tmp_path / "f.bin")
    assert 3.5 < took < BOUND, took
    assert "no data for 2 s" in message and "DOWNLOAD_STALL_TIMEOUT" in message
    assert list(tmp_path.iterdir()) == []


def test_a_trickle_that_speeds_up_within_the_limits_completes(server, small_limits, tmp_path, monkeypatch):
    monkeypatch.setenv("DOWNLOAD_ATTEMPTS", "1")  # no retry hides a stall
    before = len(made("/speeds-up"))
    started = time.monotonic()
    path = download_module.download(f"{server}/speeds-up", tmp_path / "f.bin")
    # Longer than the stall timeout, slow at first, yet never under 1024 bytes/s over 2 s.
    assert time.monotonic() - started > 3
    assert path.read_bytes() == BODY
    assert made("/speeds-up")[before:] == [("/speeds-up", None)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_the_deadline_ends_a_steady_but_endless_download(server, small_limits, tmp_path, monkeypatch):
    # Silence alone counts as a stall (no minimum speed): a byte a second passes that, not the deadline.
    monkeypatch.setenv("DOWNLOAD_MIN_SPEED", "0")
    monkeypatch.setenv("DOWNLOAD_DEADLINE", "3")
    monkeypatch.setenv("DOWNLOAD_ATTEMPTS", "5")
    before = len(made("/trickle"))
    message, took = failure(f"{server}/trickle", tmp_path / "f.bin")
    assert 2.9 < took < 6, took
    got = (tmp_path / ".f.bin.part").stat().st_size
    assert message == (
        f"cannot download {server}/trickle: not done within DOWNLOAD_DEADLINE=3 s (attempt 1 of 5); "
        f"received {got:,} of 16,384 bytes, kept in {tmp_path / '.f.bin.part'} for a rerun to resume; "
        "raise DOWNLOAD_DEADLINE for a large file on a slow link"
    )
    assert len(made("/trickle")) - before == 1  # no attempt after the deadline
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("DOWNLOAD_STALL_TIMEOUT", "0", "DOWNLOAD_STALL_TIMEOUT must be positive, got 0"),
        ("DOWNLOAD_DEADLINE", "-1", "DOWNLOAD_DEADLINE must be positive, got -1"),
        ("DOWNLOAD_MIN_SPEED", "-5", "DOWNLOAD_MIN_SPEED must be at least 0, got -5"),
        ("DOWNLOAD_MIN_SPEED", "fast", "DOWNLOAD_MIN_SPEED must be a number, got 'fast'"),
    ],
)
def test_a_wrong_limit_fails_before_any_request(server, tmp_path, monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    before = len(Handler.requests)
    with pytest.raises(StepError, match=expected):
        download_module.download(f"{server}/fast", tmp_path / "f.bin")
    assert len(Handler.requests) == before
