"""Check the pinned base images of docker/base-image-pins.yml against their registries (needs network access).

For each pin it asks the registry (the Docker Registry HTTP API v2, with the anonymous token the registry's
`WWW-Authenticate` challenge names) whether the pinned digest is still served, and which digest the tag names
today. Exit status 1 when a pinned digest is not served (the image can no longer be built as pinned); a tag that
has moved on is only reported (a pin is meant to stay put until someone moves it).

    python3 docker/check_base_image_pins.py [--pins docker/base-image-pins.yml]

Standard library only (and PyYAML, which the project's environment has), so that it runs anywhere.
"""

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

PINS = Path(__file__).resolve().parent / "base-image-pins.yml"
DOCKER_HUB = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def split_reference(image: str) -> tuple[str, str, str]:
    """(registry host, repository, tag) of `[host/]name:tag`, as docker reads it (Docker Hub by default,
    `library/` for its official images)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"{image}: not name:tag")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag
    return DOCKER_HUB, name if "/" in name else f"library/{name}", tag


class Registry:
    """Anonymous pull access to one registry, over `base_url` (https://<host> unless told otherwise)."""

    def __init__(self, base_url: str, timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.tokens: dict[str, str] = {}

    def _request(self, url: str, headers: dict, method: str = "GET"):
        request = urllib.request.Request(url, headers=headers, method=method)
        return urllib.request.urlopen(request, timeout=self.timeout)

    def _token(self, challenge: str, repository: str) -> str:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if not challenge.lower().startswith("bearer") or "realm" not in fields:
            raise RuntimeError(f"unsupported authentication challenge: {challenge!r}")
        query = {"scope": f"repository:{repository}:pull"}
        if "service" in fields:
            query["service"] = fields["service"]
        with self._request(f"{fields['realm']}?{urllib.parse.urlencode(query)}", {}) as response:
            answer = json.load(response)
        return answer.get("token") or answer["access_token"]

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry serves for a tag or digest, or None when it serves nothing there."""
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"
        headers = {"Accept": MANIFEST_TYPES}
        for attempt in range(2):
            if repository in self.tokens:
                headers["Authorization"] = f"Bearer {self.tokens[repository]}"
            try:
                with self._request(url, headers, method="HEAD") as response:
                    return response.headers.get("Docker-Content-Digest") or reference
            except urllib.error.HTTPError as error:
                if error.code == 401 and attempt == 0:
                    self.tokens[repository] = self._token(
                        error.headers.get("WWW-Authenticate", ""), repository
                    )
                    continue
                if error.code == 404:
                    return None
                raise
        return None


def check(pins: list[dict], registry_for=lambda host: Registry(f"https://{host}")) -> list[str]:
    """One line per pin; lines starting with `FAIL` are pins that can no longer be pulled."""
    registries: dict[str, Registry] = {}
    lines = []
    for pin in pins:
        host, repository, tag = split_reference(pin["image"])
        registry = registries.setdefault(host, registry_for(host))
        try:
            served = registry.manifest_digest(repository, pin["digest"])
            current = registry.manifest_digest(repository, tag)
        except (OSError, RuntimeError, KeyError, ValueError) as error:
            lines.append(f"FAIL {pin['image']}: the registry could not be asked ({error})")
            continue
        if served is None:
            lines.append(f"FAIL {pin['image']}@{pin['digest']}: the registry does not serve this digest")
        elif current == pin["digest"]:
            lines.append(f"ok   {pin['image']}@{pin['digest']}: served, and the tag still names it")
        else:
            lines.append(f"ok   {pin['image']}@{pin['digest']}: served; the tag now names {current}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pins", type=Path, default=PINS)
    args = parser.parse_args(argv)
    lines = check(yaml.safe_load(args.pins.read_text())["pins"])
    print("\n".join(lines))
    return 1 if any(line.startswith("FAIL") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
