"""An OpenWhisk-API test server and its pytest fixtures. It is a test server, NOT Apache OpenWhisk.

It answers the part of the public OpenWhisk REST API that the ``ibm_cf`` backend and the
``pywren`` CLI use, on 127.0.0.1:

* ``/api/v1/namespaces``, ``/api/v1/namespaces/{ns}/actions`` (GET, with ``limit``/``skip``),
  ``/api/v1/namespaces/{ns}/actions/{name}`` GET / PUT (``overwrite=true``) / DELETE / POST
  (invoke: ``blocking=false`` -> 202 ``{"activationId"}``; ``blocking=true`` waits, ``result=true``),
  ``/api/v1/namespaces/{ns}/activations/{id}`` GET (404 until the activation has ended) and
  ``/api/v1/namespaces/{ns}/activations`` GET of ended activations, newest start first, with
  ``name``, ``since``/``upto`` (start time, epoch ms), ``limit`` (0 = 200, at most 200),
  ``skip``, ``docs`` (full records; summaries carry ``statusCode``) and ``count``;
  ``_`` is the key's own namespace.
* Basic auth with ``uuid:key`` (401 without or with a wrong key, 403 for another key's
  namespace, 404 for an unknown namespace or action), and bearer tokens from a stand-in
  IAM token endpoint ``POST /identity/token`` for namespaces registered with an IAM key.
* Fault injection: ``inject(status, count)`` makes the next invocations answer 429/500/...;
  ``invoke_delay`` slows every invocation answer; ``fail_activations(count)`` makes the next
  activations end with a platform error without running.
* Records for tests and the bench: every accepted invocation (action, payload, User-Agent),
  attempts, the most invocation POSTs in flight at once, client connections used, and every
  request for activation records (``activation_requests``).

Activations run in "containers": subprocesses of the runtime image's action proxy
(``python -m airflow_pywren.executor.worker``), started on demand up to ``containers``,
initialized once with the action's code (``POST /init``) and reused warm for activations
of the same action code, image and memory (``POST /run``, one at a time, ``__OW_*`` variables
set). So each activation runs the real function-side entry point
``airflow_pywren.executor.worker.handler.main(payload)`` in another process. Unlike
OpenWhisk it never pulls or runs the action's docker image (the proxy runs with this
Python), and enforces an action's limits by killing its container: its timeout, and its
memory (the proxy process's resident memory, sampled every ``MEMORY_POLL`` seconds). Such an
activation, or one whose container exits mid-run, ends with OpenWhisk's status "action
developer error" and OpenWhisk's message as ``result.error``.

Standalone: ``python -m tests.services.openwhisk --port 3233`` prints its endpoint and key.
"""

from __future__ import annotations

import argparse
import base64
import collections
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from tests.services.processes import die_with_parent

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_@.\- ]{0,255}$")
MEMORY_RANGE = (128, 2048)
TIMEOUT_RANGE_MS = (100, 600_000)
SUPPORTED_KINDS = ("blackbox", "python:3")
BLOCKING_WAIT = 60.0
RECORD_LIMIT = 50_000
TEST_RUNTIME = "airflowpywren/runtime:test"
MEMORY_POLL = 0.05  # seconds between samples of a running container's resident memory
LIST_LIMIT_MAX = 200
ABNORMAL_RUN = "The action did not produce a valid response and exited unexpectedly."
MEMORY_EXHAUSTED = "The action exhausted its memory and was aborted."

ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Namespace:
    name: str
    api_key: str | None
    iam_api_key: str | None = None
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Activation:
    activation_id: str
    namespace: str
    action: dict[str, Any]
    params: dict[str, Any]
    submitted: float = field(default_factory=time.time)
    start: float | None = None
    end: float | None = None
    response: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start_ms(self) -> int:
        return int((self.start or self.submitted) * 1000)

    def summary(self) -> dict[str, Any]:
        """A list entry without ``docs``: the record without response and logs, plus ``statusCode``."""
        record = self.record()
        response, _ = record.pop("response"), record.pop("logs")
        return {**record, "statusCode": response["statusCode"]}

    def record(self) -> dict[str, Any]:
        start, end = self.start or self.submitted, self.end or time.time()
        return {
            "namespace": self.namespace,
            "name": self.action["name"],
            "version": self.action["version"],
            "subject": self.namespace,
            "activationId": self.activation_id,
            "publish": False,
            "start": int(start * 1000),
            "end": int(end * 1000),
            "duration": int((end - start) * 1000),
            "response": self.response or {"status": "pending", "statusCode": 0, "success": False, "result": {}},
            "logs": [],
            "annotations": [
                {"key": "path", "value": f"{self.namespace}/{self.action['name']}"},
                {"key": "kind", "value": self.action["exec"]["kind"]},
                {"key": "limits", "value": self.action["limits"]},
                {"key": "waitTime", "value": int((start - self.submitted) * 1000)},
            ],
        }


