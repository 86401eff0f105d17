"""An Airflow retry of a task whose process was killed while it invoked its map: exactly the missing calls run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.operators.pywren import executor_id_for
from tests.airflow.conftest import AIRFLOW_BIN, AIRFLOW_ENV, REPO_ROOT, AirflowHome, connection_json, runner_stats
from tests.airflow.test_operators_retry import _latest_run_id, _output

pytestmark = pytest.mark.airflow

PARTLY_INVOKED_DAG = """
import os
import time

from airflow_pywren.executor.compute.localhost import LocalhostCompute

_invoke = LocalhostCompute.invoke


def invoke_in_batches_of_three(self, job, calls):
    if os.path.exists({stall!r}) and int(calls[0]["call_id"]) >= 6:  # the third batch: stall until killed
        open({stalled!r}, "w").close()
        time.sleep(3600)
    return _invoke(self, job, calls)


if os.environ.get("PYWREN_TEST_PARTLY_INVOKED"):  # only in this test's Airflow processes, never in a DagBag elsewhere
    LocalhostCompute.invoke = invoke_in_batches_of_three
    LocalhostCompute.invoke_batch = lambda self, calls: 3


def record_run(x):
    open(os.path.join({runs!r}, f"{{x}}-{{time.time_ns()}}"), "w").close()
    return 10 * x


@dag(dag_id="retry_partly_invoked", schedule=None, start_date=START, catchup=False)
def partly_invoked():
    PyWrenMapOperator(task_id="work", map_function=record_run, iterdata=list(range(12)), return_results=True,
                      poll_interval=0.05)


partly_invoked()
"""


def test_a_retry_invokes_exactly_the_calls_a_killed_try_never_invoked(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prefix = f"partly-{uuid.uuid4().hex[:8]}"
    config = {
        **pywren_conn,
        "pywren": {**pywren_conn.get("pywren", {}), "invocation_grace": 1},
        "localhost": {**pywren_conn["localhost"], "storage_prefix": prefix},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_DEFAULT", connection_json(config))
    stall, stalled, runs = tmp_path / "stall", tmp_path / "stalled", tmp_path / "runs"
    stall.touch()
    runs.mkdir()
    dag_file = airflow_home.write_dag(
        "retry_partly_invoked",
        PARTLY_INVOKED_DAG.format(stall=str(stall), stalled=str(stalled), runs=str(runs)),
        header=True,
    )
    before = runner_stats(config).get("invoked", 0)
    first = subprocess.Popen(
        [AIRFLOW_BIN, "dags", "test", "retry_partly_invoked"],
        env={**os.environ, **AIRFLOW_ENV, "PYTHONPATH": str(REPO_ROOT), "PYWREN_TEST_PARTLY_INVOKED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not stalled.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stalled.exists(), f"the task did not reach its third batch:\n{_output(first)}"
        first.send_signal(signal.SIGKILL)  # killed while invoking: 6 of 12 calls invoked
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert runner_stats(config)["invoked"] - before == 6
    stall.unlink()

    run_id = _latest_run_id("retry_partly_invoked")
    try:
        again = airflow_home.cli(
            "tasks", "test", "retry_partly_invoked", "work", run_id, env={"PYWREN_TEST_PARTLY_INVOKED": "1"}
        )
    finally:
        dag_file.unlink()
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    executor_id = executor_id_for("retry_partly_invoked", run_id, "work", -1)
    assert "the earlier try stopped while invoking map job M000: invoked the 6 call(s) it never invoked" in output
    assert f"re-attached to map job M000 of executor {executor_id}" in output
    assert runner_stats(config)["invoked"] - before == 12  # the missing six, once
    assert Counter(int(name.split("-")[0]) for name in os.listdir(runs)) == Counter(range(12))
