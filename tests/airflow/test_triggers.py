"""PyWrenJobTrigger against real jobs on the localhost backends (and a real RabbitMQ broker).

The trigger's ``run()`` is driven with asyncio as the triggerer drives it; jobs are
submitted with a FunctionExecutor and followed through ``job_reference(...)``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from airflow_pywren.executor.callstore.base import CallUpdates
from airflow_pywren.executor.callstore.segments import SegmentJobCalls
from airflow_pywren.executor.errors import StorageError
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.jobs import job_reference
from airflow_pywren.executor.storage.localhost import LocalhostStorage
from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.triggers.pywren import PyWrenJobTrigger, describe_failure
from tests.airflow.conftest import connection_json
from tests.conftest import merge_config

pytestmark = pytest.mark.airflow

GATE_WAIT = 120.0  # a gated call gives up waiting after this long (only if a test forgot to open its gate)
EVENT_WAIT = 120.0  # no test waits longer than this for an event


# --------------------------------------------------------------- remote functions
# Pickled by value: the calls must not import this module (it imports Airflow and the test home).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def wait_for_gate(item: list[Any]) -> int:
    """Return ``index * 10``, once the gate file exists when one is given."""
    index, gate = item
    if gate is not None:
        deadline = time.monotonic() + GATE_WAIT
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
    return index * 10


def divide(x: int) -> float:
    return 10 / x


# --------------------------------------------------------------------- helpers
class Jobs:
    """Submits jobs with a FunctionExecutor; at teardown opens every gate and waits for every call."""

    def __init__(self, config: dict[str, Any], tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.gates: list[Path] = []
        self.executors: list[tuple[FunctionExecutor, list[Any]]] = []

    def gate(self) -> Path:
        path = self.tmp_path / f"gate-{len(self.gates)}"
        self.gates.append(path)
        return path

    def map(self, func: Callable, items: list[Any], config: dict[str, Any] | None = None):
        executor = FunctionExecutor(config=config or self.config)
        futures = executor.map(func, items)
        self.executors.append((executor, futures))
        return executor, futures, job_reference(executor, "map", futures)

    def gated(self, fast: int, slow: int, config: dict[str, Any] | None = None):
        """A map of ``fast`` calls that return at once and ``slow`` calls that wait for a new gate."""
        gate = self.gate()
        items = [[i, None] for i in range(fast)] + [[fast + i, str(gate)] for i in range(slow)]
        return (*self.map(wait_for_gate, items, config), gate)

    def close(self) -> None:
        for gate in self.gates:
            gate.touch()
        for executor, futures in self.executors:
            executor.wait(futures, timeout=60)
            executor.close()


@pytest.fixture
def jobs(pywren_conn: dict[str, Any], tmp_path: Path) -> Iterator[Jobs]:
    helper = Jobs(pywren_conn, tmp_path)
    yield helper
    helper.close()


@pytest.fixture
def rabbit_conn(monkeypatch: pytest.MonkeyPatch, localhost_config: dict[str, Any], rabbitmq_config: dict[str, Any]):
    """Connection ``pywren_rabbitmq``: localhost backends plus the session's RabbitMQ broker."""
    config = merge_config(localhost_config, rabbitmq_config)
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_RABBITMQ", connection_json(config))
    return config


async def all_events(trigger: PyWrenJobTrigger) -> list[dict[str, Any]]:
    """Every event payload ``run()`` yields (it must stop after the first)."""
    return [event.payload async for event in trigger.run()]


def run_trigger(trigger: PyWrenJobTrigger) -> dict[str, Any]:
    events = asyncio.run(asyncio.wait_for(all_events(trigger), EVENT_WAIT))
    assert len(events) == 1, events
    return events[0]


def trigger_for(ref: dict[str, Any], **kwargs: Any) -> PyWrenJobTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    return PyWrenJobTrigger(job_ref=ref, **kwargs)


def lingering_threads(prefix: str, started_after: set[threading.Thread] | frozenset = frozenset()) -> list[str]:
    """Threads named ``prefix...`` (not in ``started_after``) still alive after 10 s of waiting for them."""
    threads = [t for t in threading.enumerate() if t.name.startswith(prefix) and t not in started_after]
    for thread in threads:
        thread.join(10)
    return [t.name for t in threads if t.is_alive()]


