"""Downloads that survive flaky servers and killed tasks.

`download(url, destination)` streams the body to `.<name>.part` next to the destination, resumes that partial
file with an HTTP Range request (on a retry, or when a killed task runs again), retries transient failures
(5xx, 408, 429, dropped connections, truncated bodies) with exponential backoff, checks the size and a
checksum where the source publishes one, and renames the file into place only once all of that passed.

Mirrors: each source has its own environment variable (`MIRROR_VARIABLES`); when it is set, the scheme and host
of the source's URLs are replaced by it (the path is kept), so a mirror serves the source's layout.

Tuning (environment): DOWNLOAD_ATTEMPTS (default 5), DOWNLOAD_BACKOFF (seconds before the first retry, doubled
each time, at most 60; default 2), DOWNLOAD_TIMEOUT (seconds a connect or a single read may wait; default 60,
never more than DOWNLOAD_STALL_TIMEOUT).

Bounded time (the timeouts above apply to one socket operation each, so a server trickling a byte a second
would never trip them):
- DOWNLOAD_MIN_SPEED (bytes/s, default 1024) and DOWNLOAD_STALL_TIMEOUT (seconds, default 60), as curl's
  --speed-limit/--speed-time: an attempt that moved fewer than DOWNLOAD_MIN_SPEED bytes/s over the last
  DOWNLOAD_STALL_TIMEOUT seconds is ended (from the connection on: a server that accepts and sends nothing,
  or trickles its headers, ends the same way) and retried like a dropped connection, resuming with Range.
  DOWNLOAD_MIN_SPEED=0 keeps only the silence limit (no byte at all for DOWNLOAD_STALL_TIMEOUT seconds).
- DOWNLOAD_DEADLINE (seconds for one file, over all its attempts and their backoff; default 21600 = 6 h): the
  whole download, however it progresses. 6 h moves 21 GB even at 1 MB/s; the largest files of the sources
  (OPUS archives of the big corpora, HPLT shards: a few GB to a few tens of GB) take under 2 h at 5 MB/s.
  And it stays well below a Taskcluster task's 24 h max-run-time, so a source too slow to finish fails here,
  with a message naming the URL, rather than by the task being killed without one. Raise it for a huge file
  on a slow link.
A download that hits either limit fails with a DownloadError naming the URL, the bytes received (of how many,
when known), the limit and the variable to change; the partial file stays next to the destination, so a
rerun continues it, and nothing is at the destination.
"""

import contextlib
import functools
import hashlib
import http.client
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.common.step import StepError

logger = logging.getLogger("download")

# One mirror variable per source; `OPUS_URL` is the older name of OPUS_MIRROR and still works.
MIRROR_VARIABLES = {
    "opus": ("OPUS_MIRROR", "OPUS_URL"),
    "opus-api": ("OPUS_API_MIRROR",),
    "mtdata": ("MTDATA_MIRROR",),
    "sacrebleu": ("SACREBLEU_MIRROR",),
    "flores": ("FLORES_MIRROR",),
    "news-crawl": ("NEWSCRAWL_MIRROR",),
    "hplt": ("HPLT_MIRROR",),
    "ntrex": ("NTREX_MIRROR",),
    "tmx": ("TMX_MIRROR",),
    "url": (),
}

CHUNK = 1 << 20


class DownloadError(StepError):
    """A download that cannot succeed (a 4xx answer, a checksum that does not match) or kept failing."""


class _Transient(Exception):
    """A failure worth retrying (and resuming after)."""


