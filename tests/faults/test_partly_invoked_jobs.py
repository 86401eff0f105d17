"""A job stored but not fully invoked: the submitting process is killed while it invokes the calls.

A real client process submits a 12-call map in batches of 3 and is SIGKILLed while it
invokes the third batch: before sending it, or after the runner accepted it. A process
attaching to the job then reports the calls it never invoked as failed, within a bounded
time; ``invoke_missing`` (what an Airflow retry runs) invokes exactly those, once each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute
from airflow_pywren.executor.errors import CallNeverInvokedError
from tests.conftest import merge_config

CALLS, BATCH = 12, 3
JOB = "M000"

SUBMITTER = """
import json, os, sys, time
import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute

config, marker, stop, runs = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
BATCH, CALLS, BUSY = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
invoke, batches = LocalhostCompute.invoke, []

def invoke_then_stall(self, job, calls):
    batches.append(len(calls))
    if len(batches) < 3:
        return invoke(self, job, calls)
    if stop == "after_sending":
        invoke(self, job, calls)
    open(marker, "w").close()
    time.sleep(3600)  # killed here

LocalhostCompute.invoke = invoke_then_stall
LocalhostCompute.invoke_batch = lambda self, calls: BATCH

def record_run(x):
    if x < 2 * BATCH:
        time.sleep(BUSY)  # the first batches keep the runner's 2 workers busy: the third batch waits in its queue
    open(os.path.join(runs, f"{x}-{time.time_ns()}"), "w").close()
    return 10 * x

pywren.FunctionExecutor(config=config, executor_id="partly").map(record_run, range(CALLS))
"""


@pytest.fixture(params=["localhost", "ibm_cos"])
def storage_config(request: pytest.FixtureRequest, localhost_config: dict[str, Any]) -> dict[str, Any]:
    config = merge_config(localhost_config, {"pywren": {"invocation_grace": 1}})
    if request.param == "ibm_cos":
        config = merge_config(config, request.getfixturevalue("cos_config"))
    prefix = f"partly-{os.getpid()}-{time.time_ns()}"
    section = "ibm_cos" if request.param == "ibm_cos" else "localhost"
    return merge_config(config, {section: {"storage_prefix": prefix}})


def kill_while_invoking(config: dict[str, Any], tmp_path: Path, stop: str, busy: float = 1.0) -> Path:
    """Run the submitter until it stalls in its third batch, then SIGKILL it; return the calls' run log."""
    runs, marker = tmp_path / "runs", tmp_path / "stalled"
    runs.mkdir()
    submitter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SUBMITTER,
            json.dumps(config),
            str(marker),
            stop,
            str(runs),
            str(BATCH),
            str(CALLS),
            str(busy),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and submitter.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), submitter.communicate(timeout=30)[0][-3000:]
    finally:
        submitter.send_signal(signal.SIGKILL)
        submitter.wait(30)
    return runs


def runs_per_call(runs: Path) -> Counter[int]:
    return Counter(int(name.split("-")[0]) for name in os.listdir(runs))


@pytest.mark.parametrize("stop", ["before_sending", "after_sending"])
def test_attaching_reports_the_calls_never_invoked_as_failed_then_invoke_missing_runs_each_once(
    storage_config: dict[str, Any], tmp_path: Path, stop: str
) -> None:
    runs = kill_while_invoking(storage_config, tmp_path, stop)
    invoked = 2 * BATCH if stop == "before_sending" else 3 * BATCH  # the runner holds what it accepted
    with pywren.FunctionExecutor(config=storage_config, executor_id="partly") as attached:
        futures = attached.job_futures(JOB)
        done, not_done = attached.wait(futures, timeout=120)  # bounded: no news from the submitter for 1 s
        assert not not_done
        assert [f.result() for f in futures[:invoked]] == [10 * x for x in range(invoked)]
        for future in futures[invoked:]:
            error = future.exception()
            assert isinstance(error, CallNeverInvokedError)
            assert f"call {future.call_id} of job {JOB} was never invoked" in str(error)
            assert f"stopped after invoking {2 * BATCH} of its {CALLS} call(s)" in str(error)

    with pywren.FunctionExecutor(config=storage_config, executor_id="partly") as retry:
        assert retry.invoke_missing(JOB) == CALLS - invoked
        assert retry.get_result(retry.job_futures(JOB), timeout=120) == [10 * x for x in range(CALLS)]
        assert retry.invoke_missing(JOB) == 0  # the invocation is complete now
        retry.clean()
    assert runs_per_call(runs) == Counter(range(CALLS))  # every call ran, once


def test_invoke_missing_waits_for_a_stopped_submitter_and_does_not_wait_on_a_complete_job(
    storage_config: dict[str, Any], tmp_path: Path
) -> None:
    """Without a plain attach first: the retry itself finds the never-invoked calls."""
    runs = kill_while_invoking(storage_config, tmp_path, "before_sending")
    with pywren.FunctionExecutor(config=storage_config, executor_id="partly") as retry:
        assert retry.invoke_missing(JOB) == CALLS - 2 * BATCH
        assert retry.get_result(retry.job_futures(JOB), timeout=120) == [10 * x for x in range(CALLS)]
        retry.clean()
    assert runs_per_call(runs) == Counter(range(CALLS))