def log_text(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return out + err


class LoopProbe:
    """Proves that wrapped blocking calls run off the event loop.

    A ticker task counts event-loop turns. Each wrapped call, before doing its real
    work, blocks its thread until the ticker has counted ``TICKS`` more turns: that can
    only happen if the call is not running on the loop's thread. A call made on the
    loop would block the ticker and give up after ``GIVE_UP`` seconds, recorded as a
    failure (so a broken trigger fails the test instead of hanging it).
    """

    TICKS = 3
    GIVE_UP = 10.0

    def __init__(self) -> None:
        self.ticks = 0
        self.cond = threading.Condition()
        self.calls: list[tuple[str, bool, bool]] = []  # (name, loop kept turning, ran on the loop thread)
        self.loop_thread: int | None = None
        self.active = False  # only calls made while the probe runs a trigger are slowed down

    async def ticker(self) -> None:
        self.loop_thread = threading.get_ident()
        while True:
            await asyncio.sleep(0.002)
            with self.cond:
                self.ticks += 1
                self.cond.notify_all()

    def wrap(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        original = getattr(owner, name)
        probe = self

        def slow(*args: Any, **kwargs: Any) -> Any:
            if not probe.active:
                return original(*args, **kwargs)
            with probe.cond:
                start = probe.ticks
                turned = probe.cond.wait_for(lambda: probe.ticks >= start + probe.TICKS, timeout=probe.GIVE_UP)
            probe.calls.append((f"{owner.__name__}.{name}", turned, threading.get_ident() == probe.loop_thread))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, slow)

    async def run(self, trigger: PyWrenJobTrigger) -> list[dict[str, Any]]:
        ticker = asyncio.create_task(self.ticker())
        await asyncio.sleep(0)
        self.active = True
        try:
            return await asyncio.wait_for(all_events(trigger), EVENT_WAIT)
        finally:
            self.active = False
            ticker.cancel()

    def called(self) -> set[str]:
        return {name for name, _, _ in self.calls}

    def blocked(self) -> list[tuple[str, bool, bool]]:
        return [call for call in self.calls if not call[1] or call[2]]


# ----------------------------------------------------------------- serialization
def test_serialize_round_trip_is_plain_and_keeps_the_deadline(jobs: Jobs) -> None:
    _, _, ref = jobs.map(divide, [1, 2])
    trigger = PyWrenJobTrigger(job_ref=ref, pywren_conn_id="pywren_x", monitor="rabbitmq", poll_interval=3, timeout=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_pywren.triggers.pywren.PyWrenJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON values only
    assert kwargs["job_ref"] == ref and kwargs["timeout"] == 60.0 and kwargs["poll_interval"] == 3.0
    assert kwargs["end_time"] is not None and kwargs["end_time"] > time.time()

    from airflow.sdk._shared.module_loading import import_string

    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert again.end_time == trigger.end_time  # a restarted triggerer keeps the original deadline
    without_timeout = PyWrenJobTrigger(job_ref=ref)
    assert PyWrenJobTrigger(**without_timeout.serialize()[1]).serialize() == without_timeout.serialize()
    assert without_timeout.serialize()[1]["end_time"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"monitor": "kafka"}, "monitor must be one of storage, rabbitmq, got 'kafka'"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"timeout": -1}, "timeout must be a positive number of seconds or None, got -1"),
        ({"job_ref": "M000"}, "job_ref must be the job reference dict"),
        ({"job_ref": {"executor_id": "e"}}, "job_ref lacks kind, job_ids"),
    ],
)
def test_bad_arguments_are_refused_when_the_trigger_is_built(kwargs: dict[str, Any], message: str) -> None:
    ref = {"executor_id": "e", "kind": "map", "job_ids": ["M000"], "result_keys": [], "total": 1}
    with pytest.raises(ValueError, match=message):
        PyWrenJobTrigger(**{"job_ref": ref, **kwargs})