def _response(status: str, result: dict[str, Any]) -> dict[str, Any]:
    codes = {"success": 0, "application error": 1, "action developer error": 2, "whisk internal error": 3}
    return {"status": status, "statusCode": codes[status], "success": status == "success", "result": result}


class Container:
    """One action proxy subprocess, initialized with one action's code."""

    _numbers = itertools.count(1)

    def __init__(self, key: tuple, action: dict[str, Any], workdir: Path, api_host: str) -> None:
        self.key = key
        self.number = next(self._numbers)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env["HOME"] = str(workdir / "home")
        env["__OW_API_HOST"] = api_host
        (workdir / "home").mkdir(exist_ok=True)
        self.log_path = workdir / f"container-{self.number}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_pywren.executor.worker", "--host", "127.0.0.1", "--port", "0"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.port: int | None = None
        self.memory_exhausted = False
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True, name=f"ow-container-{self.number}-log").start()
        if not self._ready.wait(60) or self.port is None:
            self.kill()
            raise RuntimeError(f"the action proxy did not start; see {self.log_path}")
        status, body = self._post(
            "/init",
            {
                "value": {
                    "name": action["name"],
                    "main": action["exec"].get("main") or "main",
                    "code": action["exec"].get("code") or "",
                    "binary": bool(action["exec"].get("binary")),
                    "env": {},
                }
            },
            timeout=60,
        )
        if status != 200:
            self.kill()
            raise RuntimeError(f"/init failed: HTTP {status} {body.get('error')}")

    def _drain(self) -> None:
        with open(self.log_path, "ab") as log:
            for line in self.process.stdout:
                if self.port is None:
                    match = re.search(rb"listening on [\d.]+:(\d+)", line)
                    if match:
                        self.port = int(match.group(1))
                        self._ready.set()
                log.write(line)
                log.flush()
        self._ready.set()

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> tuple[int, dict[str, Any]]:
        response = requests.post(f"http://127.0.0.1:{self.port}{path}", json=body, timeout=(10, timeout))
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": response.text[:500]}

    def run(self, activation: Activation) -> dict[str, Any]:
        """Run one activation; its OpenWhisk response (the container is killed on timeout or crash)."""
        limit_ms = activation.action["limits"]["timeout"]
        body = {
            "value": activation.params,
            "namespace": activation.namespace,
            "action_name": f"/{activation.namespace}/{activation.action['name']}",
            "action_version": activation.action["version"],
            "activation_id": activation.activation_id,
            "transaction_id": uuid.uuid4().hex,
            "deadline": str(int(time.time() * 1000) + limit_ms),
        }
        running = threading.Event()
        threading.Thread(
            target=self._watch_memory,
            args=(activation.action["limits"]["memory"], running),
            daemon=True,
            name=f"ow-container-{self.number}-memory",
        ).start()
        try:
            status, result = self._post("/run", body, timeout=limit_ms / 1000 + 1)
        except requests.Timeout:
            self.kill()
            return _response(
                "action developer error", {"error": f"The action exceeded its time limits of {limit_ms} milliseconds."}
            )
        except requests.ConnectionError:
            self.kill()
            return _response(
                "action developer error", {"error": MEMORY_EXHAUSTED if self.memory_exhausted else ABNORMAL_RUN}
            )
        finally:
            running.set()
        if status == 200:
            return _response("success", result)
        if status == 502:
            return _response("application error", result)
        self.kill()
        return _response("action developer error", {"error": f"the action proxy answered HTTP {status}: {result}"})

    def _watch_memory(self, limit_mb: int, done: threading.Event) -> None:
        """Kill the container when its resident memory passes the action's limit during a run."""
        page = os.sysconf("SC_PAGE_SIZE")
        while not done.wait(MEMORY_POLL):
            try:
                with open(f"/proc/{self.process.pid}/statm") as statm:
                    resident = int(statm.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                return
            if resident > limit_mb * 1024 * 1024:
                self.memory_exhausted = True
                self.kill()
                return

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


class ContainerPool:
    """At most ``size`` containers; warm ones are reused for the same action, idle ones evicted."""

    def __init__(self, size: int, workdir: Path, api_host: str) -> None:
        self.size, self.workdir, self.api_host = size, workdir, api_host
        self.lock = threading.Lock()
        self.idle: dict[tuple, list[Container]] = collections.defaultdict(list)
        self.all: set[Container] = set()
        self.total = 0
        self.started = 0

    def acquire(self, action: dict[str, Any]) -> Container:
        key = (
            action["exec"]["kind"],
            action["exec"].get("image"),
            action["exec"].get("code"),
            action["exec"].get("main"),
            action["limits"]["memory"],
        )
        evict: Container | None = None
        with self.lock:
            if self.idle[key]:
                return self.idle[key].pop()
            if self.total >= self.size:
                other = next(k for k, containers in self.idle.items() if containers)
                evict = self.idle[other].pop()
                self.all.discard(evict)
            else:
                self.total += 1
            self.started += 1
        if evict is not None:
            evict.kill()
        try:
            container = Container(key, action, self.workdir, self.api_host)
        except BaseException:
            with self.lock:
                self.total -= 1
            raise
        with self.lock:
            self.all.add(container)
        return container

    def release(self, container: Container) -> None:
        with self.lock:
            if container.alive:
                self.idle[container.key].append(container)
            else:
                self.all.discard(container)
                self.total -= 1

    def close(self) -> None:
        with self.lock:
            containers = list(self.all)
            self.all.clear()
            self.idle.clear()
        for container in containers:
            container.kill()


class OpenWhiskTestServer:
    """The test server: HTTP front end, namespaces and actions, activation queue and container pool."""

    def __init__(
        self,
        workdir: Path,
        containers: int = 4,
        host: str = "127.0.0.1",
        port: int = 0,
        namespace: str = "pywren-test",
        api_key: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.container_count = containers
        self.lock = threading.Lock()
        self.namespaces: dict[str, Namespace] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.token_ttl = 3600.0
        self.token_requests = 0
        self.default_namespace, self.default_key = self.add_namespace(namespace, api_key)
        self.activations: collections.OrderedDict[str, Activation] = collections.OrderedDict()
        self.queue: collections.deque[Activation] = collections.deque()
        self.queue_ready = threading.Condition(self.lock)
        self.running = 0
        self.faults: collections.deque[tuple[int, str | None, str | None]] = collections.deque()
        self.activation_faults: collections.deque[tuple[str, str, str | None]] = collections.deque()
        self.invoke_delay = 0.0
        self.reset_stats()
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.pool = ContainerPool(containers, self.workdir, self.url)
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # ---------------------------------------------------------------- control
    def start(self) -> OpenWhiskTestServer:
        serve = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="ow-http"
        )
        serve.start()
        self._threads.append(serve)
        for number in range(self.container_count):
            worker = threading.Thread(target=self._dispatch, daemon=True, name=f"ow-dispatch-{number}")
            worker.start()
            self._threads.append(worker)
        return self

    def stop(self) -> None:
        with self.lock:
            self._stopping = True
            self.queue_ready.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.pool.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def add_namespace(
        self, name: str | None = None, api_key: str | None = None, iam_api_key: str | None = None
    ) -> tuple[str, str | None]:
        """Register a namespace; returns ``(name, api_key)`` (a new ``uuid:key`` unless IAM-only)."""
        name = name or f"ns-{uuid.uuid4().hex[:10]}"
        if api_key is None and iam_api_key is None:
            api_key = f"{uuid.uuid4()}:{secrets.token_urlsafe(48)}"
        with self.lock:
            self.namespaces[name] = Namespace(name, api_key, iam_api_key)
        return name, api_key

    def settings(self, namespace: str | None = None, **overrides: Any) -> dict[str, Any]:
        """An ``ibm_cf`` config section for a namespace of this server."""
        space = self.namespaces[namespace or self.default_namespace]
        section = {
            "endpoint": self.url,
            "namespace": space.name,
            "runtime": TEST_RUNTIME,
            "max_concurrency": 16,
            "invoke_retries": 4,
        }
        if space.api_key:
            section["api_key"] = space.api_key
        else:
            section.update(iam_api_key=space.iam_api_key, iam_endpoint=f"{self.url}/identity/token")
        section.update(overrides)
        return section

    def inject(self, status: int, count: int = 1, namespace: str | None = None, user_agent: str | None = None) -> None:
        """The next ``count`` invocations (of ``namespace``, from a User-Agent containing ``user_agent``) answer ``status``."""
        with self.lock:
            self.faults.extend([(status, namespace, user_agent)] * count)

    def fail_activations(
        self,
        count: int = 1,
        status: str = "whisk internal error",
        error: str = "Failed to provision resources to run the action.",
        namespace: str | None = None,
    ) -> None:
        """The next ``count`` activations (of ``namespace``) end with ``status`` and ``error`` without running."""
        with self.lock:
            self.activation_faults.extend([(status, error, namespace)] * count)

    def reset_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.activation_faults.clear()
            self.invoke_delay = 0.0

    def reset_stats(self) -> None:
        with self.lock:
            self.invocations: list[dict[str, Any]] = []
            self.attempts: collections.Counter[str] = collections.Counter()
            self.puts: collections.Counter[str] = collections.Counter()
            self.answers: collections.Counter[int] = collections.Counter()
            self.in_flight = 0
            self.max_in_flight = 0
            self.connections: set[int] = set()
            self.activation_requests: list[dict[str, Any]] = []

    def invocations_of(self, namespace: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r
                for r in self.invocations
                if (namespace is None or r["namespace"] == namespace) and (action is None or r["action"] == action)
            ]

    def invocation_counts(self, namespace: str | None = None) -> collections.Counter[str]:
        """Accepted invocations per action."""
        return collections.Counter(r["action"] for r in self.invocations_of(namespace))

    def wait_idle(self, timeout: float = 60) -> bool:
        """Wait until no activation is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.queue and not self.running:
                    return True
            time.sleep(0.02)
        return False

    def activation(self, activation_id: str) -> Activation | None:
        with self.lock:
            return self.activations.get(activation_id)

    # ------------------------------------------------------------ execution
    def _dispatch(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self._stopping:
                    self.queue_ready.wait()
                if self._stopping:
                    return
                activation = self.queue.popleft()
                self.running += 1
            try:
                activation.start = time.time()
                activation.response = self._run(activation)
            finally:
                activation.end = time.time()
                activation.done.set()
                with self.lock:
                    self.running -= 1

    def _run(self, activation: Activation) -> dict[str, Any]:
        """The OpenWhisk response of one activation: an injected platform error, or a container's answer."""
        with self.lock:
            fault = next((f for f in self.activation_faults if f[2] in (None, activation.namespace)), None)
            if fault is not None:
                self.activation_faults.remove(fault)
        if fault is not None:
            return _response(fault[0], {"error": fault[1]})
        try:
            container = self.pool.acquire(activation.action)
        except Exception as exc:
            return _response("whisk internal error", {"error": f"container failed: {exc}"})
        try:
            return container.run(activation)
        finally:
            self.pool.release(container)

    # ---------------------------------------------------------------- API
    def authenticate(self, header: str | None) -> Namespace:
        if header and header.startswith("Basic "):
            try:
                supplied = base64.b64decode(header[6:]).decode()
            except ValueError:
                supplied = ""
            for space in self.namespaces.values():
                if space.api_key and secrets.compare_digest(space.api_key, supplied):
                    return space
        elif header and header.startswith("Bearer "):
            owner, expires = self.tokens.get(header[7:], (None, 0.0))
            if owner is not None and time.time() < expires:
                return self.namespaces[owner]
        raise HTTPError(401, "The supplied authentication is invalid.")

    def namespace_for(self, auth: Namespace, name: str) -> Namespace:
        if name == "_":
            return auth
        space = self.namespaces.get(name)
        if space is None:
            raise HTTPError(404, "The requested resource does not exist.")
        if space is not auth:
            raise HTTPError(403, f"The supplied authentication is not authorized to access '{name}'.")
        return space

    def issue_token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        key = (form.get("apikey") or [""])[0]
        if (form.get("grant_type") or [""])[0] != "urn:ibm:params:oauth:grant-type:apikey":
            raise HTTPError(400, "grant_type must be urn:ibm:params:oauth:grant-type:apikey")
        with self.lock:
            self.token_requests += 1
            owner = next((s.name for s in self.namespaces.values() if s.iam_api_key and s.iam_api_key == key), None)
            if owner is None:
                raise HTTPError(400, "Provided API key could not be found.")
            token = secrets.token_urlsafe(32)
            expires = time.time() + self.token_ttl
            self.tokens[token] = (owner, expires)
        return {
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": int(self.token_ttl),
            "expiration": int(expires),
        }

    def put_action(self, space: Namespace, name: str, body: dict[str, Any], overwrite: bool) -> dict[str, Any]:
        if not NAME_PATTERN.match(name):
            raise HTTPError(400, f"The name '{name}' is not valid.")
        existing = space.actions.get(name)
        if existing is not None and not overwrite:
            raise HTTPError(409, "resource already exists")
        exec_ = body.get("exec")
        if not isinstance(exec_, dict) or "kind" not in exec_:
            raise HTTPError(400, "The request content was malformed: 'exec' with a 'kind' is required.")
        if not exec_["kind"].startswith(SUPPORTED_KINDS):
            raise HTTPError(400, f"kind '{exec_['kind']}' is not supported by this test server (blackbox, python:3*)")
        if exec_["kind"] == "blackbox" and not exec_.get("image"):
            raise HTTPError(400, "The request content was malformed: a blackbox action needs an 'image'.")
        limits = {"memory": 256, "timeout": 60_000, "logs": 10, "concurrency": 1, **(body.get("limits") or {})}
        if not MEMORY_RANGE[0] <= int(limits["memory"]) <= MEMORY_RANGE[1]:
            raise HTTPError(400, f"memory {limits['memory']} MB exceeds allowed threshold of {MEMORY_RANGE} MB")
        if not TIMEOUT_RANGE_MS[0] <= int(limits["timeout"]) <= TIMEOUT_RANGE_MS[1]:
            raise HTTPError(
                400, f"duration {limits['timeout']} milliseconds exceeds allowed threshold of {TIMEOUT_RANGE_MS}"
            )
        version = f"0.0.{int(existing['version'].rsplit('.', 1)[1]) + 1}" if existing else "0.0.1"
        action = {
            "namespace": space.name,
            "name": name,
            "version": version,
            "publish": False,
            "exec": {
                "kind": exec_["kind"],
                "image": exec_.get("image"),
                "code": exec_.get("code") or "",
                "main": exec_.get("main") or "main",
                "binary": bool(exec_.get("binary")),
            },
            "limits": limits,
            "parameters": body.get("parameters") or [],
            "annotations": [*(body.get("annotations") or []), {"key": "exec", "value": exec_["kind"]}],
            "updated": int(time.time() * 1000),
        }
        space.actions[name] = action
        self.puts[name] += 1
        return action

    def invoke(
        self, space: Namespace, name: str, params: Any, query: dict[str, str], user_agent: str, auth: str = ""
    ) -> tuple[int, Any]:
        with self.lock:
            self.attempts[name] += 1
            fault = next((f for f in self.faults if f[1] in (None, space.name) and (f[2] or "") in user_agent), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            raise HTTPError(
                fault[0], "Too many requests in the last minute." if fault[0] == 429 else "injected failure"
            )
        action = space.actions.get(name)
        if action is None:
            raise HTTPError(404, "The requested resource does not exist.")
        if not isinstance(params, dict):
            raise HTTPError(400, "The request content was malformed: parameters must be a JSON object.")
        merged = {p["key"]: p["value"] for p in action["parameters"]}
        merged.update(params)
        activation = Activation(uuid.uuid4().hex, space.name, action, merged)
        with self.lock:
            self.activations[activation.activation_id] = activation
            while len(self.activations) > RECORD_LIMIT:
                self.activations.popitem(last=False)
            self.invocations.append(
                {
                    "namespace": space.name,
                    "action": name,
                    "activation_id": activation.activation_id,
                    "payload": merged,
                    "user_agent": user_agent,
                    "auth": auth,
                    "time": time.time(),
                }
            )
            del self.invocations[:-RECORD_LIMIT]
            self.queue.append(activation)
            self.queue_ready.notify()
        if query.get("blocking") != "true":
            return 202, {"activationId": activation.activation_id}
        if not activation.done.wait(BLOCKING_WAIT):
            return 202, {"activationId": activation.activation_id}
        record = activation.record()
        if query.get("result") == "true":
            return (200 if record["response"]["success"] else 502), record["response"]["result"]
        return (200 if record["response"]["success"] else 502), record

    def list_activations(self, space: Namespace, query: dict[str, str]) -> Any:
        """Ended activations, newest start first, as OpenWhisk's list: summaries unless ``docs=true``."""
        skip, limit = _integer(query, "skip", 0), _integer(query, "limit", 30)
        if skip < 0:
            raise HTTPError(400, f"The value '{skip}' is not greater than or equal to 0 for activations.")
        if not 0 <= limit <= LIST_LIMIT_MAX:
            raise HTTPError(400, f"The value '{limit}' is not in the range of 0 to {LIST_LIMIT_MAX} for activations.")
        name = query.get("name") or None
        since, upto = _integer(query, "since", 0), _integer(query, "upto", 0)
        with self.lock:
            found = [
                a
                for a in self.activations.values()
                if a.namespace == space.name
                and a.done.is_set()
                and (name is None or a.action["name"] == name.rsplit("/", 1)[-1])
                and since <= a.start_ms()
                and (not upto or a.start_ms() <= upto)
            ]
        if query.get("count") == "true":
            if query.get("docs") == "true":
                raise HTTPError(400, "The parameter 'docs' is not permitted with 'count'.")
            return {"activations": len(found[skip:])}
        found.sort(key=Activation.start_ms, reverse=True)
        page = found[skip : skip + (limit or LIST_LIMIT_MAX)]
        return [a.record() if query.get("docs") == "true" else a.summary() for a in page]


def _integer(query: dict[str, str], key: str, default: int) -> int:
    try:
        return int(query.get(key) or default)
    except ValueError:
        raise HTTPError(400, f"The value '{query[key]}' is not an integer for activations.") from None


def _make_handler(server: OpenWhiskTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status, ERRORS.get(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            path = [unquote(p) for p in parts.path.strip("/").split("/")]
            try:
                status, body = self._route(method, path, query, raw)
            except HTTPError as exc:
                status, body = exc.status, {"error": exc.message, "code": uuid.uuid4().hex[:8]}
            if method == "POST" and len(path) == 6 and path[4] == "actions":
                with server.lock:
                    server.answers[status] += 1
            self._reply(status, body)

        def _route(self, method: str, path: list[str], query: dict[str, str], raw: bytes) -> tuple[int, Any]:
            if path == ["identity", "token"] and method == "POST":
                return 200, server.issue_token(parse_qs(raw.decode()))
            if path[:2] != ["api", "v1"]:
                raise HTTPError(404, "The requested resource could not be found.")
            auth = server.authenticate(self.headers.get("Authorization"))
            if path == ["api", "v1", "namespaces"] and method == "GET":
                return 200, [auth.name]
            if len(path) < 5 or path[2] != "namespaces":
                raise HTTPError(404, "The requested resource could not be found.")
            space = server.namespace_for(auth, path[3])
            collection, rest = path[4], path[5:]
            if collection == "actions":
                return self._actions(method, space, rest, query, raw)
            if collection == "activations" and method == "GET":
                with server.lock:
                    server.activation_requests.append(
                        {
                            "namespace": space.name,
                            "activation_id": rest[0] if rest else None,
                            "query": dict(query),
                            "time": time.time(),
                        }
                    )
                if not rest:
                    return 200, server.list_activations(space, query)
                activation = server.activation(rest[0])
                if activation is None or activation.namespace != space.name or not activation.done.is_set():
                    raise HTTPError(404, "The requested resource does not exist.")
                return 200, activation.record()
            raise HTTPError(404, "The requested resource could not be found.")

        def _actions(
            self, method: str, space: Namespace, rest: list[str], query: dict[str, str], raw: bytes
        ) -> tuple[int, Any]:
            if not rest:
                if method != "GET":
                    raise HTTPError(405, "method not allowed")
                with server.lock:
                    actions = sorted(space.actions.values(), key=lambda a: -a["updated"])
                skip, limit = int(query.get("skip") or 0), int(query.get("limit") or 30)
                return 200, [
                    {k: a[k] for k in ("namespace", "name", "version", "publish", "annotations", "limits", "updated")}
                    for a in actions[skip : skip + (limit or 200)]
                ]
            name = rest[0]
            body = self._json(raw) if raw else {}
            if method == "GET":
                action = space.actions.get(name)
                if action is None:
                    raise HTTPError(404, "The requested resource does not exist.")
                return 200, action
            if method == "PUT":
                with server.lock:
                    return 200, server.put_action(space, name, body, query.get("overwrite") == "true")
            if method == "DELETE":
                with server.lock:
                    action = space.actions.pop(name, None)
                if action is None:
                    raise HTTPError(404, "The requested resource does not exist.")
                return 200, action
            if method == "POST":
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.connections.add(self.client_address[1])
                try:
                    if server.invoke_delay:
                        time.sleep(server.invoke_delay)
                    return server.invoke(
                        space,
                        name,
                        body,
                        query,
                        self.headers.get("User-Agent", ""),
                        (self.headers.get("Authorization") or " ").split()[0],
                    )
                finally:
                    with server.lock:
                        server.in_flight -= 1
            raise HTTPError(405, "method not allowed")

        @staticmethod
        def _json(raw: bytes) -> Any:
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise HTTPError(400, f"The request content was malformed: {exc}") from None

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

    return Handler


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def openwhisk_server(tmp_path_factory: pytest.TempPathFactory):
    """The OpenWhisk-API test server (not OpenWhisk) on 127.0.0.1, for the whole session."""
    server = OpenWhiskTestServer(tmp_path_factory.mktemp("openwhisk"), containers=8).start()
    yield server
    server.stop()


@pytest.fixture
def openwhisk_config(openwhisk_server: OpenWhiskTestServer) -> dict[str, Any]:
    """Config selecting the ``ibm_cf`` backend on the test server's default namespace (faults cleared)."""
    openwhisk_server.reset_faults()
    return {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": openwhisk_server.settings()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenWhisk-API test server (not OpenWhisk): for tests and benchmarks")
    parser.add_argument("--port", type=int, default=3233)
    parser.add_argument("--namespace", default="guest")
    parser.add_argument("--api-key", default=None, help="uuid:key (default: a new random key)")
    parser.add_argument("--containers", type=int, default=4)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or f"/tmp/pywren-openwhisk-{os.getpid()}")
    server = OpenWhiskTestServer(
        workdir, args.containers, port=args.port, namespace=args.namespace, api_key=args.api_key
    ).start()
    print(json.dumps({"ibm_cf": server.settings()}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
