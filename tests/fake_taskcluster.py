"""A fake Taskcluster API on 127.0.0.1 (stdlib ThreadingHTTPServer) for the offline Taskcluster tests.

It answers the calls the decision task, the actions, `task train`, the checkpoint publishing and the training
resume make: queue (create/get tasks, statuses, task-group listings, artifacts behind a 303 redirect like the
real queue, `object` artifacts created with the object service's upload and finish calls),
index (find one, find many), auth (current scopes) and hooks (trigger). Every request is recorded.
"""

import base64
import hashlib
import json
import re
import urllib.parse
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import http_server


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _timestamp(days=0):
    return _stamp(datetime.now(UTC) + timedelta(days=days))


class FakeTaskcluster:
    def __init__(self):
        self.tasks: dict[str, dict] = {}  # taskId -> definition
        self.states: dict[str, str] = {}  # taskId -> state
        self.runs: dict[str, int] = {}  # taskId -> number of runs
        self.artifacts: dict[tuple[str, int, str], bytes] = {}  # (taskId, runId, name) -> content
        self.index: dict[str, str] = {}  # namespace -> taskId
        self.scopes: list[str] = []
        self.created: list[str] = []  # taskIds created through PUT, in order
        self.hooks: list[dict] = []  # triggered hooks
        self.requests: list[tuple[str, str]] = []
        self.fail: set[str] = set()  # path prefixes answered with HTTP 500
        self.uploads: dict[str, dict] = {}  # uploadId -> object upload in progress (name, data, finished)
        self.run_seconds: dict[str, list[float]] = {}  # taskId -> each run's seconds
        self.root_url = None

    # -- seeding ------------------------------------------------------------------------------------
    def add_task(self, task_id, definition, state="completed", group=None, runs=1, seconds=None):
        """`seconds`: each run's time from started to resolved (the status then carries both)."""
        definition = {"taskGroupId": group or task_id, "dependencies": [], **definition}
        self.tasks[task_id] = definition
        self.states[task_id] = state
        self.runs[task_id] = len(seconds) if seconds else runs
        if seconds:
            self.run_seconds[task_id] = list(seconds)

    def add_artifact(self, task_id, name, content: bytes | str, run_id=None):
        if isinstance(content, str):
            content = content.encode()
        run_id = self.runs.get(task_id, 1) - 1 if run_id is None else run_id
        self.artifacts[(task_id, run_id, name)] = content

    # -- answers ------------------------------------------------------------------------------------
    def status(self, task_id):
        runs = [{"runId": i, "state": "completed"} for i in range(self.runs.get(task_id, 1))]
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for run, seconds in zip(runs, self.run_seconds.get(task_id, []), strict=False):
            run["started"], run["resolved"] = _stamp(start), _stamp(start + timedelta(seconds=seconds))
        return {
            "taskId": task_id,
            "taskGroupId": self.tasks[task_id].get("taskGroupId", task_id),
            "state": self.states.get(task_id, "pending"),
            "expires": _timestamp(days=300),
            "runs": runs,
        }

    def handle(self, method, path, body):
        self.requests.append((method, path))
        for prefix in self.fail:
            if path.startswith(prefix):
                return 500, {"code": "InternalServerError", "message": "fake failure"}, {}
        routes = [
            ("PUT", r"/api/queue/v1/task/([^/]+)", self._create_task),
            ("GET", r"/api/queue/v1/task/([^/]+)", self._get_task),
            ("GET", r"/api/queue/v1/task/([^/]+)/status", self._get_status),
            ("POST", r"/api/queue/v1/tasks/status", self._statuses),
            ("POST", r"/api/queue/v1/tasks", self._task_definitions),
            ("GET", r"/api/queue/v1/task-group/([^/]+)/list", self._list_group),
            ("GET", r"/api/queue/v1/task/([^/]+)/runs/(\d+)/artifacts", self._list_artifacts),
            ("GET", r"/api/queue/v1/task/([^/]+)/artifacts", self._list_latest_artifacts),
            ("GET", r"/api/queue/v1/task/([^/]+)/runs/(\d+)/artifacts/(.+)", self._get_artifact),
            ("GET", r"/api/queue/v1/task/([^/]+)/artifacts/(.+)", self._get_latest_artifact),
            ("GET", r"/storage/([^/]+)/(\d+)/(.+)", self._storage),
            ("POST", r"/api/queue/v1/task/([^/]+)/runs/(\d+)/artifacts/(.+)", self._create_artifact),
            ("PUT", r"/api/queue/v1/task/([^/]+)/runs/(\d+)/artifacts/(.+)", self._finish_artifact),
            ("PUT", r"/api/object/v1/upload/(.+)", self._create_upload),
            ("PUT", r"/object-data/([^/]+)", self._put_object_data),
            ("POST", r"/api/object/v1/finish-upload/(.+)", self._finish_upload),
            ("GET", r"/api/index/v1/task/(.+)", self._find_task),
            ("POST", r"/api/index/v1/tasks/indexes", self._find_tasks),
            ("GET", r"/api/auth/v1/scopes/current", self._current_scopes),
            ("POST", r"/api/hooks/v1/hooks/([^/]+)/(.+)/trigger", self._trigger_hook),
        ]
        path = urllib.parse.unquote(path.split("?", 1)[0])
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return handler(*match.groups(), body=body)
        return 404, {"code": "ResourceNotFound", "message": f"no route {method} {path}"}, {}

    def _create_task(self, task_id, body):
        self.tasks[task_id] = body
        self.states[task_id] = "pending"
        self.created.append(task_id)
        return 200, {"status": self.status(task_id)}, {}

    def _get_task(self, task_id, body):
        if task_id not in self.tasks:
            return 404, {"code": "ResourceNotFound", "message": f"task {task_id} not found"}, {}
        return 200, self.tasks[task_id], {}

    def _get_status(self, task_id, body):
        if task_id not in self.tasks:
            return 404, {"code": "ResourceNotFound", "message": f"task {task_id} not found"}, {}
        return 200, {"status": self.status(task_id)}, {}

    def _statuses(self, body):
        ids = [i for i in body["taskIds"] if i in self.tasks]
        return 200, {"statuses": [{"taskId": i, "status": self.status(i)} for i in ids]}, {}

    def _task_definitions(self, body):
        ids = [i for i in body["taskIds"] if i in self.tasks]
        return 200, {"tasks": [{"taskId": i, "task": self.tasks[i]} for i in ids]}, {}

    def _list_group(self, group_id, body):
        tasks = [
            {"status": self.status(task_id), "task": definition}
            for task_id, definition in self.tasks.items()
            if definition.get("taskGroupId") == group_id
        ]
        return 200, {"taskGroupId": group_id, "tasks": tasks}, {}

    def _list_artifacts(self, task_id, run_id, body):
        names = [name for (t, r, name) in self.artifacts if t == task_id and r == int(run_id)]
        return 200, {"artifacts": [{"name": name, "storageType": "reference"} for name in names]}, {}

    def _list_latest_artifacts(self, task_id, body):
        return self._list_artifacts(task_id, str(self.runs.get(task_id, 1) - 1), body)

    def _get_artifact(self, task_id, run_id, name, body):
        if (task_id, int(run_id), name) not in self.artifacts:
            return 404, {"code": "ResourceNotFound", "message": f"no artifact {name}"}, {}
        url = f"{self.root_url}/storage/{task_id}/{run_id}/{name}"
        return 303, {"storageType": "reference", "url": url}, {"Location": url}

    def _get_latest_artifact(self, task_id, name, body):
        return self._get_artifact(task_id, str(self.runs.get(task_id, 1) - 1), name, body)

    def _storage(self, task_id, run_id, name, body):
        if (task_id, int(run_id), name) not in self.artifacts:
            return 404, {"code": "ResourceNotFound", "message": f"no object {name}"}, {}
        return 200, self.artifacts[(task_id, int(run_id), name)], {}

    # -- object artifacts: createArtifact, the object service upload, finishArtifact ---------------------
    def _create_artifact(self, task_id, run_id, name, body):
        if body.get("storageType") != "object" or "expires" not in body:
            return 400, {"code": "InputValidationError", "message": f"unexpected artifact {body}"}, {}
        upload_id = f"upload{len(self.uploads):04d}"
        self.uploads[upload_id] = {"artifact": (task_id, int(run_id), name), "data": None, "finished": False}
        credentials = {"clientId": f"task-client/{task_id}/{run_id}", "accessToken": "fake"}
        answer = {"storageType": "object", "name": f"t/{task_id}/{run_id}/{name}", "projectId": "none",
                  "uploadId": upload_id, "expires": body["expires"], "credentials": credentials}  # fmt: skip
        return 200, answer, {}

    def _create_upload(self, name, body):
        upload = self.uploads.get(body.get("uploadId"))
        if upload is None:
            return 400, {"code": "InputValidationError", "message": "unknown uploadId"}, {}
        methods = body["proposedUploadMethods"]
        if "dataInline" in methods:
            upload["data"] = base64.b64decode(methods["dataInline"]["objectData"])
            method = {"dataInline": True}
        else:
            url = f"{self.root_url}/object-data/{body['uploadId']}"
            method = {"putUrl": {"url": url, "expires": body["expires"], "headers": {}}}
        return 200, {"projectId": body["projectId"], "uploadId": body["uploadId"],
                     "expires": body["expires"], "uploadMethod": method}, {}  # fmt: skip

    def _put_object_data(self, upload_id, body):
        self.uploads[upload_id]["data"] = body
        return 200, {}, {}

    def _finish_upload(self, name, body):
        upload = self.uploads[body["uploadId"]]
        if upload["data"] is None or hashlib.sha256(upload["data"]).hexdigest() != body["hashes"]["sha256"]:
            return 400, {"code": "InputValidationError", "message": "hashes do not match the data"}, {}
        upload["finished"] = True
        return 200, {}, {}

    def _finish_artifact(self, task_id, run_id, name, body):
        upload = self.uploads.get(body.get("uploadId"))
        if upload is None or not upload["finished"] or upload["artifact"] != (task_id, int(run_id), name):
            return 409, {"code": "RequestConflict", "message": "the upload is not finished"}, {}
        self.artifacts[upload["artifact"]] = upload["data"]
        return 200, {}, {}

    def _find_task(self, namespace, body):
        if namespace not in self.index:
            return 404, {"code": "ResourceNotFound", "message": f"{namespace} not indexed"}, {}
        return (
            200,
            {
                "namespace": namespace,
                "taskId": self.index[namespace],
                "rank": 0,
                "data": {},
                "expires": _timestamp(days=300),
            },
            {},
        )

    def _find_tasks(self, body):
        found = [{"namespace": ns, "taskId": self.index[ns]} for ns in body["indexes"] if ns in self.index]
        return 200, {"tasks": found}, {}

    def _current_scopes(self, body):
        return 200, {"scopes": self.scopes}, {}

    def _trigger_hook(self, group, hook, body):
        self.hooks.append({"hookGroupId": group, "hookId": hook, "payload": body})
        return 200, {"status": {"taskId": "ActionTaskId0000000000"}}, {}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTaskcluster

    def _answer(self, method):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self._read_chunked()  # aiohttp streams object uploads
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw  # object data PUT to an upload URL
        status, answer, headers = self.fake.handle(method, self.path, body)
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/octet-stream" if isinstance(answer, bytes) else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_chunked(self) -> bytes:
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def do_PUT(self):
        self._answer("PUT")

    def log_message(self, *args):
        pass


