"""Idempotent retries: a task instance re-attaches to its earlier try's job instead of invoking again.

The localhost runner counts every activation it receives (``stats()["invoked"]``): a
re-attached retry must not change that count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.operators.pywren import executor_id_for
from tests.airflow.conftest import AIRFLOW_BIN, AIRFLOW_ENV, REPO_ROOT, AirflowHome, connection_json, runner_stats
from tests.conftest import stored_status

pytestmark = pytest.mark.airflow

OPERATOR_CALLS = {
    # operator, arguments, activations per submission, expected results
    "call_async": ("PyWrenCallAsyncOperator", "func=double, data=21", 1, [42]),
    "map": ("PyWrenMapOperator", "map_function=double, iterdata=[1, 2, 3]", 3, [2, 4, 6]),
    "map_reduce": ("PyWrenMapReduceOperator", "map_function=double, iterdata=[1, 2, 3], reduce_function=sum", 4, [12]),
}

LOST_WORKER_DAG = """
import datetime

class WorkerLost(Exception):
    pass

def double(x):
    return 2 * x

class LosesWorkerOnFirstTry({operator}):
    \"\"\"Dies right after submitting on its first try, as a task whose worker was lost would.\"\"\"

    def execute(self, context):
        self.first_try = context["ti"].try_number == 1
        return super().execute(context)

    def wait_for_job(self, watcher):
        if self.first_try:
            raise WorkerLost("worker lost after submitting")
        return super().wait_for_job(watcher)

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False,
     default_args={{"retries": 1, "retry_delay": datetime.timedelta(0)}})
def lost_worker():
    LosesWorkerOnFirstTry(task_id="work", {arguments}, reattach={reattach}, return_results=True, poll_interval=0.05)

lost_worker()
"""


@pytest.mark.parametrize("kind", list(OPERATOR_CALLS))
def test_retry_after_lost_worker_reattaches_without_invoking_again(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture, kind: str
) -> None:
    operator, arguments, activations, expected = OPERATOR_CALLS[kind]
    dag_id = f"retry_lost_{kind}"
    before = runner_stats(pywren_conn).get("invoked", 0)

    result = airflow_home.write_and_run(
        dag_id,
        LOST_WORKER_DAG.format(dag_id=dag_id, operator=operator, arguments=arguments, reattach=True),
        header=True,
    )
    out = capfd.readouterr().out

    assert result.state == "success", out[-3000:]
    assert result.try_numbers == {"work": 2}
    assert "WorkerLost: worker lost after submitting" in out
    # the second try found the first try's job in storage and invoked nothing
    assert runner_stats(pywren_conn)["invoked"] - before == activations
    ref = result.xcom("work")
    first_jobs = ["M000", "R001"] if kind == "map_reduce" else ["A000" if kind == "call_async" else "M000"]
    assert ref["job_ids"] == first_jobs
    assert ref["executor_id"] == executor_id_for(dag_id, result.run_id, "work", -1)
    assert ref["results"] == expected
    assert f"re-attached to {kind} job {'+'.join(first_jobs)} of executor {ref['executor_id']}" in out


def test_deferrable_retry_after_lost_worker_reattaches(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """The first try dies between submitting and deferring; the second re-attaches and defers to the trigger."""
    gate = tmp_path / "gate"
    before = runner_stats(pywren_conn).get("invoked", 0)
    result = airflow_home.write_and_run(
        "retry_lost_deferrable",
        f"""
        import datetime, os, time

        class WorkerLost(Exception):
            pass

        def gated(x):
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.02)
            return x + 100

        class LosesWorkerBeforeDeferring(PyWrenMapOperator):
            def execute(self, context):
                self.first_try = context["ti"].try_number == 1
                return super().execute(context)

            def defer(self, **kwargs):
                if self.first_try:
                    raise WorkerLost("worker lost before deferring")
                open({str(gate)!r}, "w").close()  # the calls may finish once the second try follows them
                return super().defer(**kwargs)

        @dag(dag_id="retry_lost_deferrable", schedule=None, start_date=START, catchup=False,
             default_args={{"retries": 1, "retry_delay": datetime.timedelta(0)}})
        def lost_deferrable():
            LosesWorkerBeforeDeferring(task_id="work", map_function=gated, iterdata=[1, 2], deferrable=True,
                                       return_results=True, poll_interval=0.05)

        lost_deferrable()
    """,
        header=True,
    )
    gate.touch()
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.try_numbers == {"work": 2}
    assert "WorkerLost: worker lost before deferring" in out
    assert runner_stats(pywren_conn)["invoked"] - before == 2
    assert "re-attached to map job M000" in out and "deferring: the triggerer follows map job M000" in out
    assert result.xcom("work")["results"] == [101, 102]


def test_without_reattach_a_retry_submits_a_new_job(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    operator, arguments, activations, expected = OPERATOR_CALLS["map"]
    before = runner_stats(pywren_conn).get("invoked", 0)
    result = airflow_home.write_and_run(
        "retry_no_reattach",
        LOST_WORKER_DAG.format(dag_id="retry_no_reattach", operator=operator, arguments=arguments, reattach=False),
        header=True,
    )
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert runner_stats(pywren_conn)["invoked"] - before == 2 * activations
    ref = result.xcom("work")
    assert (ref["job_ids"], ref["results"]) == (["M001"], expected)
    assert "re-attached" not in out


FLAKY_DAG = """
import datetime
import os

