"""An IBM Cloud Code Engine API (v2) test server and its fixture. It is a test server, NOT Code Engine.

It answers the part of the public Code Engine REST API v2 the ``code_engine`` backend uses,
on 127.0.0.1:

* ``POST /identity/token`` (IAM: ``grant_type=urn:ibm:params:oauth:grant-type:apikey``) gives
  bearer tokens for the registered API keys; every ``/v2`` request needs one (401 otherwise,
  403 for another key's project);
* ``/v2/projects/{id}`` GET; ``/v2/projects/{id}/secrets`` POST (``format: generic``) and
  ``.../secrets/{name}`` GET, DELETE;
* ``/v2/projects/{id}/job_runs`` POST (``image_reference``, ``scale_array_spec``,
  ``scale_cpu_limit``/``scale_memory_limit`` checked against Code Engine's memory and CPU
  combinations, ``scale_max_execution_time``, ``scale_retry_limit``, ``run_env_variables`` of
  type ``literal`` and ``secret_key_reference``, ``run_volume_mounts`` of type ``secret``), GET
  list (``limit``/``start`` pages, ``next.start``), and ``.../job_runs/{name}`` GET, DELETE;
* errors as ``{"errors": [{"code", "message"}], "status_code", "trace"}``.

Each array index is an instance: a subprocess of the runtime image's command
(``python -m airflow_pywren.executor.worker``) with ``JOB_INDEX``, ``JOB_ARRAY_SIZE``,
``CE_JOBRUN``, the run's environment, and its secret mounts written to a per-instance
directory; at most ``max_instances`` run at once. It never pulls images: an unknown image
leaves its indices pending with ``last_failure_reason`` ``ImagePullBackOff``. It enforces the
memory limit (``OOMKilled``) and ``scale_max_execution_time`` (``DeadlineExceeded``); a
non-zero exit is ``ContainerExitedCode<N>``. ``status_details`` carries the index lists and
``indices_details`` as Code Engine's API documents them.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.services.kubernetes import REPO_ROOT, TEST_RUNTIME, index_ranges, now_text
from tests.services.processes import die_with_parent
from tests.services.routing import APIRequestHandler, Route, normalized_path, resolve

COMBINATIONS = {
    "0.125": ("0.25G", "0.5G", "1G"),
    "0.25": ("0.5G", "1G", "2G"),
    "0.5": ("1G", "2G", "4G"),
    "1": ("2G", "4G", "8G"),
    "2": ("4G", "8G", "16G"),
    "4": ("8G", "16G", "32G"),
    "6": ("12G", "24G", "48G"),
    "8": ("16G", "32G"),
    "12": ("24G", "48G"),
}
MEMORY_POLL = 0.05
TICK = 0.05
METHODS = ("GET", "POST", "DELETE")
PROJECT = "/v2/projects/{project_id}"
# Each route's target is the resource it addresses ("" for any other path of a project: 404
# once the token may use the project).
ROUTES: list[Route[str]] = [
    Route(METHODS, PROJECT, "project"),
    *(
        Route(METHODS, pattern, resource)
        for resource in ("secrets", "job_runs")
        for pattern in (f"{PROJECT}/{resource}", f"{PROJECT}/{resource}/{{name}}")
    ),
    Route(METHODS, f"{PROJECT}/{{resource*}}", ""),
]


class APIError(Exception):
    def __init__(self, code: int, message: str, error_code: str = "bad_request") -> None:
        super().__init__(message)
        self.code, self.message, self.error_code = code, message, error_code


def parse_indices(spec: str) -> list[int]:
    found: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise APIError(400, f"Invalid value for 'scale_array_spec': {spec!r}", "invalid_value")
        found.update(range(int(first), int(last or first) + 1))
    if len(found) > 1000:
        raise APIError(400, "'scale_array_spec' must not have more than 1000 indices", "invalid_value")
    return sorted(found)


class Instance:
    """One array index of a job run, and its process."""

    def __init__(self, server: CodeEngineTestServer, run: dict[str, Any], index: int) -> None:
        self.server, self.run, self.index = server, run, index
        self.status = "pending"
        self.reason = ""
        self.process: subprocess.Popen | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.killed: str | None = None

    def start(self) -> None:
        run = self.run
        if run["image_reference"] not in self.server.images:
            self.reason = "ImagePullBackOff"
            self.started = time.time()
            return
        directory = self.server.workdir / f"{run['name']}-{self.index}-{secrets.token_hex(2)}"
        directory.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYWREN_", "JOB_", "CE_"))}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
                "HOME": str(directory),
                "JOB_INDEX": str(self.index),
                "JOB_ARRAY_SIZE": str(len(run["_indices"])),
                "CE_JOBRUN": run["name"],
                "CE_SUBDOMAIN": "test",
                "CE_DOMAIN": "example",
            }
        )
        mounts: dict[str, Path] = {}
        for mount in run.get("run_volume_mounts") or []:
            secret = self.server.secrets.get((run["project_id"], mount["reference"]))
            target = directory / "mounts" / mount.get("name", mount["reference"])
            target.mkdir(parents=True)
            for key, value in ((secret or {}).get("data") or {}).items():
                (target / key).write_text(value)
            mounts[mount["mount_path"].rstrip("/")] = target
        for var in run.get("run_env_variables") or []:
            if var.get("type") == "literal":
                value = str(var.get("value", ""))
                for path, target in mounts.items():
                    if value == path or value.startswith(path + "/"):
                        value = str(target) + value[len(path) :]
                env[var["name"]] = value
            elif var.get("type") == "secret_key_reference":
                secret = self.server.secrets.get((run["project_id"], var["reference"])) or {}
                env[var["name"]] = str((secret.get("data") or {}).get(var["key"], ""))
        with open(directory / "log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "airflow_pywren.executor.worker"],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.server.instances_started += 1
        self.started = time.time()
        self.status = "running"
        threading.Thread(target=self._watch_memory, daemon=True).start()

    def _watch_memory(self) -> None:
        limit = float(self.run["scale_memory_limit"].rstrip("G")) * 1024**3
        page = os.sysconf("SC_PAGE_SIZE")
        while self.process is not None and self.process.poll() is None:
            try:
                with open(f"/proc/{self.process.pid}/statm") as statm:
                    if int(statm.read().split()[1]) * page > limit:
                        self.kill("OOMKilled")
                        return
            except (OSError, ValueError, IndexError):
                return
            time.sleep(MEMORY_POLL)

    def kill(self, why: str) -> None:
        self.killed = self.killed or why
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def poll(self) -> None:
        if self.status in ("succeeded", "failed") or self.started is None:
            return
        if time.time() - self.started > float(self.run["scale_max_execution_time"]):
            self.kill("DeadlineExceeded")
            if self.process is None:
                self._end("failed", "DeadlineExceeded")
                return
        if self.process is None:
            return
        code = self.process.poll()
        if code is None:
            return
        if self.killed:
            self._end("failed", self.killed)
        elif code == 0:
            self._end("succeeded", "")
        else:
            self._end("failed", f"ContainerExitedCode{code if code > 0 else 128 - code}")

    def _end(self, status: str, reason: str) -> None:
        self.status, self.reason, self.finished = status, reason, time.time()

    def details(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"status": self.status, "retries": 0}
        if self.reason:
            detail["last_failure_reason"] = self.reason
        if self.started:
            detail["started_at"] = now_text(self.started)
        if self.finished:
            detail["finished_at"] = now_text(self.finished)
        return detail


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def iam_token(api_key: str, expiry: float) -> str:
    """An access token shaped like IAM's: a JWT (signed with a random key here) whose ``iat`` and ``exp`` the
    IBM SDKs' token managers read."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "test"}
    now = int(time.time())
    claims = {
        "iss": "test-iam",
        "sub": f"ServiceId-{api_key[:8]}",
        "iat": now,
        "exp": int(expiry),
        "jti": uuid.uuid4().hex,
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64url(secrets.token_bytes(32))}"