# ------------------------------------------------------------------------ events
def test_success_event_with_progress_and_progress_lines(jobs: Jobs, capfd: pytest.CaptureFixture[str]) -> None:
    _, _, ref = jobs.map(divide, [1, 2, 4, 5, 10])
    event = run_trigger(trigger_for(ref))
    assert event["status"] == "success"
    progress = event["progress"]
    assert (progress["total"], progress["done"], progress["failed"], progress["status"]) == (5, 5, 0, "success")
    assert event["job_ref"] == {**ref, "status": "success", "done": 5, "failed": 0}
    assert event["message"] == "map job M000: 5/5 done, 0 failed"
    assert json.loads(json.dumps(event)) == event  # the payload is stored by Airflow: plain JSON
    logs = log_text(capfd)
    assert f"following map job M000 of executor {ref['executor_id']} by storage" in logs
    assert "map job M000: 5/5 done, 0 failed" in logs
    # every call was really run: the results behind the reference are there
    assert PyWrenHook().get_results(event["job_ref"]) == [10.0, 5.0, 2.5, 2.0, 1.0]


def test_progress_lines_are_rate_limited(jobs: Jobs, capfd: pytest.CaptureFixture[str]) -> None:
    """Dozens of polls of a running job give one progress line at first and one at the end."""
    _, futures, ref, gate = jobs.gated(fast=1, slow=1)
    futures[0].result(timeout=60)

    async def scenario() -> dict[str, Any]:
        task = asyncio.create_task(all_events(trigger_for(ref, poll_interval=0.01)))
        polls = 0
        while polls < 30:  # let the trigger poll the unfinished job many times
            await asyncio.sleep(0.01)
            polls += 1
        gate.touch()
        return (await asyncio.wait_for(task, EVENT_WAIT))[0]

    event = asyncio.run(scenario())
    assert event["status"] == "success" and event["progress"]["done"] == 2
    lines = [line for line in log_text(capfd).splitlines() if "map job M000: " in line and " done, " in line]
    assert any("1/2 done, 0 failed" in line for line in lines), lines
    assert sum("2/2 done, 0 failed" in line for line in lines) == 1, lines
    assert len(lines) <= 3, lines  # not one per poll


def test_error_event_carries_type_message_traceback_and_count(jobs: Jobs) -> None:
    _, _, ref = jobs.map(divide, [1, 0, 2, 0])
    event = run_trigger(trigger_for(ref))
    assert event["status"] == "error"
    progress = event["progress"]
    assert (progress["total"], progress["done"], progress["failed"]) == (4, 4, 2)
    assert [e["call_id"] for e in progress["errors"]] == ["00001", "00003"]
    assert progress["errors"][0]["type"] == "ZeroDivisionError"
    message = event["message"]
    assert message.startswith("2 of 4 call(s) of map job M000 failed.")
    assert "First failure: job M000 call 00001: ZeroDivisionError: division by zero" in message
    assert "Also failed: job M000 call 00003: ZeroDivisionError" in message
    remote = message.split("Remote traceback:\n", 1)[1]
    assert remote.startswith("Traceback (most recent call last):") and ", in divide" in remote
    assert remote.rstrip().endswith("ZeroDivisionError: division by zero")
    assert message == describe_failure(progress)
    assert event["job_ref"]["status"] == "error" and event["job_ref"]["failed"] == 2


def test_timeout_event_says_so_and_reports_progress(jobs: Jobs) -> None:
    executor, futures, ref, _ = jobs.gated(fast=1, slow=1)
    futures[0].result(timeout=60)
    event = run_trigger(trigger_for(ref, timeout=0.3))
    assert event["status"] == "timeout"
    assert event["progress"]["done"] == 1 and event["progress"]["total"] == 2
    assert event["message"] == (
        f"map job M000 of executor {ref['executor_id']} did not finish within the trigger timeout of 0.3 s; "
        "map job M000: 1/2 done, 0 failed. Its calls keep running; raise the timeout, or follow the job again "
        "to wait longer."
    )


def test_unknown_job_gives_an_error_event_naming_it(jobs: Jobs) -> None:
    _, _, ref = jobs.map(divide, [1])
    missing = {**ref, "job_ids": ["M042"], "result_job_id": "M042"}
    event = run_trigger(trigger_for(missing))
    assert event["status"] == "error"
    assert "cannot follow map job M042" in event["message"] and "no job M042 of executor" in event["message"]
    assert event["progress"]["done"] == 0 and event["progress"]["failed"] == 0


