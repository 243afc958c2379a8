""".taskcluster.yml rendered with JSON-e for every trigger, its command parsed with taskgraph's own parser, and
the decision task it starts run against the fake Taskcluster API (which tasks a push and a pull request get)."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import jsone
import pytest
import slugid
import taskgraph.decision
import yaml
from fake_taskcluster import fake_tc_fixture  # noqa: F401  (the fake_tc fixture)
from taskgraph.main import create_parser
from taskgraph.target_tasks import get_method
from taskgraph.util.vcs import get_repository

from translations_taskgraph import decision_requirements
from translations_taskgraph.parameters import TARGET_TASKS_BY_TRIGGER
from translations_taskgraph.render import TASKCLUSTER_DIR, generator_for
from translations_taskgraph.target_tasks import runs_for, uses_gpu
from translations_taskgraph.training_config import validate_training_config

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO_URL = "https://github.com/translations-pipeline/translations"
TCYML = yaml.safe_load((REPO_ROOT / ".taskcluster.yml").read_text())


def git(*args):
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


HEAD = git("rev-parse", "HEAD")
BASE = git("rev-parse", "HEAD~1")
REPOSITORY = {"html_url": REPO_URL, "name": "translations", "full_name": "translations-pipeline/translations"}


def push(ref="refs/heads/main", message="Add a feature"):
    return "github-push", {
        "ref": ref,
        "before": BASE,
        "after": HEAD,
        "repository": REPOSITORY,
        "pusher": {"email": "dev@example.org"},
        "head_commit": {"message": message} if message is not None else None,
    }


def pull_request(action="opened", title="Add a feature", body="It does things.", untrusted=False):
    return "github-pull-request" + ("-untrusted" if untrusted else ""), {
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "title": title,
            "body": body,
            "user": {"login": "contributor"},
            "head": {
                "ref": "feature",
                "sha": HEAD,
                "repo": {"html_url": "https://github.com/contributor/translations"},
            },
            "base": {"ref": "main", "sha": BASE, "repo": REPOSITORY},
        },
    }


def render(tasks_for, event=None, **context):
    context = {
        "tasks_for": tasks_for,
        "as_slugid": lambda name: slugid.nice(),
        "now": "2026-11-26T08:00:00.000Z",
        "ownTaskId": slugid.nice(),
        **({"event": event} if event is not None else {}),
        **context,
    }
    return jsone.render(TCYML, context)["tasks"]


CRON = {
    "repository": {"url": REPO_URL, "project": "translations", "level": "1"},
    "push": {"branch": "main", "revision": HEAD, "owner": "cron@example.org", "pushlog_id": "0"},
    "cron": {
        "job_name": "nightly",
        "job_symbol": "N",
        "task_id": "CronTask00000000000000",
        "quoted_args": "",
    },
}


def action_context(config=None):
    """The context the train hook renders .taskcluster.yml with: the action's hookPayload plus the trigger."""
    return {
        "action": {
            "name": "train",
            "title": "Train",
            "description": "Train a model",
            "taskGroupId": "GroupId000000000000000",
            "cb_name": "train",
            "symbol": "train",
            "action_perm": "train",
        },
        "repository": {"url": REPO_URL, "project": "translations", "level": "1", "base_url": REPO_URL},
        "push": {"branch": "main", "revision": HEAD, "owner": "dev@example.org", "pushlog_id": "0"},
        "input": config or {"experiment": {"name": "x"}},
        "taskId": None,
        "taskGroupId": "GroupId000000000000000",
        "clientId": "mozilla-auth0/ad|dev",
    }


def taskgraph_args(task):
    """The `taskgraph ...` words of the decision command, parsed by taskgraph's own parser."""
    script = task["payload"]["command"][-1]
    words = shlex.split(script.split("&&")[-1])
    assert words[0] == "taskgraph"
    return create_parser().parse_args(words[1:])


def test_push_to_main_creates_one_decision_task():
    (task,) = render(*push())
    assert task["scopes"] == ["assume:repo:github.com/translations-pipeline/translations:branch:main"]
    assert f"tc-treeherder.v2.translations.{HEAD}" in task["routes"]
    assert f"index.translations.v2.translations.revision.{HEAD}.taskgraph.decision" in task["routes"]
    assert "index.translations.v2.translations.branch.main.latest.taskgraph.decision" in task["routes"]
    assert task["taskGroupId"] == task["taskId"]
    assert task["tags"]["kind"] == "decision-task"
    args = taskgraph_args(task)
    assert args.tasks_for == "github-push"
    assert (args.head_rev, args.base_rev, args.head_ref) == (HEAD, BASE, "refs/heads/main")
    assert args.level == "1" and args.project == "translations"
    assert task["payload"]["env"]["TRANSLATIONS_PIP_REQUIREMENTS"] == "taskcluster/requirements.txt"
    # taskgraph runs from the checkout, which is the project's package (translations_taskgraph imports pipeline).
    checkout = next(
        a.split("=", 1)[1] for a in task["payload"]["command"] if a.startswith("--translations-checkout=")
    )
    assert task["payload"]["env"]["PYTHONPATH"] == checkout


