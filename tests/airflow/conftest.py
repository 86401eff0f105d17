"""Airflow test home: a private AIRFLOW_HOME with a SQLite database, and helpers to run DAGs.

Airflow reads its configuration when it is first imported, so the environment is set
when this module is imported (before any test module imports Airflow). The session
fixture ``airflow_home`` migrates the database once and hands out an :class:`AirflowHome`
that writes DAG files into the configured dags folder and runs them with ``dag.test()``
(in-process: task logs go to stdout, read them with ``capfd``) or with the ``airflow``
command line in a subprocess.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if "airflow" in sys.modules:  # pragma: no cover - guards against a wrong import order
    raise RuntimeError(
        "Airflow was imported before tests/airflow/conftest.py set AIRFLOW_HOME; do not import it earlier"
    )

_ROOT = Path(tempfile.mkdtemp(prefix="pywren-airflow-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)  # also when no test used the home
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(_ROOT / "home"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(_ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_ROOT / 'home' / 'airflow.db'}?timeout=60",  # see services/airflow.py
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
}
os.environ.update(AIRFLOW_ENV)
(_ROOT / "home").mkdir()
(_ROOT / "dags").mkdir()

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_HEADER = """\
import pendulum
from airflow.sdk import dag, task
from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenCallAsyncOperator, PyWrenMapOperator, PyWrenMapReduceOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
"""
"""Imports and a start date for test DAG files (``write_dag(..., header=True)``)."""
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
CONN_ENV = "AIRFLOW_CONN_PYWREN_DEFAULT"


def connection_json(config: dict[str, Any] | None = None, **extra: Any) -> str:
    """A ``pywren`` connection in Airflow's JSON form: the executor config under ``extra.config``."""
    payload: dict[str, Any] = {}
    if config is not None:
        payload["config"] = config
    payload.update(extra)
    return json.dumps({"conn_type": "pywren", "extra": payload})


def runner_stats(config: dict[str, Any]) -> dict[str, int]:
    """Counters of the localhost runner serving ``config`` (``invoked``, ``completed``, ``cancelled``, ...)."""
    from airflow_pywren.executor.compute.localhost import LocalhostCompute
    from airflow_pywren.executor.config import load_config

    stats = LocalhostCompute(load_config(config)).stats()
    return {key: value for key, value in (stats or {}).items() if isinstance(value, int)}


@dataclass
class DagResult:
    """The outcome of one ``dag.test()`` run."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)
    try_numbers: dict[str, int] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """The XCom value a task pushed in this run (None when absent)."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter(
                    XComModel.dag_id == self.dag_id,
                    XComModel.run_id == self.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                    XComModel.map_index == map_index,
                )
                .one_or_none()
            )
            return None if row is None else XComModel.deserialize_value(row)


class AirflowHome:
    """The session's Airflow home: write DAG files into its dags folder and run them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.dags_folder = root / "dags"

    def write_dag(self, dag_id: str, source: str, header: bool = False) -> Path:
        """Write ``source`` (dedented; after ``DAG_HEADER`` if ``header``) to ``<dags_folder>/<dag_id>.py``."""
        path = self.dags_folder / f"{dag_id}.py"
        path.write_text((DAG_HEADER if header else "") + textwrap.dedent(source))
        return path

    def load_dag(self, path: Path, dag_id: str | None = None) -> Any:
        """Parse one DAG file as Airflow does (mangled module name) and return the DAG."""
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(path))
        if bag.import_errors:
            raise AssertionError(f"import errors in {path}: {bag.import_errors}")
        dag_id = dag_id or path.stem
        if dag_id not in bag.dags:
            raise AssertionError(f"{path} defines no DAG {dag_id!r}; found {sorted(bag.dags)}")
        return bag.dags[dag_id]

    def run_dag(self, path: Path, dag_id: str | None = None, conf: dict[str, Any] | None = None) -> DagResult:
        """Run the DAG once with ``dag.test()`` (tasks run in this process, triggers inline)."""
        dag = self.load_dag(path, dag_id)
        dag_run = dag.test(run_conf=conf)
        tis = dag_run.get_task_instances()
        key = lambda ti: ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"  # noqa: E731
        return DagResult(
            dag_id=dag.dag_id,
            run_id=dag_run.run_id,
            state=str(getattr(dag_run.state, "value", dag_run.state)),
            task_states={key(ti): str(getattr(ti.state, "value", ti.state)) for ti in tis},
            try_numbers={key(ti): ti.try_number for ti in tis},
        )

    def write_and_run(
        self, dag_id: str, source: str, conf: dict[str, Any] | None = None, header: bool = False
    ) -> DagResult:
        """Write a DAG file (after ``DAG_HEADER`` if ``header``) and run it once."""
        return self.run_dag(self.write_dag(dag_id, source, header), dag_id, conf)

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``airflow <args>`` in a subprocess with this home (``env`` adds or overrides variables)."""
        full_env = {**os.environ, **AIRFLOW_ENV, **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH")) if p)
        return subprocess.run(
            [AIRFLOW_BIN, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )


class _CurrentStdout:
    """A text stream writing to whatever ``sys.stdout`` is at the time (pytest swaps it per test)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False


@pytest.fixture(scope="session")
def airflow_home() -> AirflowHome:
    """The session's Airflow home, with its SQLite database migrated.

    Airflow's logging (task logs included) is sent to the current ``sys.stdout``, so that
    ``capsys`` / ``capfd`` of each test see the task logs of the DAGs it runs.
    """
    home = AirflowHome(_ROOT)
    result = home.cli("db", "migrate")
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    import logging

    from airflow.sdk.log import configure_logging

    # Task logs (structlog) and Airflow's own stdlib loggers follow the current stdout; other stdlib
    # loggers (e.g. the executor's, outside tasks) keep the handlers they had.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(output=_CurrentStdout(), colored_console_log=False)
    following = [h for h in root.handlers if h not in handlers]
    root.handlers[:], root.level = handlers, level
    for handler in following:
        logging.getLogger("airflow").addHandler(handler)
    yield home


@pytest.fixture
def pywren_conn(monkeypatch: pytest.MonkeyPatch, localhost_config: dict[str, Any]) -> dict[str, Any]:
    """Define ``pywren_default`` (env var connection) holding ``localhost_config``; return that config."""
    monkeypatch.setenv(CONN_ENV, connection_json(localhost_config))
    return localhost_config
