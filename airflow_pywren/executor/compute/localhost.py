"""Localhost compute: hands calls to the detached runner (:mod:`.localhost_runner`)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, overload

from airflow_pywren.executor import validation
from airflow_pywren.executor.call_env import clean_environment
from airflow_pywren.executor.compute.base import CallList, ComputeBackend, Invocation, PendingCall
from airflow_pywren.executor.compute.localhost_runner import recv_message, send_message
from airflow_pywren.executor.config import Config, Setting
from airflow_pywren.executor.errors import ComputeError
from airflow_pywren.executor.private_dirs import private_dir, user_temp_dir
from airflow_pywren.executor.worker import blocking

logger = logging.getLogger(__name__)

RUNNER_START_TIMEOUT = 30.0
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LocalhostCompute(ComputeBackend):
    """Runs calls in local worker processes owned by a runner that outlives this process."""

    name = "localhost"
    is_local = True
    settings_schema: ClassVar[dict[str, Setting]] = {
        "workers": Setting(
            (int,), _cpu_count(), "concurrent calls on this machine", minimum=1, maximum=validation.MAX_WORKERS
        ),
        "runner_dir": Setting((str,), "~/.pywren/runner", "directory of the runner's socket, lock and log"),
        "runner_idle_timeout": Setting(
            (int, float), 600, "seconds an idle runner waits before exiting", minimum=1, maximum=validation.MAX_TIMEOUT
        ),
        "max_extra_workers": Setting(
            (int,),
            32,
            "workers the runner may add while calls wait for calls they "
            "submitted (nested executors), one per waiting call",
            minimum=0,
        ),
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        settings = config["localhost"]
        self.workers: int = settings["workers"]
        self.idle_timeout: float = settings["runner_idle_timeout"]
        self.max_extra_workers: int = settings["max_extra_workers"]
        self.runner_dir = Path(os.path.expanduser(settings["runner_dir"]))
        self.socket_path = _socket_path(self.runner_dir, self.workers)
        self._runner_alive: dict[int, tuple[float, bool]] = {}
        self._live_runner: tuple[float, int | None] = (0.0, None)
        self._unrecorded_checked = 0.0

    def check(self) -> None:
        private_dir(self.runner_dir, "'localhost.runner_dir'")

    def request(self, message: dict[str, Any], start: bool = True) -> dict[str, Any]:
        """Send one request to the runner, starting it first if needed and ``start`` is set.

        A runner that stops accepting (idle, or told to stop) closes the connections it has not
        read: such a request goes to a new runner, once (the old one finishes its calls first).
        """
        try:
            return self._send(message)
        except (FileNotFoundError, ConnectionError):  # none, or one that stopped accepting
            if not start:
                raise
        self._start_runner()
        return self._send(message)

    def _send(self, message: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(self.socket_path)
            check_peer(sock, self.socket_path)
            send_message(sock, message)
            reply = recv_message(sock)
        if not reply.get("ok"):
            raise ComputeError(f"localhost runner refused {message.get('op')}: {reply.get('error')}")
        return reply

    def _start_runner(self) -> None:
        private_dir(self.runner_dir, "'localhost.runner_dir'")
        with open(os.open(self.runner_dir / "spawn.lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._send({"op": "ping"})
                return
            except (FileNotFoundError, ConnectionError):
                pass
            # where the socket is, for stop_runners() (long runner_dir paths put it under /tmp)
            _write_private(self.runner_dir / f"runner-{self.workers}w.addr", self.socket_path.encode())
            log_path = self.runner_dir / "runner.log"
            package_root = str(Path(__file__).resolve().parents[3])
            env = clean_environment()  # the runner outlives this process: none of its secrets go along
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
            with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "airflow_pywren.executor.compute.localhost_runner",
                        "--socket",
                        self.socket_path,
                        "--workers",
                        str(self.workers),
                        "--idle-timeout",
                        str(self.idle_timeout),
                        "--max-extra-workers",
                        str(self.max_extra_workers),
                    ],
                    cwd=self.runner_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    close_fds=True,
                )
            deadline = time.monotonic() + RUNNER_START_TIMEOUT
            while time.monotonic() < deadline:
                try:
                    self._send({"op": "ping"})
                    logger.debug("started localhost runner pid %s with %d workers", process.pid, self.workers)
                    return
                except (FileNotFoundError, ConnectionError):
                    if process.poll() is not None and not os.path.exists(self.socket_path):
                        break
                    time.sleep(0.005)
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise ComputeError(f"the localhost runner did not start (log {log_path}):\n{tail}")

    def invoke(self, job: dict[str, Any], calls: CallList) -> Sequence[Invocation]:
        extra: dict[str, dict[str, Any]] = {}
        if calls.reduce:
            for index, call in enumerate(calls):
                extra[str(index)] = {k: v for k, v in call.items() if k not in ("call_id", "data_byte_range")}
        call_ids = list(calls.call_ids)
        reply = self.request(
            {
                "op": "invoke",
                "job": job,
                "call_ids": call_ids,
                "ranges": calls.byte_ranges(),
                "extra": extra,
                "nested": blocking.inside_localhost_call(),
            }
        )
        return RunnerInvocations(call_ids, reply["activation_prefix"], reply["first_sequence"])

    def lost_activations(self, pending: Sequence[PendingCall]) -> dict[str, str]:
        """Calls whose runner (named in the id, ``local-{pid}-{n}``) is gone: queued ones, and
        started ones whose worker process is gone too (read from their start status)."""
        lost = self._unrecorded([c.activation_id for c in pending if _runner_pid(c.activation_id) == self._live_pid()])
        for call in pending:
            pid = _runner_pid(call.activation_id)
            if pid is None or self._runner_is_alive(pid):
                continue
            if call.started:
                call.load_start()
                if call.worker_pid is not None and _process_alive(call.worker_pid):
                    continue  # the worker outlived its runner and may still record the call
            where = f"running in worker process {call.worker_pid} of" if call.worker_pid else "queued in"
            lost[str(call.activation_id)] = (
                f"it was {where} the localhost runner (pid {pid}), which is gone; "
                "submit the call again (a new runner starts on demand)"
            )
        return lost

    def _live_pid(self) -> int | None:
        """The pid of the runner serving this socket (asked at most once a second), or None."""
        checked_at, pid = self._live_runner
        if time.monotonic() - checked_at > 1.0:
            try:
                pid = self.request({"op": "ping"}, start=False)["pid"]
            except (OSError, ComputeError):
                pid = None
            self._live_runner = (time.monotonic(), pid)
        return pid

    def _unrecorded(self, activation_ids: list[str | None]) -> dict[str, str]:
        """Of these activations of the live runner, those whose call could not write its status, with why."""
        wanted = [aid for aid in activation_ids if aid]
        if not wanted or time.monotonic() - self._unrecorded_checked < 1.0:
            return {}
        self._unrecorded_checked = time.monotonic()
        try:
            return self.request({"op": "lost", "activation_ids": wanted}, start=False).get("lost") or {}
        except (OSError, ComputeError):
            return {}

    def _runner_is_alive(self, pid: int) -> bool:
        """Whether runner ``pid`` runs, checked at most once a second however many calls ask."""
        checked_at, alive = self._runner_alive.get(pid, (0.0, True))
        if time.monotonic() - checked_at > 1.0:
            alive = _process_alive(pid)
            self._runner_alive[pid] = (time.monotonic(), alive)
        return alive

    def invoked_calls(self, executor_id: str, job_id: str, call_ids: Sequence[str]) -> set[str] | None:
        """The calls the runner serving this socket holds; None when it cannot be asked (a runner that
        stopped accepting may still be finishing calls it had queued)."""
        try:
            reply = self.request(
                {"op": "held", "executor_id": executor_id, "job_id": job_id, "call_ids": list(call_ids)}, start=False
            )
        except (OSError, ComputeError):
            return None
        return set(reply["call_ids"])

    def cancel(self, executor_id: str, job_id: str | None = None) -> int:
        try:
            return self.request({"op": "cancel", "executor_id": executor_id, "job_id": job_id}, start=False)[
                "cancelled"
            ]
        except (FileNotFoundError, ConnectionError):
            return 0

    def stats(self) -> dict[str, Any] | None:
        """The runner's counters (invoked, completed, killed, ...), or None when no runner is up."""
        try:
            return self.request({"op": "stats"}, start=False)
        except (FileNotFoundError, ConnectionError):
            return None

    def shutdown(self) -> bool:
        """Stop the runner (running calls are killed); False when none was running."""
        try:
            self.request({"op": "shutdown"}, start=False)
            return True
        except (FileNotFoundError, ConnectionError):
            return False