def test_release_branch_pushes_run_and_other_branches_do_not():
    assert len(render(*push("refs/heads/release-1.0"))) == 1
    assert render(*push("refs/heads/feature")) == []
    assert render(*push("refs/tags/v1")) == []


@pytest.mark.parametrize("action", ["opened", "reopened", "synchronize"])
def test_pull_request_creates_one_decision_task(action):
    (task,) = render(*pull_request(action))
    assert task["scopes"] == ["assume:repo:github.com/translations-pipeline/translations:pull-request"]
    assert not any(route.startswith("tc-treeherder") for route in task["routes"])
    assert "checks" in task["routes"]
    assert task["payload"]["env"]["TRANSLATIONS_PULL_REQUEST_NUMBER"] == "42"
    assert (
        task["payload"]["env"]["TRANSLATIONS_HEAD_REPOSITORY"]
        == "https://github.com/contributor/translations"
    )
    args = taskgraph_args(task)
    assert args.tasks_for == "github-pull-request"
    assert args.head_ref == "feature" and args.base_ref == "main"


def test_untrusted_pull_request_gets_the_untrusted_scopes():
    (task,) = render(*pull_request(untrusted=True))
    assert task["scopes"] == [
        "assume:repo:github.com/translations-pipeline/translations:pull-request-untrusted"
    ]
    assert taskgraph_args(task).tasks_for == "github-pull-request-untrusted"


@pytest.mark.parametrize("action", ["closed", "edited", "labeled"])
def test_other_pull_request_events_create_nothing(action):
    assert render(*pull_request(action)) == []


@pytest.mark.parametrize(
    "title,body",
    [
        ("[skip ci] Fix a typo", "body"),
        ("Fix a typo", "Small change.\n\n[skip ci]"),
        ("Fix a typo [CI SKIP]", None),
        ("Fix a typo", "[Skip CI] please"),
    ],
)
def test_skip_ci_in_a_pull_request_creates_nothing(title, body):
    assert render(*pull_request(title=title, body=body)) == []


def test_a_null_pull_request_body_is_fine():
    assert len(render(*pull_request(body=None))) == 1


@pytest.mark.parametrize("message", ["Fix [skip ci]", "[ci skip] docs"])
def test_skip_ci_in_the_head_commit_of_a_push_creates_nothing(message):
    assert render(*push(message=message)) == []


def test_a_push_without_a_head_commit_still_runs():
    assert len(render(*push(message=None))) == 1


def test_cron_creates_a_decision_task():
    (task,) = render("cron", **CRON)
    assert task["scopes"] == ["assume:repo:github.com/translations-pipeline/translations:cron:nightly"]
    assert task["tags"]["kind"] == "cron-task"
    assert "index.translations.v2.translations.latest.taskgraph.decision-nightly" in task["routes"]
    args = taskgraph_args(task)
    assert args.tasks_for == "cron" and args.head_rev == HEAD


def test_action_runs_the_callback_with_its_input():
    config = yaml.safe_load((REPO_ROOT / "configs/tiny.yml").read_text())
    (task,) = render("action", **action_context(config))
    assert task["scopes"] == ["assume:repo:github.com/translations-pipeline/translations:action:train"]
    assert task["taskGroupId"] == "GroupId000000000000000"
    assert "taskId" not in task
    assert task["tags"]["kind"] == "action-callback"
    env = task["payload"]["env"]
    assert json.loads(env["ACTION_INPUT"]) == config
    assert env["ACTION_CALLBACK"] == "train"
    assert env["ACTION_TASK_GROUP_ID"] == "GroupId000000000000000"
    assert json.loads(env["ACTION_TASK_ID"]) is None
    assert task["payload"]["command"][-1].strip().endswith("taskgraph action-callback")
    args = create_parser().parse_args(["action-callback"])
    assert args.command.__name__ == "action_callback"


def test_decision_requirements_match_the_lock():
    assert decision_requirements.REQUIREMENTS.read_text() == decision_requirements.render()
    version = re.search(r"^taskcluster-taskgraph==(\S+)", decision_requirements.render(), re.M).group(1)
    (task,) = render(*push())
    # The decision image carries the same taskgraph as the lock.
    assert task["payload"]["image"].endswith(f":decision-v{version}")


def run_decision(task, tmp_path, monkeypatch):
    """Run the decision command of a rendered task in-process, against the fake API."""
    args = taskgraph_args(task)
    options = vars(args)
    options["root"] = str(TASKCLUSTER_DIR)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASK_ID", task["taskId"])
    monkeypatch.setattr(taskgraph.decision, "ARTIFACTS_DIR", tmp_path / "artifacts")
    monkeypatch.setattr(taskgraph.decision, "get_repository", lambda _path: get_repository(str(REPO_ROOT)))
    args.command(options)
    return json.loads((tmp_path / "artifacts" / "task-graph.json").read_text())


def created_labels(fake):
    return {fake.tasks[task_id]["metadata"]["name"] for task_id in fake.created}


