"""The localhost runner: a detached process that runs activations in a warm, forked pool.

Started on demand by :mod:`.localhost` and independent of the submitting process, so
calls keep running when the submitter exits (an Airflow task that defers). One runner
serves one socket; it exits after ``idle_timeout`` seconds without work. The supervisor
is single-threaded (``selectors``), so forking replacement workers is safe.

Requests are length-prefixed JSON over a Unix socket, one per connection:
``invoke`` (queue calls), ``cancel``, ``stats``, ``ping`` and ``shutdown``.

Dispatch is cheap per call: a worker gets a job's common fields once (while it runs
calls of that job) and then only each call's own fields, and while it runs a call it
already holds the next call of the same job (``PREFETCH``), so it never waits for the
supervisor between calls. Only calls of the running call's job are handed ahead: a call
that waits for other calls (a reducer, a nested executor) waits for calls of other jobs,
which never queue behind it. A call handed ahead is taken back when a worker is idle
and nothing else is queued, so it never waits behind a long call: each worker shares a
claim slot with the supervisor (a word under a lock), and runs a call handed ahead only
after claiming it, so a call taken back never runs twice.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import itertools
import json
import logging
import multiprocessing
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from typing import Any

from airflow_pywren.executor.callstore import call_store_for
from airflow_pywren.executor.errors import ActivationTimeoutError, CallCancelledError, PyWrenError
from airflow_pywren.executor.worker import blocking, handler

logger = logging.getLogger("airflow_pywren.runner")

HEADER = struct.Struct("!I")
UNRECORDED = b"unrecorded:"
"""A worker's answer for a call whose status it could not write (storage refused it for too long)."""
MAX_UNRECORDED = 100_000
KILL_GRACE_SECONDS = 2.0
PREFETCH = 2
"""Calls a worker holds at once: the one it runs and the next one of the same job."""
_SAME_JOB = b"="  # a dispatch message without the job's fields: same job as the worker's last call
BLOCKED, UNBLOCKED = b"blocked", b"unblocked"  # a call waits for other calls (nested executors), or no longer


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


class ClaimSlot:
    """Which call a worker started and which one the supervisor took back, shared across the fork.

    Tickets number the calls sent to one worker. The worker claims a ticket before it runs
    the call; the supervisor takes a ticket back only while it is unclaimed. Both happen
    under one lock, so exactly one of them wins.
    """

    def __init__(self) -> None:
        self.lock = multiprocessing.Lock()
        self.tickets = multiprocessing.RawArray("q", 2)  # [started, taken back]

    def claim(self, ticket: int) -> bool:
        """Worker side: whether the call may run (it was not taken back)."""
        with self.lock:
            if self.tickets[1] == ticket:
                return False
            self.tickets[0] = ticket
            return True

    def take_back(self, ticket: int) -> bool:
        """Supervisor side: whether the call was taken back before the worker started it."""
        if not self.lock.acquire(timeout=1.0):  # a worker killed inside the lock: leave its call alone
            return False
        try:
            if self.tickets[0] >= ticket:
                return False
            self.tickets[1] = ticket
            return True
        finally:
            self.lock.release()


def _worker_loop(conn: Connection, slot: ClaimSlot) -> None:
    """Run calls received on ``conn`` one at a time, each under its memory limit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler._storages.clear()  # never share a parent's connections
    blocking.set_reporter(lambda blocked: conn.send_bytes(BLOCKED if blocked else UNBLOCKED))
    os.register_at_fork(after_in_child=lambda: blocking.set_reporter(None))  # a call's own children are not workers
    soft_limit, hard_limit = resource.getrlimit(resource.RLIMIT_AS)
    job: dict[str, Any] = {}
    baseline = 0
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)
        ticket_part, _, message = message.partition(b"\n")
        job_part, _, call_part = message.partition(b"\n")
        if job_part != _SAME_JOB:
            job = json.loads(job_part)
            baseline = _address_space()  # the worker's size as a job's calls begin
        if not slot.claim(int(ticket_part)):
            continue  # taken back by the supervisor: another worker runs it
        payload = {**job, **json.loads(call_part)}
        limit = baseline + int(payload.get("runtime_memory") or 0) * 1024 * 1024
        reply = b"done"
        try:
            if payload.get("runtime_memory"):
                resource.setrlimit(
                    resource.RLIMIT_AS,
                    (limit if hard_limit == resource.RLIM_INFINITY else min(limit, hard_limit), hard_limit),
                )
            handler.run_call(payload)
        except BaseException as exc:  # the handler records the function's errors; this is storage failing
            logger.exception("call %s of job %s could not be recorded", payload.get("call_id"), payload.get("job_id"))
            reply = UNRECORDED + f"{type(exc).__name__}: {exc}".encode(errors="replace")[:4000]
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft_limit, hard_limit))
        conn.send_bytes(reply)


@dataclass
class QueuedJob:
    """A job's fields common to its calls, shared by its queued and running calls."""

    fields: dict[str, Any]
    encoded: bytes
    nested: bool = False
    """Submitted by a running call that waits for it (a nested executor): queued first, runs on lent workers too."""


