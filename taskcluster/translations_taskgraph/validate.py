"""Render the Taskcluster graphs of training configs offline and fail on any invalid config or graph.

    python -m translations_taskgraph.validate [CONFIG ...]

Without arguments: the CI config and every example in configs/. Each config is validated by the one
schema, then taskgraph renders its full and target graphs (with taskgraph's own verifications).
"""

import sys
import time
from pathlib import Path

from translations_taskgraph.render import REPO_ROOT, TASKCLUSTER_DIR, generator_for
from translations_taskgraph.training_config import ConfigError, load_training_config

DEFAULT_CONFIGS = [
    TASKCLUSTER_DIR / "configs" / "config.ci.yml",
    *sorted((REPO_ROOT / "configs").glob("*.yml")),
]


def main(argv=None) -> int:
    paths = [Path(p).resolve() for p in (argv if argv is not None else sys.argv[1:])] or DEFAULT_CONFIGS
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
            f"ok   {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}: "
            f"{len(full.tasks)} tasks, {edges} edges in the full graph; {len(target.tasks)} in the target graph "
            f"(stage {config['target-stage']}); rendered in {time.time() - start:.2f}s"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
