"""PyWrenJobSensor: argument handling, then real DAG runs (dag.test()) in poke, reschedule and deferrable mode.

The upstream task of each DAG submits a job with the executor itself and returns its
``job_reference(...)``. Its calls wait for a gate file; the test opens the gate after
the first poll that saw the job unfinished (an instrumented ``JobWatcher.poll``), so
every run really waits for the job before it succeeds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.compat import AirflowException
from airflow_pywren.executor.jobs import JobWatcher
from airflow_pywren.sensors.pywren import AirflowFailException, AirflowSensorTimeout, PyWrenJobSensor, parse_job_ref
from tests.airflow.conftest import AirflowHome, DagResult, connection_json
from tests.conftest import merge_config

pytestmark = pytest.mark.airflow

REF = {
    "executor_id": "e1",
    "kind": "map",
    "job_ids": ["M000"],
    "result_job_id": "M000",
    "result_keys": ["k"],
    "total": 1,
}


# ------------------------------------------------------------------ arguments
def test_job_ref_is_templated_and_checked() -> None:
    assert "job_ref" in PyWrenJobSensor.template_fields
    assert "pywren_conn_id" in PyWrenJobSensor.template_fields
    with pytest.raises(ValueError, match="monitor must be one of storage, rabbitmq, got 'sqs'"):
        PyWrenJobSensor(task_id="s", job_ref=REF, monitor="sqs")


@pytest.mark.parametrize("rendered", [REF, json.dumps(REF), repr(REF), f"  {REF!r}\n"])
def test_parse_job_ref_accepts_dicts_and_rendered_text(rendered: Any) -> None:
    assert parse_job_ref(rendered) == REF


@pytest.mark.parametrize(
    ("rendered", "message"),
    [
        ("None", "job_ref must be the job reference dict"),
        ("", "job_ref rendered to text that is not a job reference"),
        ("{{ ti.xcom_pull", "job_ref rendered to text that is not a job reference"),
        ({"kind": "map"}, "job_ref lacks executor_id, job_ids"),
    ],
)
def test_parse_job_ref_names_what_is_wrong(rendered: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_job_ref(rendered)


def test_execute_complete_turns_events_into_results_or_failures() -> None:
    sensor = PyWrenJobSensor(task_id="s", job_ref=REF)
    progress = {"kind": "map", "job_ids": ["M000"], "total": 1, "done": 1, "failed": 0, "status": "success"}
    done = {**REF, "status": "success", "done": 1, "failed": 0}
    assert (
        sensor.execute_complete({}, {"status": "success", "job_ref": done, "progress": progress, "message": "ok"})
        == done
    )
    with pytest.raises(AirflowSensorTimeout, match="did not finish"):
        sensor.execute_complete(
            {}, {"status": "timeout", "job_ref": REF, "progress": {"failed": 0}, "message": "did not finish"}
        )
    with pytest.raises(AirflowFailException, match="1 of 1 call"):  # failed calls: a retry cannot help
        sensor.execute_complete(
            {}, {"status": "error", "job_ref": REF, "progress": {"failed": 1}, "message": "1 of 1 call"}
        )
    with pytest.raises(AirflowException, match="cannot follow") as info:  # e.g. storage unreachable: retries may help
        sensor.execute_complete(
            {}, {"status": "error", "job_ref": REF, "progress": {"failed": 0}, "message": "cannot follow"}
        )
    assert not isinstance(info.value, AirflowFailException)


# ------------------------------------------------------------------- DAG runs
DAG_TEMPLATE = '''
import json
import os
import time
from datetime import datetime

from airflow.sdk import dag, task

from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.jobs import job_reference
from airflow_pywren.sensors.pywren import PyWrenJobSensor

CONFIG = json.loads({config!r})
GATE = {gate!r}
FAIL = {fail!r}


def work(item):
    """Wait for the gate file, then return index * 10 (or fail)."""
    index, gate, fail = item
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    if fail:
        raise ValueError(f"call {{index}} refused its input")
    return index * 10


@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def sensor_dag():
    @task
    def submit():
        with FunctionExecutor(config=CONFIG) as executor:
            futures = executor.map(work, [[i, GATE, i in FAIL] for i in range({calls})])
            return job_reference(executor, "map", futures)

    ref = submit()
    PyWrenJobSensor(
        task_id="wait",
        job_ref={job_ref},
        pywren_conn_id={conn_id!r},
        monitor={monitor!r},
        mode={mode!r},
        deferrable={deferrable!r},
        poke_interval=0.2,
        timeout=300,
        retries=1,
        retry_delay=0,
    )


sensor_dag()
'''


class PollLog:
    """Records every ``JobWatcher.poll`` in this process and opens the gate after the first unfinished one."""

    def __init__(self, gate: Path) -> None:
        self.gate = gate
        self.polls: list[dict[str, Any]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = JobWatcher.poll
        log = self

        def poll(watcher: JobWatcher) -> Any:
            progress = original(watcher)
            log.polls.append(
                {
                    "thread": threading.current_thread().name,
                    "monitor": type(watcher.executor.job_monitor).__name__,
                    "done": progress.done,
                    "finished": progress.finished,
                }
            )
            if not progress.finished:
                log.gate.touch()
            return progress

        monkeypatch.setattr(JobWatcher, "poll", poll)

    def in_trigger(self) -> list[dict[str, Any]]:
        return [p for p in self.polls if p["thread"].startswith("pywren-trigger")]


@pytest.fixture
def poll_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PollLog]:
    log = PollLog(tmp_path / "gate")
    log.install(monkeypatch)
    yield log
    log.gate.touch()  # never leave calls waiting


def run_sensor_dag(
    airflow_home: AirflowHome,
    dag_id: str,
    config: dict[str, Any],
    gate: Path,
    *,
    mode: str = "poke",
    deferrable: bool = False,
    monitor: str = "storage",
    conn_id: str = "pywren_default",
    fail: tuple[int, ...] = (),
    calls: int = 3,
    templated: bool = False,
) -> DagResult:
    job_ref = "\"{{ ti.xcom_pull(task_ids='submit') }}\"" if templated else "ref"
    source = DAG_TEMPLATE.format(
        config=json.dumps(config),
        gate=str(gate),
        fail=list(fail),
        dag_id=dag_id,
        calls=calls,
        job_ref=job_ref,
        conn_id=conn_id,
        monitor=monitor,
        mode=mode,
        deferrable=deferrable,
    )
    return airflow_home.write_and_run(dag_id, source)


def lingering_threads(*prefixes: str) -> list[str]:
    """Threads of this process with one of these name prefixes still alive after 10 s of waiting."""
    threads = [t for t in threading.enumerate() if t.name.startswith(prefixes)]
    for thread in threads:
        thread.join(10)
    return [t.name for t in threads if t.is_alive()]


def reschedules(result: DagResult, task_id: str) -> int:
    """How many times the task was rescheduled in this run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=result.dag_id, run_id=result.run_id, task_id=task_id).one()
        return session.query(TaskReschedule).filter(TaskReschedule.ti_id == ti.id).count()