class _TimedOut(_Transient):
    """One socket operation waited `seconds` for nothing."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


class _Stalled(_Transient):
    """The attempt moved too little data (DOWNLOAD_MIN_SPEED over DOWNLOAD_STALL_TIMEOUT), or none."""


class _DeadlinePassed(Exception):
    """DOWNLOAD_DEADLINE passed: no further attempt."""


class _Watchdog:
    """Ends an attempt once it moved fewer than `min_speed` bytes/s over the last `stall` seconds, or once the
    deadline (a time.monotonic() value) passed, by shutting its socket down: that wakes a read blocked in
    another thread, which then sees `reason`. Only body bytes count (`received`, added by the reader)."""

    def __init__(self, min_speed: float, stall: float, deadline_at: float):
        self.min_speed, self.stall, self.deadline_at = min_speed, stall, deadline_at
        self.received = 0
        self.reason: str | None = None  # "stall" or "deadline", once it ended the attempt
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._finished = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-watchdog", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.finish()
        self._thread.join()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.reason is not None
        if fired:
            self._shutdown(sock)

    def finish(self) -> str | None:
        """Stops watching; returns the reason if the watchdog had ended the attempt first."""
        with self._lock:
            self._finished = True
        self._wake.set()
        return self.reason

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed, or detached by the TLS wrapper
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _run(self) -> None:
        tick = min(1.0, self.stall / 10)
        start = time.monotonic()
        samples = deque([(start, 0)])  # (time, received); the first is the newest at or before the window
        while not self._wake.wait(tick):
            now = time.monotonic()
            samples.append((now, self.received))
            while len(samples) > 1 and samples[1][0] <= now - self.stall:
                samples.popleft()
            moved = self.received - samples[0][1]
            if now >= self.deadline_at:
                reason = "deadline"
            elif self.min_speed > 0 and now - start >= self.stall and moved < self.min_speed * self.stall:
                reason = "stall"
            else:
                continue
            with self._lock:
                if self._finished:
                    return
                self.reason = reason
                sockets = list(self._sockets)
            for sock in sockets:
                self._shutdown(sock)
            return


def _watched_connection(base: type, watchdog: _Watchdog, *args, **kwargs):
    """An http.client connection of class `base` whose socket `watchdog` can shut down."""

    class Watched(base):
        def connect(self):
            super().connect()
            watchdog.watch(self.sock)

    return Watched(*args, **kwargs)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req):
        return self.do_open(
            functools.partial(_watched_connection, http.client.HTTPConnection, self.watchdog), req
        )


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def https_open(self, req):
        connection = functools.partial(_watched_connection, http.client.HTTPSConnection, self.watchdog)
        return self.do_open(connection, req, context=self._context)


def mirrored(source: str, url: str, keep_host: bool = False) -> str:
    """`url` rewritten to the source's mirror, if its variable is set. With `keep_host`, the original host
    becomes the first path component (for sources, like mtdata, whose index spans many hosts)."""
    for variable in MIRROR_VARIABLES[source]:
        base = os.environ.get(variable)
        if base:
            parts = urlsplit(url)
            path = f"/{parts.netloc}{parts.path}" if keep_host else parts.path
            mirror = urlsplit(base.rstrip("/"))
            return urlunsplit((mirror.scheme, mirror.netloc, mirror.path + path, parts.query, ""))
    return url


def _setting(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise StepError(f"{name} must be a number, got {value!r}") from None


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Limits:
    timeout: float  # one socket operation
    min_speed: float  # bytes/s ...
    stall: float  # ... over this many seconds
    deadline: float  # seconds for the whole download (DOWNLOAD_DEADLINE) ...
    deadline_at: float  # ... as a time.monotonic() value


def _stall_message(limits: _Limits, moved: int, silent_for: float | None = None) -> str:
    """Why an attempt stalled, naming the variable to change. `moved`: body bytes of the attempt;
    `silent_for`: a single socket operation timed out after that many seconds."""
    if silent_for is not None and silent_for < limits.stall:
        return (
            f"the transfer stalled: no data for {silent_for:g} s (raise DOWNLOAD_TIMEOUT for a slow source)"
        )
    if limits.min_speed > 0 and moved:
        return (
            f"the transfer stalled: fewer than {limits.min_speed:g} bytes/s over {limits.stall:g} s "
            "(lower DOWNLOAD_MIN_SPEED or raise DOWNLOAD_STALL_TIMEOUT for a slow source)"
        )
    return f"the transfer stalled: no data for {limits.stall:g} s (raise DOWNLOAD_STALL_TIMEOUT for a slow source)"


def _fetch_once(url: str, part: Path, limits: _Limits, sizes: dict) -> None:
    """One attempt: continue `part` from its current size (Range) or start it anew, under a watchdog. Records
    the total size in `sizes["total"]` once the server told it."""
    with _Watchdog(limits.min_speed, limits.stall, limits.deadline_at) as watchdog:
        try:
            _read_response(url, part, limits, watchdog, sizes)
        except _Transient as error:
            reason = watchdog.finish()
            if reason == "deadline":
                raise _DeadlinePassed() from None
            if reason == "stall":
                raise _Stalled(_stall_message(limits, watchdog.received)) from None
            if isinstance(error, _TimedOut):
                raise _Stalled(_stall_message(limits, watchdog.received, error.seconds)) from None
            raise


def _read_response(url: str, part: Path, limits: _Limits, watchdog: _Watchdog, sizes: dict) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "translations-pipeline"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    # One socket operation waits at most this long (the watchdog ends slow progress; this, no progress).
    timeout = max(0.1, min(limits.timeout, limits.stall, limits.deadline_at - time.monotonic()))
    opener = urllib.request.build_opener(_WatchedHTTPHandler(watchdog), _WatchedHTTPSHandler(watchdog))
    try:
        try:
            response = opener.open(request, timeout=timeout)
        except TimeoutError:  # while waiting for the status line or headers
            raise _TimedOut("timed out", timeout) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):  # while connecting
                raise _TimedOut("timed out", timeout) from None
            raise
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            # The partial file is not a prefix of what the server has now: start over.
            part.unlink()
            raise _Transient(f"HTTP 416 for a resume from byte {have}; starting over") from None
        if 400 <= error.code < 500 and error.code not in (408, 429):
            raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
        raise _Transient(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        # http.client.HTTPException: a status line or headers cut short (e.g. by the watchdog)
        raise _Transient(str(getattr(error, "reason", error)) or type(error).__name__) from None
    with response:
        length = response.headers.get("Content-Length")
        if have and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            match = re.match(r"bytes (\d+)-", content_range)
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise _Transient(f"the server resumed at the wrong offset ({content_range})")
            mode, start = "ab", have
            logger.info("resuming %s from byte %d", url, have)
        else:
            mode, start = "wb", 0  # no Range support (200): the body is the whole file
        expected = start + int(length) if length is not None else None
        if expected is not None:
            sizes["total"] = expected
        received = start
        try:
            with open(part, mode) as out:
                while True:
                    # read1: what one recv brings, so the watchdog sees progress as it comes
                    block = response.read1(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    watchdog.received += len(block)
        except TimeoutError:
            raise _TimedOut(f"timed out after {received} bytes", timeout) from None
        except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
            # http.client.IncompleteRead is an HTTPException, a reset connection an OSError
            raise _Transient(f"connection lost after {received} bytes: {error}") from None
    if watchdog.finish() and received != expected:
        # The watchdog shut the connection down: the end of the body was not the server's.
        raise _Transient(f"ended after {received} bytes")
    if expected is not None and received != expected:
        raise _Transient(f"truncated body: got {received} of {expected} bytes")


def download(
    url: str,
    destination: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Downloads `url` to `destination` (atomically); a no-op if the destination already exists."""
    destination = Path(destination)
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(f".{destination.name}.part")
    attempts = max(1, int(_setting("DOWNLOAD_ATTEMPTS", 5)))
    backoff = _setting("DOWNLOAD_BACKOFF", 2.0)
    limits = _limits()
    sizes = {"total": size}

    def progress() -> str:
        got = part.stat().st_size if part.exists() else 0
        of = f" of {sizes['total']:,}" if sizes["total"] is not None else ""
        kept = f", kept in {part} for a rerun to resume" if got else ""
        return f"received {got:,}{of} bytes{kept}"

    def deadline_passed(attempt: int) -> DownloadError:
        return DownloadError(
            f"cannot download {url}: not done within DOWNLOAD_DEADLINE={limits.deadline:g} s "
            f"(attempt {attempt} of {attempts}); {progress()}; raise DOWNLOAD_DEADLINE for a large file on a "
            "slow link"
        )

    last_error = "no attempt"
    for attempt in range(1, attempts + 1):
        try:
            _fetch_once(url, part, limits, sizes)
            _check(url, part, size, md5, sha256)
            os.replace(part, destination)
            logger.info("downloaded %s (%d bytes)", url, destination.stat().st_size)
            return destination
        except _Transient as error:
            last_error = str(error)
        except _DeadlinePassed:
            raise deadline_passed(attempt) from None
        except DownloadError:
            raise
        if time.monotonic() >= limits.deadline_at:
            raise deadline_passed(attempt)
        logger.warning(
            "download attempt %d/%d of %s failed: %s (%s)", attempt, attempts, url, last_error, progress()
        )
        if attempt < attempts:
            pause = min(backoff * 2 ** (attempt - 1), 60.0)
            if time.monotonic() + pause >= limits.deadline_at:
                raise deadline_passed(attempt)
            time.sleep(pause)
    raise DownloadError(f"cannot download {url} after {attempts} attempts: {last_error}; {progress()}")


