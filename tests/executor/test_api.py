"""The executor API on every backend combination of the matrix (``executor_config``)."""

from __future__ import annotations

import json
import os
import time
import traceback

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import keys


@pytest.fixture
def pw(executor_config):
    executor = pywren.FunctionExecutor(config=executor_config)
    yield executor
    executor.clean()
    executor.close()


def square(x):
    return x * x


def add(x, y=0):
    return x + y


def read_env(name):
    return os.environ.get(name)


class Unreadable(Exception):
    """An exception type the client knows: re-raised with its own type."""


def fail(x):
    raise Unreadable(f"bad input {x}")


def sleep_then(seconds):
    time.sleep(seconds)
    return seconds


def test_call_async_returns_single_value(pw):
    future = pw.call_async(square, 7)
    assert pw.get_result() == 49
    assert future.done() and future.status == "success"
    assert future.result() == 49


def test_map_results_in_input_order(pw):
    futures = pw.map(square, range(40))
    assert [f.call_id for f in futures] == [keys.call_id_of(i) for i in range(40)]
    assert pw.get_result(futures) == [i * i for i in range(40)]


def test_dict_items_whose_keys_are_parameters_become_kwargs(pw):
    items = [{"x": 1, "y": 2}, {"x": 10}, 5]
    assert pw.get_result(pw.map(add, items)) == [3, 10, 5]


def test_dict_items_with_other_keys_are_the_positional_argument(pw):
    assert pw.get_result(pw.call_async(len, {"a": 1, "b": 2, "c": 3})) == 3


def test_extra_env_is_seen_by_the_function(pw):
    futures = pw.map(read_env, ["PYWREN_TEST_VAR"] * 3, extra_env={"PYWREN_TEST_VAR": "hello"})
    assert pw.get_result(futures) == ["hello"] * 3
    # warm workers do not keep the variable for later calls
    assert pw.get_result(pw.call_async(read_env, "PYWREN_TEST_VAR")) is None


def test_extra_meta_is_returned_on_the_future(pw):
    future = pw.call_async(square, 3, extra_meta={"owner": "etl", "batch": 4})
    pw.wait([future])
    assert future.extra_meta == {"owner": "etl", "batch": 4}
    stored = pw.calls.read_status(pw.executor_id, future.job_id, future.call_id)
    assert stored["extra_meta"] == {"owner": "etl", "batch": 4}  # kept with the status


def test_a_failure_is_raised_once_by_get_result_without_futures(pw):
    pw.call_async(fail, 1)
    with pytest.raises(Unreadable):
        pw.get_result()
    pw.call_async(square, 3)
    assert pw.get_result() == 9


def test_futures_carry_activation_stats(pw):
    future = pw.call_async(square, 2)
    pw.get_result(future)
    assert future.executor_id == pw.executor_id and future.job_id.startswith("A") and future.call_id == "00000"
    assert future.output_key.endswith(f"/{future.job_id}/output/00000.pickle")
    assert future.host_submit_time <= future.start_time <= future.end_time
    assert future.duration == pytest.approx(future.end_time - future.start_time)
    assert future.worker_host and isinstance(future.worker_pid, int)
    assert future.activation_id


def test_exception_is_reraised_with_type_and_remote_traceback(pw):
    future = pw.call_async(fail, 3)
    with pytest.raises(Unreadable, match="bad input 3") as info:
        pw.get_result()
    cause = info.value.__cause__
    assert isinstance(cause, pywren.executor.errors.RemoteTraceback)
    assert "in fail" in cause.traceback_text and "Unreadable" in cause.traceback_text
    assert "Remote traceback" in "".join(traceback.format_exception(info.value))
    assert future.status == "error" and future.error["type"] == "Unreadable"
    assert isinstance(future.exception(), Unreadable)


def test_one_failed_call_in_a_map_fails_get_result(pw):
    def maybe_fail(x):
        if x == 3:
            raise KeyError("three")
        return x

    futures = pw.map(maybe_fail, range(6))
    with pytest.raises(KeyError, match="three"):
        pw.get_result(futures)
    assert [f.status for f in futures] == ["success"] * 3 + ["error"] + ["success"] * 2


