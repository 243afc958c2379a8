"""Start a training on Taskcluster from a terminal: the `train` action of the current branch's decision task.

    python -m translations_taskgraph.trigger_training --config FILE [--branch B | --revision SHA] [--dry-run]

The config is validated by the one schema first. Then: find the branch's decision task through the index
(the routes .taskcluster.yml gives decision tasks), read its `public/actions.json`, render the `train`
action's hookPayload with JSON-e (the input is the config), and trigger the hook.

`--dry-run` is offline: no root URL, no credentials, no request. It renders the actions.json a decision task
of this checkout would publish (the same taskgraph code, `render_actions_json`), renders the `train` hook's
payload from it, and prints the index paths it would look up, the hook, the payload and the tasks the action
would create (the preflight check's graph), triggering nothing. The decision task's id is unknown offline,
so the payload's taskGroupId is a placeholder; the hook id is that of this checkout at level 1 (a branch
pushed with other changes to .taskcluster.yml or the actions has another).

The real run needs TASKCLUSTER_ROOT_URL, and credentials (TASKCLUSTER_CLIENT_ID / TASKCLUSTER_ACCESS_TOKEN,
e.g. from `taskcluster signin`) with the scope to trigger the hook; both are checked before any request.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jsone
import requests
import yaml

import taskcluster
from translations_taskgraph.training_config import ConfigError, load_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TRUST_DOMAIN = "translations"
PROJECT = "translations"


class TriggerError(Exception):
    """Something the user can fix: printed as one line, exit status 1."""


def _git(*args) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def index_paths(branch: str | None, revision: str | None) -> list[str]:
    """Where .taskcluster.yml indexes decision tasks: a revision first, then the branch's latest push or PR."""
    paths = []
    if revision:
        paths += [
            f"{TRUST_DOMAIN}.v2.{PROJECT}.revision.{revision}.taskgraph.decision",
            f"{TRUST_DOMAIN}.v2.{PROJECT}-pr.revision.{revision}.taskgraph.decision",
        ]
    if branch:
        paths += [
            f"{TRUST_DOMAIN}.v2.{PROJECT}.branch.{branch}.latest.taskgraph.decision",
            f"{TRUST_DOMAIN}.v2.{PROJECT}-pr.branch.{branch}.latest.taskgraph.decision",
        ]
    return paths


def find_decision_task(index, paths: list[str]) -> tuple[str, str]:
    for path in paths:
        try:
            return index.findTask(path)["taskId"], path
        except taskcluster.exceptions.TaskclusterRestFailure as error:
            if error.status_code != 404:
                raise
    raise TriggerError(
        "no decision task found in the index at:\n  " + "\n  ".join(paths) + "\n"
        "push the branch (or open a pull request) and wait for its decision task"
    )


def fetch_artifact(queue, task_id: str, name: str) -> bytes:
    """An artifact of the task's latest run (the queue answers with a redirect to the storage)."""
    url = queue.buildUrl("getLatestArtifact", task_id, name)
    response = requests.get(url, timeout=60)
    if response.status_code == 404:
        raise TriggerError(f"the decision task {task_id} has no {name} (did it finish?)")
    response.raise_for_status()
    return response.content


def train_hook(actions: dict, decision_task_id: str, config: dict) -> tuple[str, str, dict]:
    """(hookGroupId, hookId, payload) of the `train` action for `config`."""
    matches = [a for a in actions["actions"] if a["name"] == "train" and a.get("kind") == "hook"]
    if not matches:
        raise TriggerError(f"the decision task {decision_task_id} offers no train action (an older branch?)")
    action = matches[0]
    context = {
        "input": config,
        "taskId": None,
        "taskGroupId": decision_task_id,
        **actions.get("variables", {}),
    }
    payload = jsone.render(action["hookPayload"], context)
    return action["hookGroupId"], action["hookId"], payload


# The decision task is not looked up offline: the dry run's payload carries this in its place.
OFFLINE_DECISION_TASK_ID = "<decision task id>"


