"""Write taskcluster/requirements.txt, what run-task installs (with hashes) in the decision task, from poetry.lock.

    python -m translations_taskgraph.decision_requirements [--check]

The decision task renders the graph with exactly the taskgraph, taskcluster and voluptuous versions the
tests run with (the lock pins them), so the graph tests cannot go stale against what runs on Taskcluster.
"""

import re
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LOCK = REPO_ROOT / "poetry.lock"
REQUIREMENTS = REPO_ROOT / "taskcluster" / "requirements.txt"
# What the decision task and the actions import; their dependencies come along.
ROOTS = ["taskcluster-taskgraph", "taskcluster", "voluptuous", "pyyaml", "msgspec"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def render(lock_path: Path = LOCK) -> str:
    packages = {_canonical(p["name"]): p for p in tomllib.loads(lock_path.read_text())["package"]}
    markers: dict[str, str | None] = {}
    pending = [(name, None) for name in ROOTS]
    while pending:
        name, marker = pending.pop()
        name = _canonical(name)
        if name in markers and (markers[name] is None or markers[name] == marker):
            continue
        # A package needed unconditionally anywhere is needed unconditionally.
        markers[name] = None if name in markers or marker is None else marker
        for dep, spec in packages[name].get("dependencies", {}).items():
            dep_marker = spec.get("markers") if isinstance(spec, dict) else None
            if isinstance(spec, dict) and spec.get("optional"):
                continue
            pending.append((dep, dep_marker))
    lines = [
        "# Generated from poetry.lock by `python -m translations_taskgraph.decision_requirements`: what run-task",
        "# installs in the decision task (.taskcluster.yml). Do not edit; regenerate after changing the lock.",
    ]
    for name in sorted(markers):
        package = packages[name]
        marker = f" ; {markers[name]}" if markers[name] else ""
        hashes = sorted(f["hash"] for f in package["files"])
        lines.append(f"{name}=={package['version']}{marker} \\")
        lines.extend(f"    --hash={h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        if not REQUIREMENTS.exists() or REQUIREMENTS.read_text() != text:
            print(
                f"{REQUIREMENTS} is out of date with poetry.lock: run python -m translations_taskgraph.decision_requirements"
            )
            return 1
        return 0
    REQUIREMENTS.write_text(text)
    print(f"wrote {REQUIREMENTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