def test_a_push_builds_the_images_and_runs_the_checks(fake_tc, tmp_path, monkeypatch):
    (task,) = render(*push())
    run_decision(task, tmp_path, monkeypatch)
    assert created_labels(fake_tc) == {
        "docker-image-base",
        "docker-image-train",
        "tests-lint",
        "tests-unit",
    }
    parameters = yaml.safe_load((tmp_path / "artifacts" / "parameters.yml").read_text())
    assert parameters["target_tasks_method"] == "push-ci"


def test_a_pull_request_also_runs_the_ci_training_pipeline(fake_tc, tmp_path, monkeypatch):
    (task,) = render(*pull_request())
    run_decision(task, tmp_path, monkeypatch)
    full = json.loads((tmp_path / "artifacts" / "full-task-graph.json").read_text())
    labels = created_labels(fake_tc)
    pipeline = {label for label, t in full.items() if "stage" in t["attributes"]}
    assert labels == pipeline | {
        "docker-image-base",
        "docker-image-train",
        "tests-lint",
        "tests-unit",
    }
    ci = yaml.safe_load((REPO_ROOT / "taskcluster/configs/config.ci.yml").read_text())
    assert f"train-teacher-en-fr-{ci['experiment']['teacher-ensemble']}" in labels
    # On the production worker types, with the pull request's own scopes and cache routes.
    worker_types = {fake_tc.tasks[task_id]["workerType"] for task_id in fake_tc.created}
    assert {"b-linux-large", "b-linux-gpu", "b-linux-gpu-4"} <= worker_types
    assert all(fake_tc.tasks[task_id]["schedulerId"] == "translations-level-1" for task_id in fake_tc.created)


# --- pull requests from forks (untrusted): no GPU task, like the train action ---


def test_pull_requests_from_forks_are_untrusted():
    """Taskcluster's GitHub service renders a fork's pull request (from anyone without write access) as
    `github-pull-request-untrusted` under this policy; the decision passes that trigger on."""
    assert TCYML["policy"]["pullRequests"] == "public_restricted"
    (task,) = render(*pull_request(untrusted=True))
    assert taskgraph_args(task).tasks_for == "github-pull-request-untrusted"


def test_a_fork_pull_request_schedules_only_lint_and_the_tests(fake_tc, tmp_path, monkeypatch):
    (task,) = render(*pull_request(untrusted=True))
    run_decision(task, tmp_path, monkeypatch)
    assert created_labels(fake_tc) == {"docker-image-base", "tests-lint", "tests-unit"}
    worker_types = {fake_tc.tasks[task_id]["workerType"] for task_id in fake_tc.created}
    assert not any("gpu" in worker_type for worker_type in worker_types)
    parameters = yaml.safe_load((tmp_path / "artifacts" / "parameters.yml").read_text())
    assert parameters["tasks_for"] == "github-pull-request-untrusted"
    assert parameters["target_tasks_method"] == "pr-ci"


@pytest.fixture(scope="module", params=["taskcluster/configs/config.ci.yml", "configs/en-fr.full.yml"])
def full_graph(request):
    config = validate_training_config(yaml.safe_load((REPO_ROOT / request.param).read_text()))
    return generator_for(config).full_task_graph


@pytest.mark.parametrize("untrusted", [False, True], ids=["same-repository", "fork"])
def test_the_target_tasks_of_a_pull_request(full_graph, untrusted):
    """The target tasks (and what they depend on) that a pull request's decision task selects, for the CI
    config and a production config: a fork's has no GPU task; a same-repository one trains on GPUs."""
    (task,) = render(*pull_request(untrusted=untrusted))
    tasks_for = taskgraph_args(task).tasks_for
    method = TARGET_TASKS_BY_TRIGGER[tasks_for]
    targets = get_method(method)(full_graph, {"tasks_for": tasks_for}, None)
    closure = full_graph.graph.transitive_closure(set(targets))
    gpu = {label for label in closure.nodes if uses_gpu(full_graph.tasks[label])}
    if untrusted:
        assert set(targets) == {"tests-lint", "tests-unit"}
        assert closure.nodes == {"tests-lint", "tests-unit", "docker-image-base"}
        assert gpu == set()
    else:
        assert {"tests-lint", "tests-unit"} <= set(targets)
        assert any(label.startswith("train-teacher-") for label in gpu)
        assert any(full_graph.tasks[label].task["workerType"] == "b-linux-gpu" for label in gpu)


def test_a_gpu_task_cannot_opt_in_for_a_fork():
    full = generator_for(validate_training_config(yaml.safe_load(
        (REPO_ROOT / "taskcluster/configs/config.ci.yml").read_text()))).full_task_graph  # fmt: skip
    teacher = next(t for label, t in full.tasks.items() if label.startswith("train-teacher-"))
    teacher.attributes["run_on_tasks_for"] = ["all", "github-pull-request-untrusted"]
    assert uses_gpu(teacher)
    assert not runs_for(teacher, "github-pull-request-untrusted")
    assert runs_for(teacher, "github-pull-request")
    lint = full.tasks["tests-lint"]
    assert runs_for(lint, "github-pull-request-untrusted") and not uses_gpu(lint)
