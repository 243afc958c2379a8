"""Loads the reference system's training configs (tests/data/reference-configs/, with their provenance) with this
project's schema, the way a user who moves here would: how many are accepted, and what refuses the others.

    task check-reference-configs [-- --verbose] [-- --render]
"""

import argparse
import collections
import re
import sys
from pathlib import Path

from translations_taskgraph.training_config import ConfigError, load_training_config

FOLDER = Path(__file__).resolve().parents[2] / "tests" / "data" / "reference-configs"
NOT_SUPPORTED = re.compile(r"not supported yet: ([^(:]+)")


def config_files() -> list[Path]:
    return sorted(p for p in FOLDER.rglob("*.y*ml"))


def blockers(error: ConfigError) -> set[str]:
    """What refused a config: each unsupported feature, or the error line itself."""
    lines = str(error).splitlines()
    found = set()
    for line in lines[1:] or lines:
        match = NOT_SUPPORTED.search(line)
        found.add(f"not supported yet: {match.group(1).strip()}" if match else line.strip())
    return found


def check() -> tuple[list[Path], dict[Path, set[str]]]:
    """(accepted files, {refused file: its blockers})."""
    import logging

    schema_logger = logging.getLogger("training-config")
    level = schema_logger.level
    schema_logger.setLevel(logging.ERROR)  # the schema's warnings, one per config
    accepted, refused = [], {}
    try:
        for path in config_files():
            try:
                load_training_config(path)
                accepted.append(path)
            except ConfigError as error:
                refused[path] = blockers(error)
    finally:
        schema_logger.setLevel(level)
    return accepted, refused


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list every refused config with its blockers")
    parser.add_argument(
        "--render",
        action="store_true",
        help="also render every accepted config's Taskcluster graph and local plan (seconds each); fails on any error",
    )
    args = parser.parse_args(argv)
    accepted, refused = check()
    total = len(accepted) + len(refused)
    print(f"{len(accepted)} of {total} reference configs accepted")
    counts = collections.Counter(blocker for found in refused.values() for blocker in found)
    sole = collections.Counter(next(iter(found)) for found in refused.values() if len(found) == 1)
    print("what refuses the others (configs; alone in how many):")
    for blocker, count in counts.most_common():
        print(f"  {count:4d} ({sole.get(blocker, 0):3d} alone)  {blocker[:150]}")
    if args.verbose:
        for path, found in refused.items():
            print(f"{path.relative_to(FOLDER)}: {'; '.join(sorted(found))[:300]}")
    if args.render:
        return render_all(accepted)
    return 0


def render_all(accepted: list[Path]) -> int:
    """Renders each accepted config as the local engine does (the full Taskcluster graph, then the plan)."""
    import logging

    from localrun.__main__ import render

    logging.getLogger("training-config").setLevel(logging.ERROR)
    failed = 0
    for path in accepted:
        try:
            _, plan, _ = render(load_training_config(path))
            print(f"ok   {path.relative_to(FOLDER)}: {len(plan['order'])} tasks")
        except Exception as error:  # noqa: BLE001 - every config's failure is reported, then the exit status
            failed += 1
            print(f"FAIL {path.relative_to(FOLDER)}: {error}")
    print(f"{len(accepted) - failed} of {len(accepted)} accepted configs render")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