def test_connection_to_other_storage_gives_an_error_event(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, _, ref = jobs.map(divide, [1])
    elsewhere = merge_config(jobs.config, {"localhost": {"storage_dir": str(tmp_path / "elsewhere")}})
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_OTHER", connection_json(elsewhere))
    event = run_trigger(trigger_for(ref, pywren_conn_id="pywren_other"))
    assert event["status"] == "error"
    assert event["message"].startswith(f"cannot follow map job M000 of executor {ref['executor_id']}: ")
    assert str(tmp_path / "elsewhere") in event["message"]  # names the storage the connection points to


class FlakyStatusListing:
    """Makes the first ``failures`` polls of job statuses raise StorageError (storage briefly unreachable)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        self.left = failures
        original = SegmentJobCalls.poll

        def poll(view: SegmentJobCalls) -> CallUpdates:
            if self.left > 0:
                self.left -= 1
                raise StorageError(f"storage unreachable while listing {view.directory}")
            return original(view)

        monkeypatch.setattr(SegmentJobCalls, "poll", poll)


def test_a_few_failed_polls_are_retried(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    executor, futures, ref = jobs.map(divide, [1, 2])
    executor.wait(futures)
    flaky = FlakyStatusListing(monkeypatch, failures=2)
    event = run_trigger(trigger_for(ref))
    assert flaky.left == 0
    assert event["status"] == "success" and event["progress"]["done"] == 2


def test_polls_failing_in_a_row_give_an_error_event(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    executor, futures, ref = jobs.map(divide, [1, 2])
    executor.wait(futures)
    FlakyStatusListing(monkeypatch, failures=1000)
    event = run_trigger(trigger_for(ref))
    assert event["status"] == "error"
    assert event["message"].startswith(
        f"map job M000 of executor {ref['executor_id']}: 3 polls in a row failed, last: "
        "StorageError: storage unreachable while listing "
    )
    assert event["progress"]["done"] == 0 and event["progress"]["failed"] == 0


# ---------------------------------------------------------- triggerer restarts
def test_new_trigger_on_a_finished_job_reports_from_storage(jobs: Jobs) -> None:
    executor, futures, ref = jobs.map(divide, [1, 0, 5])
    executor.wait(futures)  # finished before any trigger ran
    first = trigger_for(ref)
    restarted = PyWrenJobTrigger(**first.serialize()[1])
    event = run_trigger(restarted)
    assert event["status"] == "error"
    assert (event["progress"]["done"], event["progress"]["failed"]) == (3, 1)


def test_new_trigger_on_a_half_finished_job_reconciles_with_storage(jobs: Jobs) -> None:
    _, futures, ref, gate = jobs.gated(fast=2, slow=2)
    for future in futures[:2]:
        future.result(timeout=60)

    async def stopped_triggerer() -> None:
        """A triggerer that stops while the trigger is waiting: the trigger is cancelled mid-poll."""
        trigger = trigger_for(ref)
        task = asyncio.create_task(all_events(trigger))
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stopped_triggerer())
    # a trigger with a deadline that passed before the restart keeps it and reports what storage holds
    timed = trigger_for(ref, timeout=0.2)
    assert run_trigger(timed)["status"] == "timeout"
    late = run_trigger(PyWrenJobTrigger(**timed.serialize()[1]))
    assert late["status"] == "timeout" and (late["progress"]["done"], late["progress"]["total"]) == (2, 4)

    gate.touch()
    event = run_trigger(PyWrenJobTrigger(**trigger_for(ref).serialize()[1]))
    assert event["status"] == "success"
    assert (event["progress"]["done"], event["progress"]["failed"]) == (4, 0)
    assert PyWrenHook().get_results(event["job_ref"]) == [0, 10, 20, 30]
    assert lingering_threads("pywren-trigger") == []  # the cancelled trigger's thread ended too


def test_a_trigger_cancelled_while_it_pauses_ends_the_pause_at_once(
    jobs: Jobs, pywren_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A triggerer that stops during a long pause between polls (300 s here) is not held up by it."""
    from airflow_pywren.executor.monitor.storage import StorageMonitor

    _, _, ref, _ = jobs.gated(fast=0, slow=1)
    slow_polls = merge_config(pywren_conn, {"pywren": {"monitor_interval": 300}})
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_SLOW_POLLS", connection_json(slow_polls))
    pausing = threading.Event()
    original_pause = StorageMonitor.pause

    def pause(monitor: StorageMonitor, *args: Any, **kwargs: Any) -> None:
        if monitor.interval == 300:  # the trigger's monitor, not the submitting executor's
            pausing.set()
        original_pause(monitor, *args, **kwargs)

    monkeypatch.setattr(StorageMonitor, "pause", pause)
    before = set(threading.enumerate())

    async def stopped_triggerer() -> None:
        trigger = trigger_for(ref, pywren_conn_id="pywren_slow_polls", poll_interval=300)
        task = asyncio.create_task(all_events(trigger))
        deadline = time.monotonic() + EVENT_WAIT
        while not pausing.is_set() and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert pausing.is_set() and not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stopped_triggerer())
    assert lingering_threads("pywren-trigger", before) == []  # its thread closed the executor and ended