def flaky(x):
    \"\"\"Fails for item 3 until the marker exists (the first attempt creates it).\"\"\"
    marker = {marker!r}
    if x == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient failure of item 3")
    return x * 10

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False,
     default_args={{"retries": 1, "retry_delay": datetime.timedelta(0)}})
def flaky_calls():
    {operator}(task_id="work", map_function=flaky, iterdata=[1, 2, 3, 4], {extra} return_results=True,
               poll_interval=0.05)

flaky_calls()
"""


@pytest.mark.parametrize("kind", ["map", "map_reduce"])
def test_retry_after_failed_calls_runs_every_call_again_as_a_new_job(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture, tmp_path: Path, kind: str
) -> None:
    dag_id = f"retry_flaky_{kind}"
    operator, extra = (
        ("PyWrenMapOperator", "") if kind == "map" else ("PyWrenMapReduceOperator", "reduce_function=sum,")
    )
    before = runner_stats(pywren_conn).get("invoked", 0)

    result = airflow_home.write_and_run(
        dag_id,
        FLAKY_DAG.format(dag_id=dag_id, marker=str(tmp_path / "failed-once"), operator=operator, extra=extra),
        header=True,
    )
    out = capfd.readouterr().out

    assert result.state == "success", out[-3000:]
    assert result.try_numbers == {"work": 2}
    assert "RuntimeError: transient failure of item 3" in out  # the first try failed with the call's error
    calls = 4 if kind == "map" else 5
    assert (
        f"finished with {1 if kind == 'map' else 2} failed call(s) of {calls}: running all {calls} call(s) again" in out
    )
    assert runner_stats(pywren_conn)["invoked"] - before == 2 * calls
    ref = result.xcom("work")
    assert ref["job_ids"] == (["M001"] if kind == "map" else ["M002", "R003"])
    assert ref["results"] == ([10, 20, 30, 40] if kind == "map" else [100])


KILLED_DAG = """
import os
import time

def gated_square(x):
    while not os.path.exists({gate!r}):
        time.sleep(0.02)
    return x * x

@dag(dag_id="retry_killed", schedule=None, start_date=START, catchup=False)
def killed():
    PyWrenMapReduceOperator(task_id="work", map_function=gated_square, iterdata=[1, 2, 3], reduce_function=sum,
                            return_results=True, poll_interval=0.05)