@dataclass
class QueuedCall:
    job: QueuedJob
    call: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {**self.job.fields, **self.call}


@dataclass
class Worker:
    pid: int
    conn: Connection
    slot: ClaimSlot
    calls: collections.deque[QueuedCall] = field(default_factory=collections.deque)
    """The call it runs, then the one it holds next (same job)."""
    tickets: collections.deque[int] = field(default_factory=collections.deque)
    """The ticket of each call in ``calls``."""
    last_ticket: int = 0
    last_job: QueuedJob | None = None
    started: float = 0.0
    deadline: float = float("inf")
    blocked: bool = False
    lent: bool = False  # added while a call waits for other calls; runs only such nested calls

    @property
    def payload(self) -> dict[str, Any] | None:
        """The call it runs, if any."""
        return self.calls[0].payload() if self.calls else None

    def start_next(self, now: float) -> None:
        self.started = now
        timeout = self.calls[0].call.get("timeout", self.calls[0].job.fields.get("timeout")) if self.calls else None
        self.deadline = now + float(timeout or 1e9) + KILL_GRACE_SECONDS if self.calls else float("inf")


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

    def __init__(self, socket_path: str, workers: int, idle_timeout: float, max_extra_workers: int = 0) -> None:
        self.socket_path = socket_path
        self.worker_count = workers
        self.max_extra_workers = max_extra_workers
        self.idle_timeout = idle_timeout
        self.queue: collections.deque[QueuedCall] = collections.deque()
        self.workers: dict[int, Worker] = {}
        self.selector = selectors.DefaultSelector()
        self.stats = RunnerStats()
        self.last_activity = time.monotonic()
        self.running = True
        self.accepting = True
        self.on_stop_accepting: Callable[[], None] | None = None
        """Unlinks the socket and releases its lock, so that clients coming now start a new runner."""
        self.sequence = 0
        self.unrecorded: dict[str, str] = {}
        """Activation id -> why its call wrote no status: the client fails such calls (``lost`` requests)."""

    # workers -----------------------------------------------------------------
    def _spawn_worker(self, lent: bool = False) -> None:
        parent_conn, child_conn = Pipe(duplex=True)
        slot = ClaimSlot()
        pid = os.fork()
        if pid == 0:
            try:
                self.selector.close()
                parent_conn.close()
                _worker_loop(child_conn, slot)
            finally:
                os._exit(0)
        child_conn.close()
        worker = Worker(pid=pid, conn=parent_conn, slot=slot, lent=lent)
        self.workers[parent_conn.fileno()] = worker
        self.selector.register(parent_conn.fileno(), selectors.EVENT_READ, ("worker", worker))

    def _retire_worker(self, worker: Worker, kill: bool, respawn: bool = True) -> int:
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
        if self.running and respawn:
            if not worker.lent:
                self._spawn_worker()
            elif self._count(lent=True) < self._count(blocked=True):
                self._spawn_worker(lent=True)
        return wait_status

    # calls that wait for other calls -------------------------------------------
    def _count(self, lent: bool = False, blocked: bool = False) -> int:
        return sum((lent and w.lent) or (blocked and w.blocked) for w in self.workers.values())

    def _on_blocked(self, worker: Worker, blocked: bool) -> None:
        """A call waits for other calls (nested executors), or stopped waiting.

        Each waiting call lends the pool one extra worker (at most ``max_extra_workers`` in
        all), which runs only calls submitted from inside calls (queued first); a lent
        worker retires once there are more lent workers than waiting calls.
        """
        worker.blocked = blocked
        if blocked and len(worker.calls) > 1 and worker.slot.take_back(worker.tickets[-1]):
            worker.tickets.pop()
            self.queue.appendleft(worker.calls.pop())  # it would wait behind a call that waits
        lent, waiting = self._count(lent=True), self._count(blocked=True)
        if blocked and lent < waiting:
            if lent < self.max_extra_workers:
                self._spawn_worker(lent=True)
            else:
                logger.warning(
                    "%d calls wait for other calls and %d extra workers (localhost.max_extra_workers) "
                    "are lent already; nested calls wait for a free worker",
                    waiting,
                    lent,
                )
        elif not blocked:
            for idle in [w for w in self.workers.values() if w.lent and w.payload is None]:
                if self._count(lent=True) <= self._count(blocked=True):
                    break
                self._retire_worker(idle, kill=True, respawn=False)  # idle: killing loses nothing

    def _dispatch(self) -> None:
        """Give idle workers the next queued call, and busy ones the next call of the job they run."""
        self._take_back_held()
        if not self.queue:
            return
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if not self.queue:
                return
            if not worker.calls:
                queued = self._next_nested() if worker.lent else self.queue.popleft()
                if queued is not None:
                    self._send(worker, queued)
                    worker.start_next(now)
        for worker in list(self.workers.values()):
            if not self.queue:
                return
            if (
                0 < len(worker.calls) < PREFETCH
                and not (worker.lent or worker.blocked)
                and self.queue[0].job is worker.calls[-1].job
            ):
                self._send(worker, self.queue.popleft())

    def _next_nested(self) -> QueuedCall | None:
        """Take the first queued call submitted from inside a call (the only ones lent workers run)."""
        for position, queued in enumerate(self.queue):
            if queued.job.nested:
                del self.queue[position]
                return queued
            if position >= 1000:  # nested calls are queued first: none further back
                break
        return None

    def _take_back_held(self) -> None:
        """Move calls held behind running ones to idle workers, when there are more idle workers than queued calls."""
        idle = sum(1 for w in self.workers.values() if not w.calls and not w.lent)
        if idle <= len(self.queue):
            return
        for worker in list(self.workers.values()):
            if idle <= len(self.queue):
                return
            if len(worker.calls) > 1 and worker.slot.take_back(worker.tickets[-1]):
                worker.tickets.pop()
                self.queue.appendleft(worker.calls.pop())

    def _send(self, worker: Worker, queued: QueuedCall) -> None:
        job_part = _SAME_JOB if worker.last_job is queued.job else queued.job.encoded
        worker.last_job = queued.job
        worker.last_ticket += 1
        worker.calls.append(queued)
        worker.tickets.append(worker.last_ticket)
        worker.conn.send_bytes(
            b"%d\n%s\n%s" % (worker.last_ticket, job_part, json.dumps(queued.call, separators=(",", ":")).encode())
        )

    def _requeue_held(self, worker: Worker) -> None:
        """Put the calls a retired worker held but never started back at the head of the queue."""
        held = list(worker.calls)[1:]
        worker.calls.clear()
        worker.tickets.clear()
        self.queue.extendleft(reversed(held))

    def _on_worker_message(self, worker: Worker) -> None:
        try:
            answer = worker.conn.recv_bytes()
        except (EOFError, OSError):
            payload = worker.payload
            self._requeue_held(worker)
            wait_status = self._retire_worker(worker, kill=False)
            if payload is not None:
                self.stats.crashed += 1
                how = _describe_exit(wait_status)
                self._record(
                    payload,
                    PyWrenError(
                        f"call {payload['call_id']} of job {payload['job_id']}: the worker process {how} "
                        f"(runtime_memory={payload.get('runtime_memory')} MB); the function may have exceeded its "
                        "memory or crashed the interpreter"
                    ),
                    worker.started,
                )
            return
        if answer in (BLOCKED, UNBLOCKED):
            self._on_blocked(worker, answer == BLOCKED)
            return
        worker.blocked = False
        if answer.startswith(UNRECORDED) and worker.calls:
            payload = worker.calls[0].payload()
            self.unrecorded[payload["activation_id"]] = (
                f"call {payload['call_id']} of job {payload['job_id']} could not record its status: "
                f"{answer[len(UNRECORDED) :].decode(errors='replace')}"
            )
            while len(self.unrecorded) > MAX_UNRECORDED:
                self.unrecorded.pop(next(iter(self.unrecorded)))
        if worker.calls:
            worker.calls.popleft()
            worker.tickets.popleft()
        worker.start_next(time.monotonic())
        self.stats.completed += 1
        self.last_activity = time.monotonic()
        if worker.lent and not worker.calls and self._count(lent=True) > self._count(blocked=True):
            self._retire_worker(worker, kill=True, respawn=False)  # idle, and no call waits for it any more

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.calls and now >= worker.deadline:
                payload = worker.calls[0].payload()
                self._requeue_held(worker)
                self._retire_worker(worker, kill=True)
                self.stats.killed += 1
                self._record(
                    payload,
                    ActivationTimeoutError(
                        f"call {payload['call_id']} of job {payload['job_id']} exceeded its timeout of "
                        f"{payload.get('timeout')} s and was killed"
                    ),
                    worker.started,
                )

    def _record(self, payload: dict[str, Any], exc: BaseException, started_monotonic: float) -> None:
        """Record a call the worker could not finish, unless it already wrote its status."""
        try:
            storage = handler.storage_for(payload["storage"])
            if (
                call_store_for(storage).read_status(payload["executor_id"], payload["job_id"], payload["call_id"])
                is not None
            ):
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
            nested = bool(request.get("nested"))
            queued_job = QueuedJob(job, json.dumps(job, separators=(",", ":")).encode(), nested)
            first = self.sequence + 1
            runner_pid = os.getpid()
            queued = []
            for call in _calls_of(request):
                self.sequence += 1
                call["activation_id"] = f"local-{runner_pid}-{self.sequence}"
                queued.append(QueuedCall(queued_job, call))
            if nested:  # a running call waits for these: they go first
                self.queue.extendleft(reversed(queued))
            else:
                self.queue.extend(queued)
            count = self.sequence - first + 1
            self.stats.invoked += count
            return {"ok": True, "activation_prefix": f"local-{runner_pid}-", "first_sequence": first, "count": count}
        if op == "cancel":
            return {"ok": True, "cancelled": self._cancel(request["executor_id"], request.get("job_id"))}
        if op == "stats":
            busy = sum(1 for w in self.workers.values() if w.calls)
            held = sum(len(w.calls) - 1 for w in self.workers.values() if w.calls)
            return {
                "ok": True,
                "pid": os.getpid(),
                "workers": self.worker_count,
                "queued": len(self.queue) + held,
                "running": busy,
                "waiting": self._count(blocked=True),
                "lent": self._count(lent=True),
                **self.stats.__dict__,
            }
        if op == "held":
            return {"ok": True, "call_ids": self._held(request["executor_id"], request["job_id"], request["call_ids"])}
        if op == "lost":
            wanted = request.get("activation_ids") or []
            return {"ok": True, "lost": {aid: self.unrecorded[aid] for aid in wanted if aid in self.unrecorded}}
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "shutdown":
            self.accepting = False  # calls already accepted still run (see serve)
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _held(self, executor_id: str, job_id: str, call_ids: list[str]) -> list[str]:
        """Of these calls of a job, those queued here or held by a worker (running, or next)."""
        wanted = set(call_ids)
        held: list[str] = []
        queued = itertools.chain(self.queue, (q for w in self.workers.values() for q in w.calls))
        for call in queued:
            fields = call.job.fields
            if fields["executor_id"] == executor_id and fields["job_id"] == job_id and call.call["call_id"] in wanted:
                held.append(call.call["call_id"])
        return held

    def _cancel(self, executor_id: str, job_id: str | None) -> int:
        def matches(queued: QueuedCall) -> bool:
            fields = queued.job.fields
            return fields["executor_id"] == executor_id and (job_id is None or fields["job_id"] == job_id)

        dropped = [q for q in self.queue if matches(q)]
        self.queue = collections.deque(q for q in self.queue if not matches(q))
        for worker in list(self.workers.values()):
            if worker.calls and matches(worker.calls[0]):
                dropped.extend(worker.calls)  # the call it holds next is of the same job
                worker.calls.clear()
                worker.tickets.clear()
                self._retire_worker(worker, kill=True)
        for queued in dropped:
            payload = queued.payload()
            self._record(
                payload,
                CallCancelledError(f"call {payload['call_id']} of job {payload['job_id']} was cancelled"),
                time.monotonic(),
            )
        self.stats.cancelled += len(dropped)
        return len(dropped)

    # main loop ---------------------------------------------------------------
    def serve(self, listener: socket.socket) -> None:
        for _ in range(self.worker_count):
            self._spawn_worker()
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, ("listener", None))
        while self.accepting:
            busy = self._step(listener)
            if not busy and not self.queue and time.monotonic() - self.last_activity > self.idle_timeout:
                logger.info("idle for %.0f s, exiting", self.idle_timeout)
                break
        self.stop_accepting(listener)
        if self.queue or any(w.calls for w in self.workers.values()):
            logger.info("stopping: %d queued call(s) and the running ones finish first", len(self.queue))
        while self.queue or any(w.calls for w in self.workers.values()):
            self._step(None)
        self.running = False

    def _step(self, listener: socket.socket | None) -> list[float]:
        """Dispatch, wait for one round of events, enforce timeouts; the deadlines of busy workers."""
        self._dispatch()
        busy = [w.deadline for w in self.workers.values() if w.calls]
        now = time.monotonic()
        wait = min([d - now for d in busy] + [self.idle_timeout, 1.0])
        for key, _ in self.selector.select(max(wait, 0.0)):
            kind, worker = key.data
            if kind == "listener" and listener is not None:
                self._on_request(listener)
            elif self.workers.get(key.fd) is worker and worker is not None:
                self._on_worker_message(worker)
        self._enforce_timeouts()
        return busy

    def stop_accepting(self, listener: socket.socket) -> None:
        """Take no more requests: connections waiting in the backlog are closed unread (their clients
        retry on a new runner), and a new runner may take the socket path at once."""
        self.accepting = False
        try:
            self.selector.unregister(listener)
        except (KeyError, ValueError):
            pass
        listener.close()
        if self.on_stop_accepting is not None:
            self.on_stop_accepting()
            self.on_stop_accepting = None

    def stop_workers(self) -> None:
        """Kill the pool (after the socket is gone, so no client reaches a runner that is stopping)."""
        self.running = False
        for worker in list(self.workers.values()):
            self._retire_worker(worker, kill=True)