# ------------------------------------------------------------ event loop safety
def test_event_loop_keeps_running_while_lookups_and_polls_are_slow(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, ref = jobs.map(divide, [1, 2, 4])
    probe = LoopProbe()
    probe.wrap(monkeypatch, PyWrenHook, "get_config")  # connection lookup
    probe.wrap(monkeypatch, LocalhostStorage, "get")  # manifest and status reads
    probe.wrap(monkeypatch, LocalhostStorage, "list_keys")  # the poll's LIST
    events = asyncio.run(probe.run(trigger_for(ref)))
    assert [e["status"] for e in events] == ["success"]
    assert {"PyWrenHook.get_config", "LocalhostStorage.get", "LocalhostStorage.list_keys"} <= probe.called()
    assert probe.blocked() == []


# ---------------------------------------------------------------------- RabbitMQ
@pytest.mark.rabbitmq
def test_rabbitmq_monitor_success_and_loop_keeps_running_while_waiting(
    jobs: Jobs, rabbit_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_pywren.executor.monitor.rabbitmq import RabbitMQMonitor

    _, futures, ref, gate = jobs.gated(fast=2, slow=1, config=rabbit_conn)
    probe = LoopProbe()
    probe.wrap(monkeypatch, RabbitMQMonitor, "pause")
    probe.wrap(monkeypatch, RabbitMQMonitor, "refresh")
    before = set(threading.enumerate())  # the submitting executor's own broker thread

    async def scenario() -> list[dict[str, Any]]:
        task = asyncio.create_task(
            probe.run(trigger_for(ref, pywren_conn_id="pywren_rabbitmq", monitor="rabbitmq", poll_interval=0.5))
        )
        while "RabbitMQMonitor.pause" not in probe.called() and not task.done():  # the trigger waits on the broker
            await asyncio.sleep(0.01)
        assert "RabbitMQMonitor.pause" in probe.called(), "the trigger never waited on the broker"
        gate.touch()
        return await task

    events = asyncio.run(scenario())
    assert [e["status"] for e in events] == ["success"]
    assert (events[0]["progress"]["done"], events[0]["progress"]["failed"]) == (3, 0)
    assert {"RabbitMQMonitor.pause", "RabbitMQMonitor.refresh"} <= probe.called()
    assert probe.blocked() == []
    assert "by rabbitmq" in log_text(capfd)
    assert lingering_threads("pywren-rabbitmq", before) == []  # the trigger closed its broker connection


@pytest.mark.rabbitmq
def test_rabbitmq_trigger_reconciles_with_storage_after_the_notices_were_read(
    jobs: Jobs, rabbit_conn: dict[str, Any]
) -> None:
    """The submitting client consumed every notice; a later trigger still learns the outcome from storage."""
    executor, futures, ref = jobs.map(divide, [1, 0, 2], config=rabbit_conn)
    executor.wait(futures)
    event = run_trigger(trigger_for(ref, pywren_conn_id="pywren_rabbitmq", monitor="rabbitmq", poll_interval=0.5))
    assert event["status"] == "error"
    assert (event["progress"]["done"], event["progress"]["failed"]) == (3, 1)
    assert "ZeroDivisionError" in event["message"]


@pytest.mark.rabbitmq
def test_rabbitmq_trigger_polls_storage_while_the_broker_is_down(
    jobs: Jobs, rabbit_conn: dict[str, Any], rabbitmq_broker: Any
) -> None:
    _, futures, ref = jobs.map(divide, [1, 2], config=rabbit_conn)
    rabbitmq_broker.stop()  # the next test's rabbitmq_config fixture starts it again
    event = run_trigger(trigger_for(ref, pywren_conn_id="pywren_rabbitmq", monitor="rabbitmq", poll_interval=0.1))
    assert event["status"] == "success"
    assert event["progress"]["done"] == 2
