"""Render the Taskcluster graphs of training configs offline and fail on any invalid config or graph.

    python -m translations_taskgraph.validate [CONFIG ...]
    python -m translations_taskgraph.validate --schema-only CONFIG_OR_FOLDER ...

Without arguments: the CI config and every example in configs/. Each config is validated by the one
schema, then taskgraph renders its full and target graphs (with taskgraph's own verifications).

`--schema-only` checks configs against the schema without rendering, e.g. a folder of another pipeline's
configs, and sums up how many are valid, how many fail only on settings not supported yet, and which fail
for other reasons.
"""

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from translations_taskgraph.render import REPO_ROOT, TASKCLUSTER_DIR, generator_for
from translations_taskgraph.training_config import ConfigError, load_training_config

DEFAULT_CONFIGS = [
    TASKCLUSTER_DIR / "configs" / "config.ci.yml",
    *sorted((REPO_ROOT / "configs").glob("*.yml")),
]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def render(paths: list[Path]) -> int:
    failures = 0
    for path in paths:
        start = time.time()
        try:
            config = load_training_config(path)
            generator = generator_for(config)
            full = generator.full_task_graph
            target = generator.target_task_graph
        except ConfigError as error:
            print(f"FAIL {path}: {error}")
            failures += 1
            continue
        except Exception as error:  # taskgraph raises plain exceptions for invalid graphs
            print(f"FAIL {path}: the task graph does not render: {type(error).__name__}: {error}")
            failures += 1
            continue
        edges = sum(len(task.dependencies) for task in full.tasks.values())
        print(
            f"ok   {_shown(path)}: "
            f"{len(full.tasks)} tasks, {edges} edges in the full graph; {len(target.tasks)} in the target graph "
            f"(stage {config['target-stage']}); rendered in {time.time() - start:.2f}s"
        )
    return 1 if failures else 0


def schema_only(paths: list[Path]) -> int:
    files = sorted(
        {f for p in paths for f in ([p] if p.is_file() else [*p.rglob("*.yml"), *p.rglob("*.yaml")])}
    )
    valid, only_unsupported, other = [], [], []
    unsupported = Counter()
    for path in files:
        try:
            load_training_config(path)
            valid.append(path)
        except ConfigError as error:
            lines = [line.strip() for line in str(error).splitlines()[1:]] or [str(error)]
            for line in lines:
                if "not supported yet" in line:
                    unsupported[line.split(" (")[0]] += 1
            wrong = [line for line in lines if "not supported yet" not in line]
            (other if wrong else only_unsupported).append((path, wrong))
    for path, wrong in other:
        print(f"FAIL {_shown(path)}:\n    " + "\n    ".join(wrong))
    print(f"\nnot supported yet, by setting (configs using it out of {len(files)}):")
    for line, count in unsupported.most_common():
        print(f"  {count:4d}  {line}")
    print(
        f"\n{len(files)} configs: {len(valid)} valid, {len(only_unsupported)} fail only on settings not "
        f"supported yet, {len(other)} fail for other reasons"
    )
    return 1 if other else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="validate", description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="config files (folders with --schema-only)")
    parser.add_argument("--schema-only", action="store_true", help="check against the schema, render nothing")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    paths = [p.resolve() for p in args.configs] or DEFAULT_CONFIGS
    return schema_only(paths) if args.schema_only else render(paths)


if __name__ == "__main__":
    sys.exit(main())
