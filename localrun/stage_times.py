"""Each stage's actual seconds against preflight's estimate, for the report of a local run.

The engine writes the estimate for this machine to <run>/estimate.json before the tasks run; when the report
task starts, run_task sums the seconds of the tasks done so far per stage against it (every task but the report
and what runs beside it) and hands the file to the report step (STAGE_TIMES).
"""

import json
from pathlib import Path

from pipeline.common.io import write_json
from pipeline.common.stage_times import compare_with_run

ESTIMATE_FILE = "estimate.json"
STAGE_TIMES_FILE = "stage-times.json"


def write_stage_times(run_dir: Path, path: Path) -> bool:
    """Writes the comparison to `path`; False (and nothing written) when the run has no estimate."""
    from translations_taskgraph.preflight import read_run

    estimate_path = run_dir / ESTIMATE_FILE
    if not estimate_path.exists():
        return False
    estimate = json.loads(estimate_path.read_text())
    comparison = compare_with_run(estimate, read_run(run_dir))
    comparison["cores"] = estimate.get("cores")
    comparison["gpus"] = estimate.get("gpus", 0)
    write_json(path, comparison)
    return True