def test_timeout_stops_the_call_and_reports_it(pw):
    future = pw.call_async(sleep_then, 60, timeout=1)
    with pytest.raises(pywren.ActivationTimeoutError, match="timeout of 1 s"):
        future.result()
    assert isinstance(future.exception(), TimeoutError)


def test_any_completed_returns_before_the_slow_call(pw):
    futures = pw.map(sleep_then, [0, 30], timeout=40)
    done, not_done = pw.wait(futures, return_when=pywren.ANY_COMPLETED)
    assert [f.call_id for f in done] == ["00000"]
    assert [f.call_id for f in not_done] == ["00001"]
    pw.cancel(not_done)


def test_always_checks_once(pw):
    futures = pw.map(sleep_then, [20], timeout=30)
    done, not_done = pw.wait(futures, return_when=pywren.ALWAYS)
    assert done == [] and not_done == futures
    pw.cancel(futures)


def test_wait_timeout_returns_not_done_and_get_result_raises(pw):
    futures = pw.map(sleep_then, [20], timeout=30)
    done, not_done = pw.wait(futures, timeout=0.3)
    assert not done and not_done == futures
    with pytest.raises(TimeoutError, match="1 of 1 call"):
        pw.get_result(futures, timeout=0.2)
    pw.cancel(futures)


@pytest.mark.parametrize("reducer_wait_local", [False, True])
def test_map_reduce_gives_the_reduction_of_results_in_order(pw, reducer_wait_local):
    def concat(results):
        return ",".join(str(r) for r in results)

    futures = pw.map_reduce(square, range(12), concat, reducer_wait_local=reducer_wait_local)
    assert len(futures) == 13 and futures[-1].job_id.startswith("R")
    assert pw.get_result() == ",".join(str(i * i) for i in range(12))
    assert pw.get_result(futures) == ",".join(str(i * i) for i in range(12))


def test_map_reduce_with_a_failed_map_fails_the_reducer(pw):
    futures = pw.map_reduce(fail, [1, 2], sum)
    with pytest.raises(Exception, match="map call 00000 of job M000 failed"):
        pw.get_result(futures)


def test_result_refs_feed_upstream_outputs_to_a_downstream_map(pw):
    from airflow_pywren.executor.jobs import job_reference, result_refs

    upstream = pw.map(square, [1, 2, 3])
    pw.wait(upstream)
    refs = result_refs(job_reference(pw, "map", upstream))
    assert pw.get_result(pw.map(add, [{"x": ref, "y": 1} for ref in refs])) == [2, 5, 10]


def test_clean_removes_every_object_of_the_executor(pw):
    pw.get_result(pw.map(square, range(5)))
    prefix = keys.executor_prefix(pw.storage.prefix, pw.executor_id)
    assert pw.storage.list_keys(prefix)
    assert pw.clean() > 0
    assert pw.storage.list_keys(prefix) == []


def test_job_is_staged_as_one_function_and_one_data_object(pw):
    before = pw.storage.request_counts["PUT"]
    futures = pw.map(square, range(25))
    assert pw.storage.request_counts["PUT"] - before == 4  # func.pickle, data.pickle, job.json, invocation.json
    pw.wait(futures)
    job_prefix = keys.job_prefix(pw.storage.prefix, pw.executor_id, futures[0].job_id)
    listed = pw.storage.list_keys(job_prefix)
    job_level = sorted(k[len(job_prefix) :] for k in listed if "/" not in k[len(job_prefix) :])
    assert job_level == ["data.pickle", "func.pickle", "invocation.json", "job.json"]
    status_prefix = keys.status_prefix(pw.storage.prefix, pw.executor_id, futures[0].job_id)
    if pw.calls.layout == "objects":  # one object per start, status and output
        parsed = [keys.parse_status_key(k, status_prefix) for k in listed if k.startswith(status_prefix)]
        assert sorted(parsed) == sorted([(keys.call_id_of(i), kind) for i in range(25) for kind in ("start", "status")])
        assert sum(k.startswith(job_prefix + "output/") for k in listed) == 25
    else:  # one segment per writing process, small outputs inline
        segments = [k for k in listed if k.startswith(status_prefix)]
        assert segments and len(segments) <= 25 and all(k.endswith(".seg") for k in segments)
        assert not any(k.startswith(job_prefix + "output/") for k in listed)
    statuses = [pw.calls.read_status(pw.executor_id, f.job_id, f.call_id) for f in futures]
    assert [s["status"] for s in statuses] == ["success"] * 25