@contextmanager
def serve(fake: FakeTaskcluster | None = None):
    """Runs the fake API on a free port of 127.0.0.1; yields the FakeTaskcluster with its root_url set."""
    fake = fake or FakeTaskcluster()
    handler = type("Handler", (_Handler,), {"fake": fake})
    with http_server(handler) as url:
        fake.root_url = url
        yield fake


def clear_taskgraph_state():
    """taskgraph caches the root URL and clients, and the test mode of actions is module-global."""
    import taskgraph.create
    import taskgraph.util.taskcluster as tc_util

    tc_util.get_root_url.cache_clear()
    tc_util.get_taskcluster_client.cache_clear()
    tc_util._task_definitions_cache.cache.clear()
    tc_util.testing = False
    taskgraph.create.testing = False


@pytest.fixture(name="fake_tc")
def fake_tc_fixture(monkeypatch):
    """The fake API, with TASKCLUSTER_ROOT_URL pointing at it and no credentials or proxy in the way."""
    with serve() as fake:
        monkeypatch.setenv("TASKCLUSTER_ROOT_URL", fake.root_url)
        for name in (
            "TASKCLUSTER_PROXY_URL",
            "TASKCLUSTER_CLIENT_ID",
            "TASKCLUSTER_ACCESS_TOKEN",
            "TASKCLUSTER_CERTIFICATE",
        ):
            monkeypatch.delenv(name, raising=False)
        clear_taskgraph_state()
        yield fake
        clear_taskgraph_state()