def assert_waited_and_succeeded(result: DagResult, poll_log: PollLog, calls: int = 3) -> dict[str, Any]:
    assert result.state == "success", result.task_states
    assert result.task_states == {"submit": "success", "wait": "success"}
    assert poll_log.polls[0]["finished"] is False  # the sensor saw the job running...
    assert poll_log.polls[-1]["finished"] is True and poll_log.polls[-1]["done"] == calls  # ...and then finished
    ref = result.xcom("wait")
    submitted = result.xcom("submit")
    assert ref == {**submitted, "status": "success", "done": calls, "failed": 0}
    return ref


@pytest.mark.parametrize("templated", [False, True], ids=["xcomarg", "template"])
def test_poke_mode_waits_for_the_job(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], poll_log: PollLog, templated: bool
) -> None:
    dag_id = f"sensor_poke_{'template' if templated else 'xcomarg'}"
    result = run_sensor_dag(airflow_home, dag_id, pywren_conn, poll_log.gate, templated=templated)
    assert_waited_and_succeeded(result, poll_log)
    assert len(poll_log.polls) >= 2 and not poll_log.in_trigger()
    assert {p["monitor"] for p in poll_log.polls} == {"StorageMonitor"}
    assert reschedules(result, "wait") == 0


def test_reschedule_mode_frees_the_slot_between_pokes(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], poll_log: PollLog
) -> None:
    result = run_sensor_dag(airflow_home, "sensor_reschedule", pywren_conn, poll_log.gate, mode="reschedule")
    assert_waited_and_succeeded(result, poll_log)
    assert reschedules(result, "wait") >= 1
    assert result.try_numbers["wait"] == 1  # rescheduled, not retried
    assert not poll_log.in_trigger()


