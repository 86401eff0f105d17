"""Activations of the OpenWhisk-API test server: their records, and how they run as local processes.

An activation runs in a "container": a subprocess of the runtime image's action proxy
(``python -m airflow_pywren.executor.worker``), initialized once with the action's code
(``POST /init``) and reused warm for activations of the same action code, image and memory
(``POST /run``, one at a time, ``__OW_*`` variables set). The container is killed when the
activation passes its action's timeout or memory limit (the proxy's resident memory, sampled
every ``MEMORY_POLL`` seconds); such an activation, or one whose container exits mid-run, ends
with OpenWhisk's status "action developer error" and OpenWhisk's message as ``result.error``.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.services.processes import die_with_parent

REPO_ROOT = Path(__file__).resolve().parents[3]
MEMORY_POLL = 0.05  # seconds between samples of a running container's resident memory
ABNORMAL_RUN = "The action did not produce a valid response and exited unexpectedly."
MEMORY_EXHAUSTED = "The action exhausted its memory and was aborted."
STATUS_CODES = {"success": 0, "application error": 1, "action developer error": 2, "whisk internal error": 3}


def activation_response(status: str, result: dict[str, Any]) -> dict[str, Any]:
    """An activation record's ``response``: OpenWhisk's status, its code, success and the result."""
    return {"status": status, "statusCode": STATUS_CODES[status], "success": status == "success", "result": result}


@dataclass
class Activation:
    """One accepted invocation of an action, from submission to its response."""

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
        """The activation record as ``GET .../activations/{id}`` answers it."""
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
        assert self.process.stdout is not None
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
            return activation_response(
                "action developer error", {"error": f"The action exceeded its time limits of {limit_ms} milliseconds."}
            )
        except requests.ConnectionError:
            self.kill()
            return activation_response(
                "action developer error", {"error": MEMORY_EXHAUSTED if self.memory_exhausted else ABNORMAL_RUN}
            )
        finally:
            running.set()
        if status == 200:
            return activation_response("success", result)
        if status == 502:
            return activation_response("application error", result)
        self.kill()
        return activation_response(
            "action developer error", {"error": f"the action proxy answered HTTP {status}: {result}"}
        )

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


class ActivationRunner:
    """Runs queued activations, one per dispatch thread at a time, each in a container of ``pool``.

    It shares the server's ``lock``, so an invocation is recorded and queued in one step and
    ``wait_idle`` sees both.
    """

    def __init__(self, pool: ContainerPool, dispatchers: int, lock: threading.Lock) -> None:
        self.pool = pool
        self.dispatchers = dispatchers
        self.lock = lock
        self.queue: collections.deque[Activation] = collections.deque()
        self.queue_ready = threading.Condition(lock)
        self.running = 0
        self.faults: collections.deque[tuple[str, str, str | None]] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> None:
        for number in range(self.dispatchers):
            worker = threading.Thread(target=self._dispatch, daemon=True, name=f"ow-dispatch-{number}")
            worker.start()
            self._threads.append(worker)

    def stop(self) -> None:
        """Start no more activations, kill every container, and wait for the dispatch threads."""
        with self.lock:
            self._stopping = True
            self.queue_ready.notify_all()
        self.pool.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def submit(self, activation: Activation) -> None:
        """Queue an activation; the caller holds ``lock``."""
        self.queue.append(activation)
        self.queue_ready.notify()

    def fail_next(self, count: int, status: str, error: str, namespace: str | None) -> None:
        """The next ``count`` activations (of ``namespace``) end with ``status`` and ``error`` without running."""
        with self.lock:
            self.faults.extend([(status, error, namespace)] * count)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no activation is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.queue and not self.running:
                    return True
            time.sleep(0.02)
        return False

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
            fault = next((f for f in self.faults if f[2] in (None, activation.namespace)), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            return activation_response(fault[0], {"error": fault[1]})
        try:
            container = self.pool.acquire(activation.action)
        except Exception as exc:
            return activation_response("whisk internal error", {"error": f"container failed: {exc}"})
        try:
            return container.run(activation)
        finally:
            self.pool.release(container)
