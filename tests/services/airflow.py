"""A small running Airflow: API server, scheduler (LocalExecutor) and triggerer, for tests and the bench.

Private AIRFLOW_HOME with SQLite, every server on 127.0.0.1 (the components' log servers are
skipped: they would listen on every interface). The DAGs are serialized once with
``airflow dags reserialize`` instead of running a DAG processor. Each component runs in a
process group of its own and is stopped with its children.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.services.processes import free_port

AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def private_airflow_env(home: Path, dags_folder: Path, db: Path, connections: dict[str, Any]) -> dict[str, str]:
    """This process's environment without Airflow or PyWren settings, plus a private Airflow home.

    SQLite at ``db``, no example DAGs, this repository importable, and ``connections``
    (``{conn_id: connection as a dict}``) as ``AIRFLOW_CONN_*`` variables.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYWREN_CONFIG"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # an API server, a scheduler, a triggerer and task processes share one SQLite file: a writer waits up to
            # 60 s for the lock (SQLite's default, 5 s, fails tasks with "database is locked" on a busy machine)
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}?timeout=60",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(p for p in (_repo_path(), os.environ.get("PYTHONPATH")) if p),
            **{f"AIRFLOW_CONN_{name.upper()}": json.dumps(value) for name, value in connections.items()},
        }
    )
    return env


def _repo_path() -> str:
    """This checkout, for PYTHONPATH, unless the package is installed (an editable install already points here,
    and a second copy of its metadata on the path would register the Airflow plugin twice)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("airflow-pywren")
    except PackageNotFoundError:
        return str(REPO_ROOT)
    return ""


class AirflowDeployment:
    """Start with :meth:`start`, stop with :meth:`stop` (also on errors: use it as a context manager)."""

    def __init__(
        self,
        root: Path,
        dags_folder: Path,
        connections: dict[str, Any],
        parallelism: int = 16,
        extra_env: dict[str, str] | None = None,
        apps: str = "execution",
    ) -> None:
        self.root = root
        self.apps = apps
        """The API server's apps: ``execution`` (tasks only), or ``all`` for the UI and REST API too."""
        self.db = root / "airflow.db"
        self.port = free_port()
        env = private_airflow_env(root, dags_folder, self.db, connections)
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                **(extra_env or {}),
            }
        )
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}

    # ----------------------------------------------------------- life cycle
    def __enter__(self) -> AirflowDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow <args>`` to completion; its output (raises on failure)."""
        done = subprocess.run(
            [AIRFLOW_BIN, *args],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}"
            )
        return done.stdout

    def start(self, timeout: float = 120) -> None:
        """Migrate the database, serialize the DAGs, start the components; return once the API answers."""
        self.cli("db", "migrate")
        self.cli("dags", "reserialize")
        self._spawn("api-server", "api-server", "--apps", self.apps)
        self._spawn("scheduler", "scheduler", "--skip-serve-logs")
        self._spawn("triggerer", "triggerer", "--skip-serve-logs")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/execution/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the API server did not answer within {timeout:g} s; see {self.root / 'api-server.log'}")

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process is stopped
        self.processes[name] = subprocess.Popen(
            [AIRFLOW_BIN, *args],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after 20 s."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process.pid, signal.SIGKILL)  # children left behind, if any
            if process.poll() is None:
                process.wait()
        self.processes.clear()

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    # ------------------------------------------------------------- the API
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def password(self, username: str) -> str:
        """The simple auth manager's generated password of ``username``."""
        passwords = json.loads((self.root / "simple_auth_manager_passwords.json.generated").read_text())
        return passwords[username]

    def token(self, username: str) -> str:
        """A JWT for ``username`` from ``POST /auth/token``."""
        status, body = self.request("POST", "/auth/token", {"username": username, "password": self.password(username)})
        if status not in (200, 201):
            raise RuntimeError(f"no token for {username}: {status} {body}")
        return body["access_token"]

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One HTTP request to the API server: ``(status, decoded JSON or text)``."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    # ------------------------------------------------------------- queries
    def query(self, sql: str, *params: Any) -> list[tuple]:
        """Read the metadata database (read-only)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def wait_for(self, sql: str, predicate: Any, timeout: float, every: float = 0.5) -> Any:
        """Poll ``sql`` until ``predicate(rows)`` is true; the rows (raises on timeout or a dead component)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            rows = self.query(sql)
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"not reached within {timeout:g} s: {sql} -> {rows}")
            time.sleep(every)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