def _calls_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls of an ``invoke`` request: ``call_ids`` with flat ``ranges`` and per-index ``extra`` fields."""
    if "calls" in request:
        return [dict(call) for call in request["calls"]]
    ranges, extra = request["ranges"], request.get("extra") or {}
    calls = []
    for index, call_id in enumerate(request["call_ids"]):
        call = {"call_id": call_id, "data_byte_range": [ranges[2 * index], ranges[2 * index + 1]]}
        if str(index) in extra:
            call.update(extra[str(index)])
        calls.append(call)
    return calls


def _describe_exit(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(wait_status)).name}"
    return f"exited with code {os.WEXITSTATUS(wait_status)}"


def serve(socket_path: str, workers: int, idle_timeout: float, max_extra_workers: int = 0) -> int:
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
    runner = Runner(socket_path, workers, idle_timeout, max_extra_workers)

    def release_socket() -> None:
        try:
            os.unlink(socket_path)
        except FileNotFoundError:
            pass
        fcntl.flock(lock, fcntl.LOCK_UN)  # workers share the lock's open file: unlock it for all of them
        lock.close()  # a new runner may start now

    runner.on_stop_accepting = release_socket
    try:
        runner.serve(listener)
    finally:
        runner.stop_accepting(listener)
        runner.stop_workers()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="airflow-pywren localhost runner")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=600)
    parser.add_argument("--max-extra-workers", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    return serve(args.socket, args.workers, args.idle_timeout, args.max_extra_workers)


if __name__ == "__main__":
    sys.exit(main())
