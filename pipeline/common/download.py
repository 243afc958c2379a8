"""Downloads that survive flaky servers and killed tasks.

`download(url, destination)` streams the body to `.<name>.part` next to the destination, resumes that partial
file with an HTTP Range request (on a retry, or when a killed task runs again), retries transient failures
(5xx, 408, 429, dropped connections, truncated bodies) with exponential backoff, checks the size and a
checksum where the source publishes one, and renames the file into place only once all of that passed.

Mirrors: each source has its own environment variable (`MIRROR_VARIABLES`); when it is set, the scheme and host
of the source's URLs are replaced by it (the path is kept), so a mirror serves the source's layout.

Tuning (environment): DOWNLOAD_ATTEMPTS (default 5), DOWNLOAD_BACKOFF (seconds before the first retry, doubled
each time, at most 60; default 2), DOWNLOAD_TIMEOUT (seconds without data before a read fails; default 60).
"""

import contextlib
import hashlib
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.common.step import StepError

logger = logging.getLogger("download")

# One mirror variable per source; `OPUS_URL` is the older name of OPUS_MIRROR and still works.
MIRROR_VARIABLES = {
    "opus": ("OPUS_MIRROR", "OPUS_URL"),
    "mtdata": ("MTDATA_MIRROR",),
    "sacrebleu": ("SACREBLEU_MIRROR",),
    "flores": ("FLORES_MIRROR",),
    "news-crawl": ("NEWSCRAWL_MIRROR",),
    "hplt": ("HPLT_MIRROR",),
    "url": (),
}

CHUNK = 1 << 20


class DownloadError(StepError):
    """A download that cannot succeed (a 4xx answer, a checksum that does not match) or kept failing."""


class _Transient(Exception):
    """A failure worth retrying (and resuming after)."""


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


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """One attempt: continue `part` from its current size (Range) or start it anew."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "translations-pipeline"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            # The partial file is not a prefix of what the server has now: start over.
            part.unlink()
            raise _Transient(f"HTTP 416 for a resume from byte {have}; starting over") from None
        if 400 <= error.code < 500 and error.code not in (408, 429):
            raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
        raise _Transient(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise _Transient(str(getattr(error, "reason", error))) from None
    with response:
        length = response.headers.get("Content-Length")
        if have and response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise _Transient(
                    f"the server resumed at the wrong offset ({response.headers.get('Content-Range')})"
                )
            mode, start = "ab", have
            logger.info("resuming %s from byte %d", url, have)
        else:
            mode, start = "wb", 0  # no Range support (200): the body is the whole file
        expected = start + int(length) if length is not None else None
        received = start
        try:
            with open(part, mode) as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
        except (OSError, urllib.error.URLError) as error:  # http.client.IncompleteRead is an OSError too
            raise _Transient(f"connection lost after {received} bytes: {error}") from None
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
    timeout = _setting("DOWNLOAD_TIMEOUT", 60.0)
    last_error = "no attempt"
    for attempt in range(1, attempts + 1):
        try:
            _fetch_once(url, part, timeout)
            _check(url, part, size, md5, sha256)
            os.replace(part, destination)
            logger.info("downloaded %s (%d bytes)", url, destination.stat().st_size)
            return destination
        except _Transient as error:
            last_error = str(error)
        except DownloadError:
            raise
        logger.warning("download attempt %d/%d of %s failed: %s", attempt, attempts, url, last_error)
        if attempt < attempts:
            time.sleep(min(backoff * 2 ** (attempt - 1), 60.0))
    raise DownloadError(f"cannot download {url} after {attempts} attempts: {last_error}")


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