def _limits() -> _Limits:
    """The time limits from the environment, checked before any request."""
    min_speed = _setting("DOWNLOAD_MIN_SPEED", 1024.0)
    stall = _setting("DOWNLOAD_STALL_TIMEOUT", 60.0)
    deadline = _setting("DOWNLOAD_DEADLINE", 6 * 3600.0)
    timeout = _setting("DOWNLOAD_TIMEOUT", 60.0)
    if min_speed < 0:
        raise StepError(f"DOWNLOAD_MIN_SPEED must be at least 0, got {min_speed:g}")
    for name, value in (
        ("DOWNLOAD_STALL_TIMEOUT", stall),
        ("DOWNLOAD_DEADLINE", deadline),
        ("DOWNLOAD_TIMEOUT", timeout),
    ):
        if value <= 0:
            raise StepError(f"{name} must be positive, got {value:g}")
    return _Limits(timeout, min_speed, stall, deadline, time.monotonic() + deadline)


def _check(url: str, part: Path, size: int | None, md5: str | None, sha256: str | None) -> None:
    got = part.stat().st_size
    if size is not None and got != size:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise _Transient(f"size {got} differs from the published {size} bytes")
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and _digest(part, algorithm) != expected.lower():
            actual = _digest(part, algorithm)
            part.unlink()
            raise DownloadError(
                f"{url}: {algorithm} checksum {actual} differs from the published {expected}; "
                "the file was removed (a mirror serving another version, or a corrupt transfer)"
            )