killed()
"""


def _latest_run_id(dag_id: str) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        assert run is not None, f"no run of {dag_id} in the database"
        return run.run_id


def test_killed_task_process_is_rerun_and_reattaches(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGKILL the process running the task after it submitted, run the task again: no new activation."""
    prefix = f"killed-{uuid.uuid4().hex[:8]}"  # a prefix of its own, to find this job's manifests
    config = {**pywren_conn, "localhost": {**pywren_conn["localhost"], "storage_prefix": prefix}}
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_DEFAULT", connection_json(config))
    gate = tmp_path / "gate"
    airflow_home.write_dag("retry_killed", KILLED_DAG.format(gate=str(gate)), header=True)
    before = runner_stats(config).get("invoked", 0)
    env = {**AIRFLOW_ENV, "PYTHONPATH": str(REPO_ROOT)}
    jobs_root = Path(config["localhost"]["storage_dir"]) / "pywren" / prefix
    first = subprocess.Popen(
        [AIRFLOW_BIN, "dags", "test", "retry_killed"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(jobs_root.glob("*/R001/job.json")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(jobs_root.glob("*/R001/job.json")), f"the job was not submitted:\n{_output(first)}"
        first.send_signal(signal.SIGKILL)  # the task dies while it waits; its calls keep running
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert runner_stats(config)["invoked"] - before == 4
    gate.touch()

    run_id = _latest_run_id("retry_killed")
    again = airflow_home.cli("tasks", "test", "retry_killed", "work", run_id)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    executor_id = executor_id_for("retry_killed", run_id, "work", -1)
    assert f"re-attached to map_reduce job M000+R001 of executor {executor_id}" in output
    assert "map_reduce job M000+R001 succeeded" in output
    assert runner_stats(config)["invoked"] - before == 4  # nothing invoked again
    assert [p.parent.name for p in sorted(jobs_root.glob(f"{executor_id}/*/job.json"))] == ["M000", "R001"]
    assert stored_status(config, executor_id, "R001", "00000")["status"] == "success"


def _output(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.kill()
    return (process.communicate(timeout=30)[0] or "")[-3000:]


RERUN_DAG = """
def double(x):
    return 2 * x

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False)
def rerun():
    PyWrenMapOperator(task_id="work", map_function=double, iterdata=[1, 2, 3], return_results=True,
                      deferrable={deferrable}, poll_interval=0.05)

rerun()
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_a_task_run_again_after_it_succeeded_submits_a_new_job(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch, deferrable: bool
) -> None:
    """A successful try marks its job; clearing or re-running the task then computes afresh."""
    prefix = f"rerun-{uuid.uuid4().hex[:8]}"
    config = {**pywren_conn, "localhost": {**pywren_conn["localhost"], "storage_prefix": prefix}}
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_DEFAULT", connection_json(config))
    dag_id = f"rerun_{'deferrable' if deferrable else 'blocking'}"
    before = runner_stats(config).get("invoked", 0)

    first = airflow_home.write_and_run(dag_id, RERUN_DAG.format(dag_id=dag_id, deferrable=deferrable), header=True)
    assert first.state == "success"
    executor_id = executor_id_for(dag_id, first.run_id, "work", -1)
    executor_dir = Path(config["localhost"]["storage_dir"]) / "pywren" / prefix / executor_id
    marker = json.loads((executor_dir / "M000" / "task_done.json").read_text())
    assert (marker["run_id"], marker["task_id"], marker["try_number"]) == (first.run_id, "work", 1)
    assert runner_stats(config)["invoked"] - before == 3

    again = airflow_home.cli("tasks", "test", dag_id, "work", first.run_id)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    assert f"map job M000 of executor {executor_id} already served a successful try" in output
    assert "re-attached" not in output
    assert runner_stats(config)["invoked"] - before == 6  # the three calls ran again, as job M001
    assert sorted(p.parent.name for p in executor_dir.glob("*/job.json")) == ["M000", "M001"]
    assert stored_status(config, executor_id, "M001", "00002")["status"] == "success"
