"""Servers the bench starts, all on 127.0.0.1, and stops at the end (also on error or Ctrl-C).

* S3 (moto) and the OpenWhisk-API test server each run in a child process
  (``python -m bench.services s3|openwhisk``) built from the test helpers in
  ``tests/services``, so that serving requests does not compete with the measured client
  for the GIL. A child prints one JSON line when it is ready, then answers JSON commands
  on stdin, one per line; it stops when stdin closes, so it never outlives the bench.
* RabbitMQ: a private broker node (``tests.services.rabbitmq.RabbitMQBroker``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0

logger = logging.getLogger(__name__)


class ServiceProcess:
    """A server in a child process: ``info`` is its ready line, ``command()`` sends one request."""

    def __init__(self, kind: str, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.log_path = workdir / f"{kind}.log"
        child_env = {**os.environ, **(env or {})}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.services", kind, "--workdir", str(workdir), *args],
                cwd=REPO_ROOT,
                env=child_env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._lock = threading.Lock()
        line = self._read_line(START_TIMEOUT)
        if not line:
            self.stop()
            raise RuntimeError(f"the {kind} server did not start; see {self.log_path}")
        self.info: dict[str, Any] = json.loads(line)

    def _read_line(self, timeout: float) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0] if result else ""

    def command(self, op: str, **params: Any) -> dict[str, Any]:
        with self._lock:
            self.process.stdin.write(json.dumps({"op": op, **params}) + "\n")
            self.process.stdin.flush()
            line = self._read_line(120)
        if not line:
            raise RuntimeError(f"the {self.kind} server did not answer {op!r}; see {self.log_path}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.kind} server failed {op!r}: {reply['error']}")
        return reply

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Services:
    """Starts each server on first use and stops them all in ``close()``."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="pywren-bench-services-"))
        self._s3: ServiceProcess | None = None
        self._openwhisk: ServiceProcess | None = None
        self._rabbitmq: Any = None

    def s3(self) -> ServiceProcess:
        """The moto S3 server; ``info["endpoint"]``; commands ``bucket``, ``record_start``, ``record_stop``."""
        if self._s3 is None:
            self._s3 = ServiceProcess("s3", self.workdir)
            logger.info("S3 (moto) server at %s", self._s3.info["endpoint"])
        return self._s3

    def openwhisk(self, containers: int = 4) -> ServiceProcess:
        """The OpenWhisk-API test server; ``info["ibm_cf"]``; commands ``inject``, ``reset``, ``stats``, ``wait_idle``."""
        if self._openwhisk is None:
            self._openwhisk = ServiceProcess("openwhisk", self.workdir, "--containers", str(containers))
            logger.info("OpenWhisk-API test server at %s", self._openwhisk.info["ibm_cf"]["endpoint"])
        return self._openwhisk

    def rabbitmq(self) -> Any:
        """A private RabbitMQ broker (``amqp_url``)."""
        if self._rabbitmq is None:
            from tests.services.rabbitmq import RabbitMQBroker, ensure_installed

            ensure_installed()
            broker = RabbitMQBroker(self.workdir / "rabbitmq")
            try:
                broker.start()
            except BaseException:
                broker.kill_epmd()
                raise
            self._rabbitmq = broker
            logger.info("RabbitMQ broker at 127.0.0.1:%d", broker.node_port)
        return self._rabbitmq

    def close(self) -> None:
        for service in (self._openwhisk, self._s3):
            if service is not None:
                service.stop()
        self._openwhisk = self._s3 = None
        if self._rabbitmq is not None:
            try:
                self._rabbitmq.stop()
            finally:
                self._rabbitmq.kill_epmd()
            self._rabbitmq = None
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------------ child side
def classify_s3(method: str, url: str) -> str:
    """PUT / GET / HEAD / LIST / DELETE / OTHER of one recorded S3 request (path-style URLs)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    has_key = len([p for p in parts.path.split("/") if p]) >= 2
    if method == "GET":
        return "GET" if has_key else ("LIST" if "delete" not in query else "OTHER")
    if method == "PUT":
        return "PUT" if has_key else "OTHER"
    if method == "DELETE" or (method == "POST" and "delete" in query):
        return "DELETE"
    if method == "HEAD":
        return "HEAD"
    return "OTHER"


def _serve_s3(workdir: Path) -> None:
    recording = workdir / "s3-recording.jsonl"
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    from moto.moto_api import recorder

    from tests.services.s3 import new_bucket, start_s3_server

    server, endpoint = start_s3_server()

    def handle(op: str, params: dict[str, Any]) -> dict[str, Any]:
        if op == "bucket":
            return {"bucket": new_bucket(endpoint, params.get("prefix", "pywren-bench"))}
        if op == "record_start":
            recorder.reset_recording()
            recorder.start_recording()
            return {}
        if op == "record_stop":
            recorder.stop_recording()
            counts: Counter[str] = Counter()
            if recording.exists():
                with open(recording) as lines:
                    for line in lines:
                        entry = json.loads(line)
                        counts[classify_s3(entry["method"], entry["url"])] += 1
            recorder.reset_recording()
            return {"counts": dict(counts)}
        if op == "record_stop_by_bucket":  # requests that touch one bucket; GETs with a Range header counted apart
            recorder.stop_recording()
            counts = Counter()
            if recording.exists():
                with open(recording) as lines:
                    for line in lines:
                        entry = json.loads(line)
                        path = urlsplit(entry["url"]).path.strip("/")
                        if path.split("/")[0] != params["bucket"]:
                            continue
                        kind = classify_s3(entry["method"], entry["url"])
                        counts[kind] += 1
                        headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
                        if kind == "GET" and "range" in headers:
                            counts["ranged_GET"] += 1
            recorder.reset_recording()
            return dict(counts)
        raise ValueError(f"unknown op {op!r}")

    _command_loop({"endpoint": endpoint}, handle)
    server.stop()


def _serve_openwhisk(workdir: Path, containers: int) -> None:
    from tests.services.openwhisk import OpenWhiskTestServer

    server = OpenWhiskTestServer(workdir / "openwhisk", containers=containers).start()

    def handle(op: str, params: dict[str, Any]) -> dict[str, Any]:
        if op == "inject":
            server.inject(int(params["status"]), int(params["count"]))
            return {}
        if op == "reset":
            server.reset_faults()
            server.reset_stats()
            return {}
        if op == "wait_idle":
            return {"idle": server.wait_idle(float(params.get("timeout", 120)))}
        if op == "stats":
            with server.lock:
                return {
                    "attempts": sum(server.attempts.values()),
                    "accepted": len(server.invocations),
                    "answers": {str(k): v for k, v in server.answers.items()},
                    "max_in_flight": server.max_in_flight,
                    "connections": len(server.connections),
                    "containers_started": server.pool.started,
                    "faults_left": len(server.faults),
                }
        raise ValueError(f"unknown op {op!r}")

    try:
        _command_loop({"ibm_cf": server.settings()}, handle)
    finally:
        server.stop()


def _command_loop(ready: dict[str, Any], handle: Any) -> None:
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            reply = handle(request.pop("op"), request)
        except Exception as exc:  # reported to the bench, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="a bench server in a child process (stops when stdin closes)")
    parser.add_argument("kind", choices=("s3", "openwhisk"))
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--containers", type=int, default=4)
    args = parser.parse_args(argv)
    from tests.services.processes import die_with_parent

    die_with_parent()  # SIGKILL when the bench process dies, whatever the way
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(args.workdir)
    if args.kind == "s3":
        _serve_s3(workdir)
    else:
        _serve_openwhisk(workdir, args.containers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