def test_storage_monitor_lists_once_per_poll_and_reads_only_new_statuses(pw):
    from airflow_pywren.executor.monitor.storage import StorageMonitor

    futures = pw.map(square, range(30))
    pw.wait(futures)
    fresh = pw.job_futures(futures[0].job_id)
    monitor = StorageMonitor(pw.storage, 0.01)
    counts = dict(pw.storage.request_counts)
    assert monitor.refresh(fresh) == 30
    assert pw.storage.request_counts["LIST"] - counts.get("LIST", 0) == 1
    job_prefix = keys.status_prefix(pw.storage.prefix, pw.executor_id, futures[0].job_id)
    # one GET per new status object, or per segment that grew
    reads = 30 if pw.calls.layout == "objects" else len(pw.storage.list_keys(job_prefix))
    assert pw.storage.request_counts["GET"] - counts.get("GET", 0) == reads
    counts = dict(pw.storage.request_counts)
    assert monitor.refresh(fresh) == 0
    assert pw.storage.request_counts == counts  # nothing pending: no request at all


def test_job_futures_reattach_from_the_manifest(pw, executor_config):
    futures = pw.map(square, range(4), extra_meta={"k": 1})
    other = pywren.FunctionExecutor(config=executor_config)
    attached = other.job_futures(futures[0].job_id, executor_id=pw.executor_id)
    assert [f.call_id for f in attached] == [f.call_id for f in futures]
    assert [f.activation_id for f in attached] == [f.activation_id for f in futures]  # from invocation.json
    assert all(f.activation_id for f in attached)
    assert other.get_result(attached) == [0, 1, 4, 9]
    assert attached[0].extra_meta == {"k": 1}


def test_executor_with_an_existing_id_numbers_jobs_after_stored_ones(pw, executor_config):
    pw.wait(pw.map(square, [1]))
    pw.wait(pw.call_async(square, 1))
    again = pywren.FunctionExecutor(config=executor_config, executor_id=pw.executor_id)
    future = again.call_async(square, 5)
    assert future.job_id == "A002"
    assert again.get_result() == 25


def test_timeline_plots_are_written(pw, tmp_path):
    from airflow_pywren.executor.plots import call_timeline

    futures = pw.map(square, range(8))
    pw.wait(futures)
    timeline = call_timeline(futures)
    assert len(timeline) == 8 and all(submit <= start <= end for submit, start, end in timeline)
    paths = pw.plot(futures, dst_dir=str(tmp_path), dst_file_prefix="job")
    assert [p.name for p in paths] == ["job_timeline.png", "job_concurrency.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_an_old_compact_reference_is_followed_with_result_keys_rebuilt_from_storage(pw):
    from airflow_pywren.executor.jobs import JobWatcher, compact_reference, job_reference

    futures = pw.map_reduce(square, range(5), sum)
    reference = job_reference(pw, "map_reduce", futures)
    assert len(json.dumps(reference)) < 500
    # a trigger row written by an earlier version: neither result keys nor their pattern
    old = {k: v for k, v in reference.items() if k not in ("result_count", "result_key_pattern")}
    old_full = {**old, "result_keys": [futures[-1].output_key]}
    compact = compact_reference(old_full)
    assert "result_keys" not in compact and len(json.dumps(compact)) < 400
    watcher = JobWatcher(pw, compact)
    assert watcher.wait(timeout=60).status == "success"
    assert watcher.job_ref.result_keys == [futures[-1].output_key]
    assert watcher.results() == [30]
    assert JobWatcher(pw, old_full).results() == JobWatcher(pw, reference).results() == [30]


def test_poll_backoff_is_short_while_calls_finish_and_doubles_while_none_do():
    from airflow_pywren.executor.monitor.storage import PollBackoff

    backoff = PollBackoff(0.05, 1.0)
    assert [backoff.next_pause(0) for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.next_pause(3) == 0.05  # calls finished since the last poll