def test_deferrable_mode_waits_in_the_trigger(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], poll_log: PollLog, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_sensor_dag(airflow_home, "sensor_deferrable", pywren_conn, poll_log.gate, deferrable=True)
    assert_waited_and_succeeded(result, poll_log)
    assert poll_log.polls[0]["thread"] == threading.current_thread().name  # one check in the task, then defer
    assert poll_log.in_trigger() and poll_log.in_trigger()[-1]["finished"]  # the trigger saw it finish
    assert lingering_threads("pywren-trigger") == []
    out = capfd.readouterr().out
    assert "deferring to PyWrenJobTrigger (storage monitoring, every 0.2 s)" in out
    assert "map job M000: 3/3 done, 0 failed" in out


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_failed_calls_fail_the_sensor_with_type_message_traceback_and_count(
    airflow_home: AirflowHome,
    pywren_conn: dict[str, Any],
    poll_log: PollLog,
    capfd: pytest.CaptureFixture[str],
    deferrable: bool,
) -> None:
    dag_id = f"sensor_fails_{'deferrable' if deferrable else 'poke'}"
    result = run_sensor_dag(airflow_home, dag_id, pywren_conn, poll_log.gate, deferrable=deferrable, fail=(0, 2))
    assert result.state == "failed"
    assert result.task_states == {"submit": "success", "wait": "failed"}
    assert result.try_numbers["wait"] == 1  # failed calls are final: no retry although retries=1
    assert bool(poll_log.in_trigger()) is deferrable
    out = capfd.readouterr().out
    assert "2 of 3 call(s) of map job M000 failed." in out
    assert "First failure: job M000 call 00000: ValueError: call 0 refused its input" in out
    assert "Also failed: job M000 call 00002: ValueError: call 2 refused its input" in out
    assert "Remote traceback:" in out and ", in work" in out


# ------------------------------------------------------------------- RabbitMQ
@pytest.fixture
def rabbit_conn(monkeypatch: pytest.MonkeyPatch, pywren_conn: dict[str, Any], rabbitmq_config: dict[str, Any]):
    """Connection ``pywren_rabbitmq``: the localhost backends plus the session's broker."""
    config = merge_config(pywren_conn, rabbitmq_config)
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_RABBITMQ", connection_json(config))
    return config


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    ("mode", "deferrable"),
    [("poke", False), ("reschedule", False), ("poke", True)],
    ids=["poke", "reschedule", "deferrable"],
)
def test_rabbitmq_monitoring_in_every_mode(
    airflow_home: AirflowHome, rabbit_conn: dict[str, Any], poll_log: PollLog, mode: str, deferrable: bool
) -> None:
    dag_id = f"sensor_rabbitmq_{mode}_{'deferrable' if deferrable else 'sync'}"
    result = run_sensor_dag(
        airflow_home,
        dag_id,
        rabbit_conn,
        poll_log.gate,
        mode=mode,
        deferrable=deferrable,
        monitor="rabbitmq",
        conn_id="pywren_rabbitmq",
    )
    assert_waited_and_succeeded(result, poll_log)
    assert {p["monitor"] for p in poll_log.polls} == {"RabbitMQMonitor"}
    assert bool(poll_log.in_trigger()) is deferrable
    if mode == "reschedule":
        assert reschedules(result, "wait") >= 1
    assert lingering_threads("pywren-rabbitmq", "pywren-trigger") == []  # every broker connection was closed


# ------------------------------------------------------- upstream PyWren operator
OPERATOR_DAG = """
import os
import time
from datetime import datetime

from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenMapOperator
from airflow_pywren.sensors.pywren import PyWrenJobSensor

GATE = {gate!r}


def square(x):
    deadline = time.monotonic() + 120
    while not os.path.exists(GATE) and time.monotonic() < deadline:
        time.sleep(0.02)
    return x * x


@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def operator_dag():
    mapped = PyWrenMapOperator(
        task_id="map", map_function=square, iterdata=[1, 2, 3, 4], pywren_conn_id="pywren_ops",
        wait_for_completion=False,
    )
    waited = PyWrenJobSensor(task_id="wait", job_ref=mapped.output, deferrable=True, poke_interval=0.2)

    @task
    def results(ref):
        return PyWrenHook(ref["pywren_conn_id"]).get_results(ref)

    results(waited.output)


operator_dag()
"""


def test_sensor_follows_a_map_operator_that_does_not_wait(
    airflow_home: AirflowHome, localhost_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, poll_log: PollLog
) -> None:
    """The sensor takes the connection from the job reference (``pywren_default`` is not defined here)."""
    monkeypatch.delenv("AIRFLOW_CONN_PYWREN_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_OPS", connection_json(localhost_config))
    source = OPERATOR_DAG.format(gate=str(poll_log.gate), dag_id="sensor_after_map_operator")
    result = airflow_home.write_and_run("sensor_after_map_operator", source)
    assert result.task_states == {"map": "success", "wait": "success", "results": "success"}
    submitted = result.xcom("map")
    assert submitted["status"] == "submitted" and submitted["pywren_conn_id"] == "pywren_ops"
    assert result.xcom("wait") == {**submitted, "status": "success", "done": 4, "failed": 0}
    assert result.xcom("results") == [1, 4, 9, 16]
    assert poll_log.polls[0]["finished"] is False and poll_log.in_trigger()
