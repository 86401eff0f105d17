"""The state a backend or monitor gives a future, through its public methods, and the stats it exposes."""

from __future__ import annotations

import pickle

import pytest

from airflow_pywren.executor.future import ResponseFuture
from airflow_pywren.executor.jobref import CallStatus


def _future() -> ResponseFuture:
    future = ResponseFuture(None, "exec1", "M000", "00003", "map", 100.0, {"team": "a"})  # type: ignore[arg-type]
    future.set_invocation("act-3")
    return future


def test_a_monitor_moves_a_future_from_pending_to_running_to_final() -> None:
    future = _future()
    assert (future.status, future.running(), future.finished) == (CallStatus.PENDING, False, False)
    future.set_running({"start_time": 101.0, "worker_host": "node-1", "worker_pid": 42, "ignored": "x"})
    assert future.running() and (future.start_time, future.worker_host, future.worker_pid) == (101.0, "node-1", 42)
    future.set_final(
        {"status": "success", "start_time": 101.0, "end_time": 103.5, "duration": 2.5, "activation_id": "act-3"}
    )
    assert future.finished and not future.running() and future.status == CallStatus.SUCCESS
    assert (future.host_submit_time, future.end_time, future.duration) == (100.0, 103.5, 2.5)
    assert future.activation_id == "act-3" and future.extra_meta == {"team": "a"}


def test_a_late_start_notice_does_not_move_a_finished_future_back() -> None:
    future = _future()
    future.set_final({"status": "error", "error": {"type": "ValueError", "message": "bad"}})
    future.set_running({"start_time": 200.0})
    assert future.status == CallStatus.ERROR and future.start_time is None
    assert future.error == {"type": "ValueError", "message": "bad"} and not future.cancelled()


def test_stats_not_known_yet_are_none_and_other_names_are_not_attributes() -> None:
    future = _future()
    assert future.start_time is None and future.worker_host is None and not future.has_output()
    with pytest.raises(AttributeError):
        future.memory_peak  # noqa: B018 - only the documented stats are attributes


def test_stats_is_a_copy_of_what_is_known() -> None:
    future = _future()
    assert future.stats == {"host_submit_time": 100.0, "activation_id": "act-3"}
    future.stats["activation_id"] = "changed"  # a copy: the future keeps its own
    future.set_invocation(None, "invoker-1")
    future.set_running({"start_time": 101.0, "worker_pid": 42})
    future.take_start({"worker_host": "node-1"})
    assert future.stats == {
        "host_submit_time": 100.0,
        "activation_id": "act-3",
        "invoker_id": "invoker-1",
        "start_time": 101.0,
        "worker_host": "node-1",
        "worker_pid": 42,
    }


def test_a_pickled_future_keeps_its_state_and_stats_but_not_its_output() -> None:
    future = _future()
    future.storage_location = "file:///tmp/storage/pywren/jobs"
    future.set_final({"status": "success", "end_time": 103.5})
    copy = pickle.loads(pickle.dumps(future))
    assert (copy.status, copy.end_time, copy.activation_id) == (CallStatus.SUCCESS, 103.5, "act-3")
    assert not copy.has_executor() and not copy.has_output() and copy.storage_location == future.storage_location