class CodeEngineTestServer:
    """HTTP front end, IAM stand-in, projects with secrets and job runs, and the instances that run them."""

    def __init__(
        self, workdir: Path, max_instances: int = 8, host: str = "127.0.0.1", port: int = 0, region: str = "us-south"
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.max_instances = max_instances
        self.held_projects: set[str] = set()
        """Projects whose instances stay pending (as when the project's quota is used up by other work)."""
        self.region = region
        self.lock = threading.RLock()
        self.projects: dict[str, str] = {}  # project id -> API key
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (API key, expiry)
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.instances: dict[tuple[str, str], list[Instance]] = {}
        self.images = {TEST_RUNTIME, "airflowpywren/runtime:latest"}
        self.requests: list[tuple[str, str, str]] = []  # (method, resource, project)
        self.instances_started = 0
        self.token_lifetime = 3600.0
        self._stop = threading.Event()
        self._counter = itertools.count(1)
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self.endpoint = f"http://{host}:{self.httpd.server_address[1]}"

    def start(self) -> CodeEngineTestServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="ce-api").start()
        threading.Thread(target=self._loop, daemon=True, name="ce-controller").start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            for instances in self.instances.values():
                for instance in instances:
                    instance.kill("Deleted")

    def add_project(self) -> tuple[str, str]:
        """A new project and its API key."""
        project_id, api_key = str(uuid.uuid4()), secrets.token_hex(16)
        with self.lock:
            self.projects[project_id] = api_key
        return project_id, api_key

    def settings(self, project_id: str) -> dict[str, Any]:
        """The ``code_engine`` section for a project of this server."""
        return {
            "endpoint": f"{self.endpoint}/v2",
            "iam_endpoint": f"{self.endpoint}/identity/token",
            "project_id": project_id,
            "iam_api_key": self.projects[project_id],
            "region": self.region,
        }

    def requests_in(self, project_id: str) -> Counter[str]:
        with self.lock:
            return Counter(f"{m} {r}" for m, r, p in self.requests if p == project_id)

    def runs_in(self, project_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self._view(r) for (p, _), r in self.runs.items() if p == project_id]

    def instances_of(self, project_id: str, name: str) -> list[Instance]:
        with self.lock:
            return list(self.instances.get((project_id, name), []))

    # ------------------------------------------------------------ runs
    def _loop(self) -> None:
        while not self._stop.wait(TICK):
            with self.lock:
                running = sum(1 for ins in itertools.chain(*self.instances.values()) if ins.status == "running")
                for (project_id, _), instances in self.instances.items():
                    for instance in instances:
                        instance.poll()
                        if (
                            instance.status == "pending"
                            and instance.started is None
                            and running < self.max_instances
                            and project_id not in self.held_projects
                        ):
                            instance.start()
                            running += instance.status == "running"

    def _view(self, run: dict[str, Any]) -> dict[str, Any]:
        instances = self.instances.get((run["project_id"], run["name"]), [])
        by_status: dict[str, set[int]] = {s: set() for s in ("pending", "running", "succeeded", "failed")}
        for instance in instances:
            by_status[instance.status].add(instance.index)
        view = {k: v for k, v in run.items() if not k.startswith("_")}
        if by_status["failed"] and not by_status["pending"] | by_status["running"]:
            view["status"] = "failed"
        elif not by_status["pending"] | by_status["running"]:
            view["status"] = "completed"
        elif by_status["running"] or by_status["succeeded"] or by_status["failed"]:
            view["status"] = "running"
        else:
            view["status"] = "pending"
        view["status_details"] = {
            "requested": len(instances),
            "pending": len(by_status["pending"]),
            "running": len(by_status["running"]),
            "succeeded": len(by_status["succeeded"]),
            "failed": len(by_status["failed"]),
            "unknown": 0,
            "pending_indices": index_ranges(by_status["pending"]) or "",
            "running_indices": index_ranges(by_status["running"]) or "",
            "succeeded_indices": index_ranges(by_status["succeeded"]) or "",
            "failed_indices": index_ranges(by_status["failed"]) or "",
            "indices_details": {str(i.index): i.details() for i in instances},
        }
        return view

    # ------------------------------------------------------------- API
    def issue_token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        api_key = (form.get("apikey") or [""])[0]
        if (form.get("grant_type") or [""])[
            0
        ] != "urn:ibm:params:oauth:grant-type:apikey" or api_key not in self.projects.values():
            raise APIError(400, "Provided API key could not be found.", "BXNIM0415E")
        expiry = time.time() + self.token_lifetime
        token = iam_token(api_key, expiry)
        self.tokens[token] = (api_key, expiry)
        return {
            "access_token": token,
            "refresh_token": "not-supported",
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "expiration": int(expiry),
        }

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, auth: str | None) -> tuple[int, Any]:
        resolved = resolve(ROUTES, method, normalized_path(path))
        if resolved is None:
            raise APIError(404, f"no route {path}", "not_found")
        resource, parts = resolved[0].target, resolved[1]
        project_id, name = parts["project_id"], parts.get("name")
        token = (auth or "").removeprefix("Bearer ").strip()
        key, expiry = self.tokens.get(token, ("", 0.0))
        if not key or time.time() > expiry:
            raise APIError(401, "The IAM token is missing, invalid or expired", "unauthorized")
        if project_id not in self.projects:
            raise APIError(404, f"Project '{project_id}' not found", "project_not_found")
        if self.projects[project_id] != key:
            raise APIError(403, "The IAM token is not authorized for this project", "forbidden")
        with self.lock:
            self.requests.append((method, resource or parts["resource"], project_id))
            if resource == "project" and method == "GET":
                return 200, {
                    "id": project_id,
                    "name": f"project-{project_id[:8]}",
                    "region": self.region,
                    "status": "active",
                    "resource_type": "project_v2",
                }
            if resource == "secrets":
                return self._secrets(method, project_id, name, body)
            if resource == "job_runs":
                return self._job_runs(method, project_id, name, body, query)
        raise APIError(404, f"no route {method} {path}", "not_found")

    def _secrets(self, method: str, project_id: str, name: str | None, body: Any) -> tuple[int, Any]:
        if method == "POST" and name is None:
            if not isinstance(body, dict) or body.get("format") != "generic" or not body.get("name"):
                raise APIError(400, "a secret needs 'name' and 'format': 'generic'", "invalid_value")
            if (project_id, body["name"]) in self.secrets:
                raise APIError(409, f"Secret '{body['name']}' already exists", "secret_already_exists")
            secret = {
                "name": body["name"],
                "format": "generic",
                "data": dict(body.get("data") or {}),
                "id": str(uuid.uuid4()),
                "created_at": now_text(),
                "resource_type": "secret_generic_v2",
            }
            self.secrets[(project_id, body["name"])] = secret
            return 201, {k: v for k, v in secret.items() if k != "data"}
        if name is None or (project_id, name) not in self.secrets:
            raise APIError(404, f"Secret '{name}' not found", "secret_not_found")
        if method == "GET":
            return 200, {k: v for k, v in self.secrets[(project_id, name)].items() if k != "data"}
        if method == "DELETE":
            del self.secrets[(project_id, name)]
            return 202, None
        raise APIError(405, "method not allowed", "method_not_allowed")

    def _job_runs(
        self, method: str, project_id: str, name: str | None, body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        if method == "POST" and name is None:
            return 201, self._create_run(project_id, body)
        if method == "GET" and name is None:
            names = sorted(n for p, n in self.runs if p == project_id)
            start = int(query.get("start") or 0)
            limit = min(int(query.get("limit") or 50), 100)
            page = [self._view(self.runs[(project_id, n)]) for n in names[start : start + limit]]
            answer: dict[str, Any] = {"job_runs": page, "limit": limit}
            if start + limit < len(names):
                answer["next"] = {"start": str(start + limit), "href": f"...?start={start + limit}"}
            return 200, answer
        if name is None or (project_id, name) not in self.runs:
            raise APIError(404, f"Job run '{name}' not found", "job_run_not_found")
        if method == "GET":
            return 200, self._view(self.runs[(project_id, name)])
        if method == "DELETE":
            del self.runs[(project_id, name)]
            for instance in self.instances.pop((project_id, name), []):
                instance.kill("Deleted")
            return 202, None
        raise APIError(405, "method not allowed", "method_not_allowed")

    def _create_run(self, project_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise APIError(400, "the body must be a JSON object", "invalid_value")
        name = body.get("name") or f"run-{next(self._counter)}"
        if (project_id, name) in self.runs:
            raise APIError(409, f"Job run '{name}' already exists", "job_run_already_exists")
        if not body.get("image_reference") and not body.get("job_name"):
            raise APIError(400, "either 'job_name' or 'image_reference' must be set", "missing_field")
        cpu, memory = str(body.get("scale_cpu_limit", "1")), str(body.get("scale_memory_limit", "4G"))
        if memory not in COMBINATIONS.get(cpu, ()):
            raise APIError(
                400,
                f"The combination of CPU '{cpu}' and memory '{memory}' is not supported",
                "invalid_cpu_memory_combination",
            )
        for mount in body.get("run_volume_mounts") or []:
            if mount.get("type") != "secret" or (project_id, mount.get("reference")) not in self.secrets:
                raise APIError(
                    400, f"Secret '{mount.get('reference')}' referenced by a volume mount not found", "secret_not_found"
                )
        run = {
            **body,
            "name": name,
            "project_id": project_id,
            "id": str(uuid.uuid4()),
            "created_at": now_text(),
            "region": self.region,
            "resource_type": "job_run_v2",
            "scale_cpu_limit": cpu,
            "scale_memory_limit": memory,
            "scale_max_execution_time": int(body.get("scale_max_execution_time", 7200)),
            "scale_retry_limit": int(body.get("scale_retry_limit", 3)),
            "run_mode": body.get("run_mode", "task"),
            "run_arguments": list(body.get("run_arguments") or []),
            "run_commands": list(body.get("run_commands") or []),
            "run_env_variables": list(body.get("run_env_variables") or []),
            "run_volume_mounts": list(body.get("run_volume_mounts") or []),
            "computed_env_variables": [
                {"type": "literal", "name": "CE_JOBRUN", "value": name},
                {"type": "literal", "name": "CE_SUBDOMAIN", "value": project_id[:12]},
            ],
            "_indices": parse_indices(str(body.get("scale_array_spec") or "0")),
        }
        self.runs[(project_id, name)] = run
        self.instances[(project_id, name)] = [Instance(self, run, i) for i in run["_indices"]]
        return self._view(run)


def _make_handler(server: CodeEngineTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(APIRequestHandler):
        methods = ("GET", "POST", "DELETE")

        def answer(self, method: str) -> None:
            split = urlsplit(self.path)
            raw = self.read_body()
            try:
                if split.path == "/identity/token" and method == "POST":
                    code, answer = 200, server.issue_token(parse_qs(raw.decode()))
                else:
                    body = json.loads(raw) if raw else None
                    query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                    code, answer = server.handle(method, split.path, query, body, self.headers.get("Authorization"))
            except APIError as exc:
                code, answer = (
                    exc.code,
                    {
                        "errors": [{"code": exc.error_code, "message": exc.message}],
                        "status_code": exc.code,
                        "trace": uuid.uuid4().hex,
                    },
                )
            except ValueError:
                code, answer = (
                    400,
                    {"errors": [{"code": "invalid_json", "message": "the body is not JSON"}], "status_code": 400},
                )
            self.send_body(code, b"" if answer is None else json.dumps(answer).encode())

    return Handler


@pytest.fixture(scope="session")
def code_engine_server(tmp_path_factory: pytest.TempPathFactory):
    """The Code Engine API test server (not Code Engine) on 127.0.0.1, for the whole session."""
    server = CodeEngineTestServer(tmp_path_factory.mktemp("code_engine"), max_instances=6).start()
    yield server
    server.stop()