def local_actions(config: dict, branch: str, revision: str | None) -> dict:
    """The actions.json a decision task of this checkout would publish (rendered offline)."""
    from taskgraph.actions.registry import render_actions_json  # noqa: PLC0415  (heavy: taskgraph)
    from taskgraph.config import load_graph_config  # noqa: PLC0415

    from translations_taskgraph.render import TASKCLUSTER_DIR, build_parameters  # noqa: PLC0415

    graph_config = load_graph_config(str(TASKCLUSTER_DIR))
    graph_config.register()
    overrides = {"tasks_for": "github-push", "head_ref": branch or "main"}
    if revision:
        overrides |= {"head_rev": revision, "base_rev": revision}
    parameters = build_parameters(config, **overrides)
    return render_actions_json(parameters, graph_config, OFFLINE_DECISION_TASK_ID)


def dry_run(config_path: Path, config: dict, branch: str, revision: str | None) -> None:
    """Prints what a real run would look up and submit; offline (no root URL, credentials or request)."""
    print("dry run (offline: no Taskcluster request is made; nothing is triggered)")
    print("a real run would look up the decision task in the index at:")
    for path in index_paths(branch, revision):
        print(f"  {path}")
    actions = local_actions(config, branch, revision)
    hook_group, hook_id, payload = train_hook(actions, OFFLINE_DECISION_TASK_ID, config)
    print(f"hook {hook_group}/{hook_id} would be triggered with:")
    print(json.dumps(payload, indent=2, sort_keys=True))
    print("tasks the action would create:")
    print(planned_tasks(config_path))


def planned_tasks(config_path: Path) -> str:
    """The tasks the action would create, from the offline preflight check."""
    from translations_taskgraph.preflight import run_preflight  # noqa: PLC0415  (heavy: taskgraph)

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            summary = run_preflight(config_path, Path(tmp))
        finally:
            sys.stdout = stdout
    lines = []
    for stage, labels in summary["by_stage"].items():
        lines.append(f"  {stage}: {', '.join(sorted(labels))}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="task train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config (YAML)")
    parser.add_argument("--branch", help="branch whose decision task to use (default: the current one)")
    parser.add_argument(
        "--revision", help="revision whose decision task to use (default: HEAD, then the branch)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the hook payload and the tasks; trigger nothing"
    )
    args = parser.parse_args(argv)
    try:
        load_training_config(args.config)  # refuse a wrong config before any request, naming the keys
        # The action's input is the config as written; the action fills in the defaults itself.
        config = yaml.safe_load(args.config.read_text())
        branch = args.branch or _git("rev-parse", "--abbrev-ref", "HEAD")
        revision = args.revision or (None if args.branch else _git("rev-parse", "HEAD"))
        if args.dry_run:
            dry_run(args.config, config, branch, revision)
            return 0
        if not os.environ.get("TASKCLUSTER_ROOT_URL"):
            raise TriggerError(
                "TASKCLUSTER_ROOT_URL is not set (the URL of the Taskcluster deployment to submit to); "
                "`--dry-run` needs none"
            )
        options = taskcluster.optionsFromEnvironment()
        if not options.get("credentials"):
            raise TriggerError(
                "no Taskcluster credentials (TASKCLUSTER_CLIENT_ID / TASKCLUSTER_ACCESS_TOKEN): "
                "run `eval $(taskcluster signin)` first; `--dry-run` needs none"
            )
        index, queue = taskcluster.Index(options), taskcluster.Queue(options)
        decision_task_id, path = find_decision_task(index, index_paths(branch, revision))
        print(f"decision task {decision_task_id} (index {path})")
        actions = json.loads(fetch_artifact(queue, decision_task_id, "public/actions.json"))
        hook_group, hook_id, payload = train_hook(actions, decision_task_id, config)
        result = taskcluster.Hooks(options).triggerHook(hook_group, hook_id, payload)
        action_task = result.get("status", {}).get("taskId") or result.get("taskId")
        print(f"triggered {hook_group}/{hook_id}: action task {action_task}")
        print(f"  {os.environ['TASKCLUSTER_ROOT_URL'].rstrip('/')}/tasks/{action_task}")
        return 0
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TriggerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (taskcluster.exceptions.TaskclusterFailure, requests.RequestException) as error:
        print(f"error: a Taskcluster request failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