def _runner_pid(activation_id: str | None) -> int | None:
    """The runner's pid in a localhost activation id ``local-{pid}-{n}``, or None."""
    if not activation_id or not activation_id.startswith("local-"):
        return None
    try:
        return int(activation_id.split("-")[1])
    except (IndexError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, such as a killed runner this process started, is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def _socket_path(runner_dir: Path, workers: int) -> str:
    """The runner's socket: in ``runner_dir``, or (for long paths) in this user's private temp directory."""
    path = str(runner_dir.resolve() / f"runner-{workers}w.sock")
    if len(path) > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        path = str(user_temp_dir("runners") / f"{digest}.sock")
    return path


def check_peer(sock: socket.socket, path: str) -> None:
    """Refuse to talk to a process of another user at ``path`` (it would receive payloads with credentials)."""
    pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.geteuid():
        raise ComputeError(
            f"the localhost runner socket {path} is served by process {pid} of uid {uid}, not by this user "
            f"(uid {os.geteuid()}): refusing to send it anything; remove the socket or use another 'localhost.runner_dir'"
        )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as file:
        file.write(data)


def stop_runners(runner_dir: str | os.PathLike[str]) -> int:
    """Stop every localhost runner serving a socket in ``runner_dir``; return how many answered."""
    stopped = 0
    for address in Path(runner_dir).expanduser().glob("runner-*.addr"):
        path = address.read_text().strip()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(str(path))
                send_message(sock, {"op": "shutdown"})
                recv_message(sock)
                stopped += 1
        except OSError:
            pass
    return stopped


class RunnerInvocations(Sequence[Invocation]):
    """The runner's activation ids of invoked calls, ``<prefix><first + position>``, each made when read."""

    def __init__(self, call_ids: Sequence[str], prefix: str, first: int) -> None:
        self.call_ids, self.prefix, self.first = call_ids, prefix, first

    def __len__(self) -> int:
        return len(self.call_ids)

    @overload
    def __getitem__(self, position: int) -> Invocation: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[Invocation]: ...

    def __getitem__(self, position: int | slice) -> Invocation | Sequence[Invocation]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        return Invocation(self.call_ids[position], f"{self.prefix}{self.first + position}")

    def __iter__(self) -> Iterator[Invocation]:
        prefix, first = self.prefix, self.first
        for position, call_id in enumerate(self.call_ids):
            yield Invocation(call_id, f"{prefix}{first + position}")
