"""The localhost runner: a detached process that runs activations in a warm, forked pool.

Started on demand by :mod:`.localhost` and independent of the submitting process, so
calls keep running when the submitter exits (an Airflow task that defers). One runner
serves one socket; it exits after ``idle_timeout`` seconds without work. The supervisor
is single-threaded (``selectors``), so forking replacement workers is safe.

Requests are length-prefixed JSON over a Unix socket, one per connection:
``invoke`` (queue calls), ``cancel``, ``stats``, ``ping`` and ``shutdown``.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import json
import logging
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.errors import ActivationTimeoutError, CallCancelledError, PyWrenError
from airflow_pywren.executor.worker import handler

logger = logging.getLogger("airflow_pywren.runner")

HEADER = struct.Struct("!I")
UNRECORDED = b"unrecorded:"
"""A worker's answer for a call whose status it could not write (storage refused it for too long)."""
MAX_UNRECORDED = 100_000
KILL_GRACE_SECONDS = 2.0


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def recv_message(sock: socket.socket) -> dict[str, Any]:
    header = _recv_exactly(sock, HEADER.size)
    return json.loads(_recv_exactly(sock, HEADER.unpack(header)[0]))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError("runner connection closed mid-message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _worker_loop(conn: Connection) -> None:
    """Run payloads received on ``conn`` one at a time, each under its memory limit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler._storages.clear()  # never share a parent's connections
    soft_limit, hard_limit = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            payload = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            os._exit(0)
        limit = _address_space() + int(payload.get("runtime_memory") or 0) * 1024 * 1024
        reply = b"done"
        try:
            if payload.get("runtime_memory"):
                resource.setrlimit(resource.RLIMIT_AS, (limit if hard_limit == resource.RLIM_INFINITY else min(limit, hard_limit), hard_limit))
            handler.run_call(payload)
        except BaseException as exc:  # the handler records the function's errors; this is storage failing
            logger.exception("call %s of job %s could not be recorded", payload.get("call_id"), payload.get("job_id"))
            reply = UNRECORDED + f"{type(exc).__name__}: {exc}".encode(errors="replace")[:4000]
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft_limit, hard_limit))
        conn.send_bytes(reply)


@dataclass
class Worker:
    pid: int
    conn: Connection
    payload: dict[str, Any] | None = None
    started: float = 0.0
    deadline: float = float("inf")


@dataclass
class RunnerStats:
    invoked: int = 0
    completed: int = 0
    killed: int = 0
    crashed: int = 0
    cancelled: int = 0
    started_at: float = field(default_factory=time.time)


class Runner:
    """Supervisor of the worker pool: queues calls, dispatches them, enforces timeouts."""

    def __init__(self, socket_path: str, workers: int, idle_timeout: float) -> None:
        self.socket_path = socket_path
        self.worker_count = workers
        self.idle_timeout = idle_timeout
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.workers: dict[int, Worker] = {}
        self.selector = selectors.DefaultSelector()
        self.stats = RunnerStats()
        self.last_activity = time.monotonic()
        self.running = True
        self.sequence = 0
        self.unrecorded: dict[str, str] = {}
        """Activation id -> why its call wrote no status: the client fails such calls (``lost`` requests)."""

    # workers -----------------------------------------------------------------
    def _spawn_worker(self) -> None:
        parent_conn, child_conn = Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:
            try:
                self.selector.close()
                parent_conn.close()
                _worker_loop(child_conn)
            finally:
                os._exit(0)
        child_conn.close()
        worker = Worker(pid=pid, conn=parent_conn)
        self.workers[parent_conn.fileno()] = worker
        self.selector.register(parent_conn.fileno(), selectors.EVENT_READ, ("worker", worker))

    def _retire_worker(self, worker: Worker, kill: bool) -> int:
        """Take ``worker`` out of the pool (a new one replaces it while running); its wait status."""
        self.selector.unregister(worker.conn.fileno())
        del self.workers[worker.conn.fileno()]
        if kill:
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.conn.close()
        _, wait_status = os.waitpid(worker.pid, 0)
        if self.running:
            self._spawn_worker()
        return wait_status

    def _dispatch(self) -> None:
        for worker in list(self.workers.values()):
            if not self.queue:
                return
            if worker.payload is None:
                payload = self.queue.popleft()
                worker.payload = payload
                worker.started = time.monotonic()
                worker.deadline = worker.started + float(payload.get("timeout") or 1e9) + KILL_GRACE_SECONDS
                worker.conn.send_bytes(json.dumps(payload).encode())

    def _on_worker_message(self, worker: Worker) -> None:
        try:
            answer = worker.conn.recv_bytes()
        except (EOFError, OSError):
            payload = worker.payload
            wait_status = self._retire_worker(worker, kill=False)
            if payload is not None:
                self.stats.crashed += 1
                how = _describe_exit(wait_status)
                self._record(payload, PyWrenError(
                    f"call {payload['call_id']} of job {payload['job_id']}: the worker process {how} "
                    f"(runtime_memory={payload.get('runtime_memory')} MB); the function may have exceeded its "
                    "memory or crashed the interpreter"
                ), worker.started)
            return
        if answer.startswith(UNRECORDED) and worker.payload is not None:
            payload = worker.payload
            self.unrecorded[payload["activation_id"]] = (
                f"call {payload['call_id']} of job {payload['job_id']} could not record its status: "
                f"{answer[len(UNRECORDED):].decode(errors='replace')}"
            )
            while len(self.unrecorded) > MAX_UNRECORDED:
                self.unrecorded.pop(next(iter(self.unrecorded)))
        worker.payload = None
        self.stats.completed += 1
        self.last_activity = time.monotonic()

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.payload is not None and now >= worker.deadline:
                payload = worker.payload
                self._retire_worker(worker, kill=True)
                self.stats.killed += 1
                self._record(payload, ActivationTimeoutError(
                    f"call {payload['call_id']} of job {payload['job_id']} exceeded its timeout of "
                    f"{payload.get('timeout')} s and was killed"
                ), worker.started)

    def _record(self, payload: dict[str, Any], exc: BaseException, started_monotonic: float) -> None:
        """Record a call the worker could not finish, unless it already wrote its status."""
        try:
            storage = handler.storage_for(payload["storage"])
            status_key = keys.call_key(payload["prefix"], payload["executor_id"], payload["job_id"], payload["call_id"], keys.STATUS_OBJECT)
            if status_key in storage.list_keys(status_key):
                return
            start_time = time.time() - (time.monotonic() - started_monotonic)
            handler.record_failure(payload, exc, start_time=start_time)
        except Exception:
            logger.exception("could not record the failure of call %s", payload.get("call_id"))

    # requests ----------------------------------------------------------------
    def _on_request(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(30)
            try:
                request = recv_message(conn)
                send_message(conn, self._handle(request))
            except (OSError, ConnectionError, ValueError) as exc:
                logger.warning("bad request: %s", exc)
        self.last_activity = time.monotonic()

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "invoke":
            job = request["job"]
            activation_ids = []
            for call in request["calls"]:
                self.sequence += 1
                activation_id = f"local-{os.getpid()}-{self.sequence}"
                self.queue.append({**job, **call, "activation_id": activation_id})
                activation_ids.append(activation_id)
            self.stats.invoked += len(activation_ids)
            return {"ok": True, "activation_ids": activation_ids}
        if op == "cancel":
            return {"ok": True, "cancelled": self._cancel(request["executor_id"], request.get("job_id"))}
        if op == "stats":
            busy = sum(1 for w in self.workers.values() if w.payload is not None)
            return {"ok": True, "pid": os.getpid(), "workers": self.worker_count, "queued": len(self.queue),
                    "running": busy, **self.stats.__dict__}
        if op == "lost":
            wanted = request.get("activation_ids") or []
            return {"ok": True, "lost": {aid: self.unrecorded[aid] for aid in wanted if aid in self.unrecorded}}
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "shutdown":
            self.running = False
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _cancel(self, executor_id: str, job_id: str | None) -> int:
        def matches(payload: dict[str, Any]) -> bool:
            return payload["executor_id"] == executor_id and (job_id is None or payload["job_id"] == job_id)

        dropped = [p for p in self.queue if matches(p)]
        self.queue = collections.deque(p for p in self.queue if not matches(p))
        for worker in list(self.workers.values()):
            if worker.payload is not None and matches(worker.payload):
                dropped.append(worker.payload)
                self._retire_worker(worker, kill=True)
        for payload in dropped:
            self._record(payload, CallCancelledError(f"call {payload['call_id']} of job {payload['job_id']} was cancelled"),
                         time.monotonic())
        self.stats.cancelled += len(dropped)
        return len(dropped)

    # main loop ---------------------------------------------------------------
    def serve(self, listener: socket.socket) -> None:
        for _ in range(self.worker_count):
            self._spawn_worker()
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, ("listener", None))
        while self.running:
            self._dispatch()
            busy = [w.deadline for w in self.workers.values() if w.payload is not None]
            now = time.monotonic()
            if not busy and not self.queue and now - self.last_activity > self.idle_timeout:
                logger.info("idle for %.0f s, exiting", self.idle_timeout)
                break
            wait = min([d - now for d in busy] + [self.idle_timeout, 1.0])
            for key, _ in self.selector.select(max(wait, 0.0)):
                kind, worker = key.data
                if kind == "listener":
                    self._on_request(listener)
                elif self.workers.get(key.fd) is worker and worker is not None:
                    self._on_worker_message(worker)
            self._enforce_timeouts()
        self.running = False
        for worker in list(self.workers.values()):
            self._retire_worker(worker, kill=True)


def _describe_exit(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(wait_status)).name}"
    return f"exited with code {os.WEXITSTATUS(wait_status)}"


def serve(socket_path: str, workers: int, idle_timeout: float) -> int:
    """Run a runner on ``socket_path`` unless one already holds its lock."""
    os.umask(0o077)  # whatever the submitter's umask: files and directories of the runner and its calls are private
    lock = open(os.open(socket_path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another runner serves this socket
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    runner = Runner(socket_path, workers, idle_timeout)
    try:
        runner.serve(listener)
    finally:
        listener.close()
        try:
            os.unlink(socket_path)
        except FileNotFoundError:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="airflow-pywren localhost runner")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=600)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    return serve(args.socket, args.workers, args.idle_timeout)


if __name__ == "__main__":
    sys.exit(main())