def test_calls_of_the_batch_in_flight_are_waited_for_when_the_backend_cannot_tell(
    localhost_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend that cannot say which calls it holds: the batch in flight gets twice the grace to start.

    Its calls start about 4.5 s after the submitter's last record (behind six calls of 1.5 s on two
    workers): after the grace of 3 s, within twice the grace.
    """
    config = merge_config(
        localhost_config,
        {"pywren": {"invocation_grace": 3}, "localhost": {"storage_prefix": f"partly-{time.time_ns()}"}},
    )
    runs = kill_while_invoking(config, tmp_path, "after_sending", busy=1.5)
    monkeypatch.setattr(LocalhostCompute, "invoked_calls", lambda self, executor_id, job_id, call_ids: None)
    with pywren.FunctionExecutor(config=config, executor_id="partly") as retry:
        assert retry.invoke_missing(JOB) == CALLS - 3 * BATCH  # the third batch started: it was invoked
        assert retry.get_result(retry.job_futures(JOB), timeout=120) == [10 * x for x in range(CALLS)]
        retry.clean()
    assert runs_per_call(runs) == Counter(range(CALLS))


def add_one(x):
    return x + 1


def test_a_job_whose_submitter_is_alive_is_not_taken_for_stopped(
    localhost_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches slower than the grace: the submitter's heartbeat keeps its record fresh, so a process
    attaching meanwhile waits for the calls and fails none."""
    config = merge_config(
        localhost_config,
        {"pywren": {"invocation_grace": 1}, "localhost": {"storage_prefix": f"alive-{time.time_ns()}"}},
    )
    monkeypatch.setattr(LocalhostCompute, "invoke_batch", lambda self, calls: 2)
    invoke = LocalhostCompute.invoke

    def slow_invoke(self, job, calls):
        time.sleep(2.5)
        return invoke(self, job, calls)

    monkeypatch.setattr(LocalhostCompute, "invoke", slow_invoke)
    with pywren.FunctionExecutor(config=config, executor_id="alive") as submitter:
        submitting = threading.Thread(target=submitter.map, args=(add_one, range(6)))
        submitting.start()
        try:
            with pywren.FunctionExecutor(config=config, executor_id="alive") as attached:
                deadline = time.monotonic() + 60
                while not attached.job_ids() and time.monotonic() < deadline:
                    time.sleep(0.02)
                futures = attached.job_futures(JOB)
                assert attached.get_result(futures, timeout=120) == list(range(1, 7))
        finally:
            submitting.join()
        submitter.clean()


SENSOR_DAG = """
import json

from airflow_pywren.sensors.pywren import PyWrenJobSensor

REF = json.loads({ref!r})


@dag(dag_id={dag_id!r}, schedule=None, start_date=START, catchup=False)
def attach_to_partly_invoked():
    PyWrenJobSensor(
        task_id="wait", job_ref=REF, poke_interval=0.2, timeout=120, retries=1, retry_delay=0, deferrable={deferrable!r}
    )


attach_to_partly_invoked()
"""


@pytest.mark.airflow
@pytest.mark.parametrize("storage_config", ["localhost"], indirect=True)
@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_a_sensor_on_a_partly_invoked_job_fails_naming_the_calls_never_invoked(
    airflow_home,
    storage_config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    deferrable: bool,
) -> None:
    """The sensor (or its trigger) attached to a job whose submitter was killed while invoking it: after the
    invocation grace (1 s here) it fails, a final failure naming the never-invoked calls, instead of waiting."""
    from airflow_pywren.executor.jobs import job_reference
    from tests.airflow.conftest import CONN_ENV, connection_json

    # the invoked calls run 3 s each on two workers: the job is unfinished when the sensor first looks
    runs = kill_while_invoking(storage_config, tmp_path, "before_sending", busy=3.0)
    monkeypatch.setenv(CONN_ENV, connection_json(storage_config))
    with pywren.FunctionExecutor(config=storage_config, executor_id="partly") as attached:
        ref = job_reference(attached, "map", attached.job_futures(JOB))
    dag_id = f"sensor_partly_invoked_{'deferrable' if deferrable else 'poke'}"
    source = SENSOR_DAG.format(ref=json.dumps(ref), dag_id=dag_id, deferrable=deferrable)
    result = airflow_home.write_and_run(dag_id, source, header=True)
    logs = capfd.readouterr().out
    assert result.task_states == {"wait": "failed"}, logs[-3000:]
    assert result.try_numbers["wait"] == 1  # a final failure: no retry although retries=1
    assert ("deferring to PyWrenJobTrigger" in logs) is deferrable  # the trigger reached the verdict
    invoked = 2 * BATCH
    assert f"{CALLS - invoked} of {CALLS} call(s) of map job {JOB} failed." in logs
    first = f"{invoked:05d}"
    assert (
        f"First failure: job {JOB} call {first}: CallNeverInvokedError: call {first} of job {JOB} was never invoked"
        in logs
    )
    assert f"stopped after invoking {invoked} of its {CALLS} call(s)" in logs
    assert f"Also failed: job {JOB} call {invoked + 1:05d}: CallNeverInvokedError" in logs
    assert runs_per_call(runs) == Counter(range(invoked))  # the invoked calls ran, once; the others never
    with pywren.FunctionExecutor(config=storage_config, executor_id="partly") as executor:
        executor.clean()
