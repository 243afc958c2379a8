"""Every base image is pinned by digest: each FROM of docker/Dockerfile and taskcluster/docker/*/Dockerfile is
`image:tag@sha256:<digest>` (or a stage of the same file), and docker/base-image-pins.yml lists each pin, with
the same digest, where it comes from, whether it was verified, and the Dockerfiles that use it. The checker that
asks the registries (docker/check_base_image_pins.py) is run here against a fake registry on 127.0.0.1."""

import datetime
import importlib.util
import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from docker_images import IMAGES_DIR, parse_dockerfile

from conftest import http_server

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted([*IMAGES_DIR.glob("*/Dockerfile"), REPO_ROOT / "docker" / "Dockerfile"])
PINS_FILE = REPO_ROOT / "docker" / "base-image-pins.yml"
# name:tag@sha256:<64 hex>; the tag (after the last colon) has no slash, so `host:port/name` alone is no tag.
PINNED = re.compile(
    r"(?P<image>[a-z0-9][^@\s]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})@(?P<digest>sha256:[0-9a-f]{64})"
)
PIN_KEYS = {"image", "digest", "kind", "source", "verified", "used-by"}


def from_lines(text: str) -> list[tuple[str, str | None]]:
    """(base, stage name) of each FROM of a Dockerfile."""
    result = []
    for word, arguments in parse_dockerfile(text)[0]:
        if word != "FROM":
            continue
        words = [w for w in arguments.split() if not w.startswith("--platform=")]
        stage = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
        if len(words) not in (1, 3) or (len(words) == 3 and stage is None):
            raise ValueError(f"FROM {arguments}: not `FROM image [AS name]`")
        result.append((words[0], stage))
    return result


def unpinned(text: str) -> list[str]:
    """The FROM bases of a Dockerfile that are neither an earlier stage nor `image:tag@sha256:<digest>`."""
    stages, bad = set(), []
    for base, stage in from_lines(text):
        if base not in stages and not PINNED.fullmatch(base):
            bad.append(base)
        if stage:
            stages.add(stage)
    return bad


def test_the_pin_check_refuses_what_is_not_pinned():
    digest = "sha256:" + "a" * 64
    assert unpinned(f"FROM python:3.11-slim@{digest}\n") == []
    assert (
        unpinned(f"FROM nvcr.io/nvidia/cuda:12.2.2-devel-ubuntu22.04@{digest} AS build\nFROM build\n") == []
    )
    assert unpinned(f"FROM localhost:5000/x/y:1@{digest}\n") == []
    assert unpinned("FROM python:3.11-slim\n") == ["python:3.11-slim"]
    assert unpinned(f"FROM python@{digest}\n") == [f"python@{digest}"]  # the tag says what it is
    assert unpinned("ARG BASE=python:3.11\nFROM $BASE\n") == ["$BASE"]
    assert unpinned("FROM python:3.11@sha256:abc\n") == ["python:3.11@sha256:abc"]
    assert unpinned("FROM build\n") == ["build"]  # not an earlier stage


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_from_is_pinned_by_digest(path):
    assert unpinned(path.read_text()) == []


def load_pins() -> list[dict]:
    return yaml.safe_load(PINS_FILE.read_text())["pins"]


def test_the_pin_file_is_well_formed():
    pins = load_pins()
    assert pins
    for pin in pins:
        assert set(pin) == PIN_KEYS, pin
        assert PINNED.fullmatch(f"{pin['image']}@{pin['digest']}"), pin["image"]
        assert pin["kind"] in ("index", "manifest", "unknown"), pin["image"]
        assert isinstance(pin["source"], str) and len(pin["source"]) > 20, pin["image"]
        # false, or the date a registry confirmed the digest.
        assert pin["verified"] is False or isinstance(pin["verified"], datetime.date), pin["image"]
        assert pin["used-by"] and all((REPO_ROOT / used).is_file() for used in pin["used-by"]), pin["image"]
    assert len({pin["image"] for pin in pins}) == len(pins), "one entry per image"


def test_the_pin_file_and_the_dockerfiles_agree():
    used = {}
    for path in DOCKERFILES:
        for base, _ in from_lines(path.read_text()):
            if match := PINNED.fullmatch(base):
                used.setdefault((match["image"], match["digest"]), set()).add(
                    str(path.relative_to(REPO_ROOT))
                )
    listed = {(pin["image"], pin["digest"]): set(pin["used-by"]) for pin in load_pins()}
    assert listed == used


# --- docker/check_base_image_pins.py, against a fake registry ---


def load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_base_image_pins", REPO_ROOT / "docker/check_base_image_pins.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeRegistry(BaseHTTPRequestHandler):
    manifests: dict[tuple[str, str], str] = {}  # (repository, tag or digest) -> digest

    def log_message(self, *args):
        pass

    def do_GET(self):  # the token service
        assert self.path.startswith("/token?") and "scope=repository" in self.path
        body = json.dumps({"token": "anonymous"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        if self.headers.get("Authorization") != "Bearer anonymous":
            self.send_response(401)
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            self.send_header("WWW-Authenticate", f'Bearer realm="{host}/token",service="fake"')
            self.end_headers()
            return
        match = re.fullmatch(r"/v2/(.+)/manifests/(.+)", self.path)
        digest = self.manifests.get((match[1], match[2])) if match else None
        self.send_response(200 if digest else 404)
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()


@pytest.fixture
def registry():
    with http_server(FakeRegistry) as url:
        yield url


def test_the_checker_reads_references_like_docker():
    checker = load_checker()
    assert checker.split_reference("python:3.11-slim") == (
        "registry-1.docker.io",
        "library/python",
        "3.11-slim",
    )
    assert checker.split_reference("nvidia/cuda:12.2.2-devel") == (
        "registry-1.docker.io",
        "nvidia/cuda",
        "12.2.2-devel",
    )
    assert checker.split_reference("nvcr.io/nvidia/cuda:12") == ("nvcr.io", "nvidia/cuda", "12")
    assert checker.split_reference("localhost:5000/x:1") == ("localhost:5000", "x", "1")


def test_the_checker_tells_served_moved_and_gone_pins(registry):
    checker = load_checker()
    old, new, gone = ("sha256:" + c * 64 for c in "abc")
    FakeRegistry.manifests = {
        ("library/python", "3.11"): new,
        ("library/python", old): old,
        ("library/python", new): new,
        ("nvidia/cuda", "12"): new,
    }
    pins = [
        {"image": "python:3.11", "digest": new},
        {"image": "python:3.11", "digest": old},
        {"image": "nvidia/cuda:12", "digest": gone},
    ]
    lines = checker.check(pins, registry_for=lambda host: checker.Registry(registry))
    assert lines[0].startswith("ok") and "the tag still names it" in lines[0]
    assert lines[1].startswith("ok") and f"the tag now names {new}" in lines[1]
    assert lines[2].startswith("FAIL") and "does not serve this digest" in lines[2]
