"""RabbitMQ completion monitoring with a real broker and the localhost backends."""

from __future__ import annotations

import json
import logging

import pika
import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute
from airflow_pywren.executor.monitor.rabbitmq import Inbox, RabbitMQMonitor, queue_name
from airflow_pywren.executor.monitor.storage import StorageMonitor
from airflow_pywren.executor.worker.rabbitmq_notify import RabbitMQNotifier
from tests.conftest import merge_config
from tests.rabbitmq.helpers import (
    fail,
    peek_notices,
    publish_raw,
    queue_depth,
    sleep_then,
    square,
    wait_for_gate,
    wait_until,
)
from tests.services.processes import free_port

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def rabbit_config(localhost_config, rabbitmq_config):
    return merge_config(localhost_config, rabbitmq_config)


@pytest.fixture
def make_executor():
    """Executors created by a test, closed (and their storage cleaned) after it."""
    created = []

    def make(config, **kwargs):
        executor = pywren.FunctionExecutor(config=config, **kwargs)
        created.append(executor)
        return executor

    yield make
    for executor in created:
        try:
            executor.clean()
        finally:
            executor.close()


@pytest.fixture
def pw(rabbit_config, make_executor):
    executor = make_executor(rabbit_config)
    assert isinstance(executor.job_monitor, RabbitMQMonitor) and executor.job_monitor.connected
    return executor


def lists(executor) -> int:
    """Storage polls: LISTs, less the scans the localhost layout makes to find the results it is asked for."""
    return executor.storage.request_counts["LIST"] - executor.calls.lookup_scans


# --- same results as storage monitoring --------------------------------------------------
def test_results_and_stats_match_storage_monitoring(pw, localhost_config, make_executor):
    by_storage = make_executor(localhost_config)
    assert isinstance(by_storage.job_monitor, StorageMonitor)
    outcomes = []
    for executor in (pw, by_storage):
        single = executor.call_async(square, 9)
        mapped = executor.map(square, range(25))
        reduced = executor.map_reduce(square, range(10), sum)
        outcomes.append((executor.get_result(single), executor.get_result(mapped), executor.get_result(reduced)))
        for future in [single, *mapped, reduced[-1]]:
            assert future.status == "success" and future.error is None
            assert future.host_submit_time <= future.start_time <= future.end_time
            assert future.duration == pytest.approx(future.end_time - future.start_time)
            assert future.worker_pid and future.activation_id
    assert outcomes[0] == outcomes[1] == (81, [i * i for i in range(25)], sum(i * i for i in range(10)))


def test_futures_resolve_from_notices_without_listing_storage(rabbit_config, make_executor):
    config = merge_config(rabbit_config, {"rabbitmq": {"reconcile_interval": 3600}})
    executor = make_executor(config)
    futures = executor.map(sleep_then, [0.05] * 8)
    assert executor.get_result(futures) == [0.05] * 8
    assert lists(executor) == 0  # every call was announced: storage was never polled
    assert all(f.status == "success" and f.end_time for f in futures)


def test_lost_notices_only_delay_results(rabbit_config, make_executor, rabbitmq_broker):
    config = merge_config(rabbit_config, {"rabbitmq": {"reconcile_interval": 0.5}})
    executor = make_executor(config)
    declare = executor.job_monitor.notifier_settings
    # the calls' notices go to another queue: the client's queue never hears of them
    executor.job_monitor.notifier_settings = lambda e, j: {**declare(e, j), "queue": f"pywren.elsewhere.{e}"}
    futures = executor.map(square, range(4))
    assert executor.get_result(futures) == [0, 1, 4, 9]
    assert lists(executor) >= 1  # found by the periodic check of storage
    assert queue_depth(rabbitmq_broker.amqp_url, queue_name(executor.executor_id, futures[0].job_id)) == 0
    executor.job_monitor.link.delete([f"pywren.elsewhere.{executor.executor_id}"])


def test_errors_keep_type_and_remote_traceback(pw):
    futures = pw.map(fail, [1, 2])
    with pytest.raises(ValueError, match="bad input 1") as info:
        pw.get_result(futures)
    assert "in fail" in info.value.__cause__.traceback_text
    assert [f.status for f in futures] == ["error", "error"]
    assert futures[1].error["type"] == "ValueError" and "bad input 2" in futures[1].error["message"]


def test_a_call_stopped_by_its_timeout_is_reported(pw):
    future = pw.call_async(sleep_then, 30, timeout=1)
    with pytest.raises(pywren.ActivationTimeoutError, match="timeout of 1 s"):
        future.result()
    assert future.status == "error"


def test_extra_meta_survives_on_the_future(pw):
    future = pw.call_async(square, 4, extra_meta={"owner": "etl"})
    assert pw.get_result(future) == 16
    assert future.extra_meta == {"owner": "etl"}


# --- queues -----------------------------------------------------------------------------
def test_the_client_declares_the_queue_before_any_call_runs(pw, rabbitmq_broker):
    settings = pw.job_monitor.notifier_settings(pw.executor_id, "A900")
    assert settings["queue"] == queue_name(pw.executor_id, "A900")
    assert settings["amqp_url"] == rabbitmq_broker.amqp_url and settings["queue_ttl"] == 86_400
    assert queue_depth(rabbitmq_broker.amqp_url, settings["queue"]) == 0
    pw.job_monitor.forget(pw.executor_id, "A900")
    assert queue_depth(rabbitmq_broker.amqp_url, settings["queue"]) is None


def test_a_queue_declared_with_another_ttl_is_used_as_it_is(rabbit_config, make_executor, rabbitmq_broker):
    executor = make_executor(merge_config(rabbit_config, {"rabbitmq": {"reconcile_interval": 3600}}))
    queue = queue_name(executor.executor_id, "A000")  # the executor's first job
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_broker.amqp_url))
    connection.channel().queue_declare(queue, durable=True, arguments={"x-expires": 123_000})
    connection.close()
    future = executor.call_async(square, 12)
    assert future.job_id == "A000"
    assert executor.get_result(future, timeout=60) == 144
    assert lists(executor) == 0  # the client consumed it and the call published to it


def test_notices_sent_before_a_consumer_connects_are_kept(
    rabbit_config, localhost_config, make_executor, rabbitmq_broker, tmp_path
):
    gate = tmp_path / "gate"
    submitter = make_executor(rabbit_config)
    futures = submitter.map(wait_for_gate, [(str(gate), i) for i in range(6)])
    job_id, executor_id = futures[0].job_id, submitter.executor_id
    submitter.close()  # nobody consumes the job's queue from now on
    gate.touch()
    by_storage = make_executor(localhost_config)
    by_storage.wait(by_storage.job_futures(job_id, executor_id=executor_id))
    queue = queue_name(executor_id, job_id)
    notices = peek_notices(rabbitmq_broker.amqp_url, queue)
    final = sorted(n["call_id"] for n in notices if n["status"] == "success")
    assert final == [f.call_id for f in futures]

    collector = make_executor(rabbit_config)
    late = collector.job_futures(job_id, executor_id=executor_id)
    assert collector.get_result(late) == [i * i for i in range(6)]
    assert all(f.end_time for f in late)
    assert wait_until(lambda: queue_depth(rabbitmq_broker.amqp_url, queue) == 0, timeout=10)
    collector.clean(executor_id=executor_id)


def test_foreign_and_repeated_messages_are_harmless(rabbit_config, make_executor, rabbitmq_broker, tmp_path):
    pw = make_executor(merge_config(rabbit_config, {"rabbitmq": {"reconcile_interval": 3600}}))
    gate = tmp_path / "gate"
    futures = pw.map(wait_for_gate, [(str(gate), i) for i in range(3)])
    queue = queue_name(pw.executor_id, futures[0].job_id)
    base = {"executor_id": pw.executor_id, "job_id": futures[0].job_id, "call_id": "00001"}
    publish_raw(rabbitmq_broker.amqp_url, queue, b"not json")
    publish_raw(rabbitmq_broker.amqp_url, queue, json.dumps({"status": "success"}).encode())
    publish_raw(rabbitmq_broker.amqp_url, queue, json.dumps({**base, "status": "running"}).encode())
    # an older job that had the same ids announced its end: not this submission
    stale = {
        **base,
        "status": "success",
        "host_submit_time": futures[1].host_submit_time - 3600,
        "start_time": 1.0,
        "end_time": 2.0,
    }
    publish_raw(rabbitmq_broker.amqp_url, queue, json.dumps(stale).encode())
    pw.wait(futures, return_when=pywren.ALWAYS)
    assert not any(f.finished for f in futures)
    gate.touch()
    assert pw.get_result(futures, timeout=60) == [0, 1, 4]
    assert futures[1].end_time > 2.0
    assert lists(pw) == 0  # the real notices were not shadowed by the stale one
    # the same notices delivered again change nothing
    for notice in [
        {
            **base,
            "status": "success",
            "host_submit_time": futures[1].host_submit_time,
            "start_time": 1.0,
            "end_time": 2.0,
        },
        {**base, "status": "running"},
    ]:
        publish_raw(rabbitmq_broker.amqp_url, queue, json.dumps(notice).encode())
    assert wait_until(lambda: queue_depth(rabbitmq_broker.amqp_url, queue) == 0, timeout=30)
    again = pw.job_futures(futures[0].job_id)
    assert pw.get_result(again, timeout=60) == [0, 1, 4]
    assert again[1].end_time == pytest.approx(futures[1].end_time, abs=1.0)  # not the repeated notice's 2.0


def test_inbox_keeps_the_first_final_notice_of_the_latest_submission():
    inbox = Inbox()
    ids = {"executor_id": "e", "job_id": "M000", "call_id": "00000", "host_submit_time": 100.0}
    inbox.add({**ids, "status": "running", "start_time": 101.0})
    inbox.add({**ids, "status": "success", "end_time": 102.0})
    inbox.add({**ids, "status": "running", "start_time": 105.0})
    inbox.add({**ids, "status": "error", "end_time": 109.0})
    inbox.add({**ids, "host_submit_time": 50.0, "status": "error", "end_time": 60.0})
    assert inbox.notices[("e", "M000")]["00000"] == {**ids, "status": "success", "end_time": 102.0}
    inbox.add({**ids, "host_submit_time": 200.0, "status": "running", "start_time": 201.0})
    assert inbox.notices[("e", "M000")]["00000"]["start_time"] == 201.0


def test_clean_deletes_the_job_queues(pw, rabbit_config, make_executor, rabbitmq_broker):
    pw.get_result(pw.map(square, range(3)))
    pw.get_result(pw.call_async(square, 3))
    queues = [queue_name(pw.executor_id, job_id) for job_id in pw.job_ids()]
    assert len(queues) == 2 and set(queues) <= set(rabbitmq_broker.queue_names())
    pw.clean()
    assert not set(queues) & set(rabbitmq_broker.queue_names())


def test_clean_of_another_executor_finds_its_jobs_in_storage(pw, rabbit_config, make_executor, rabbitmq_broker):
    pw.get_result(pw.map(square, range(3)))
    queue = queue_name(pw.executor_id, pw.job_ids()[0])
    other = make_executor(rabbit_config)
    other.clean(executor_id=pw.executor_id)
    assert queue_depth(rabbitmq_broker.amqp_url, queue) is None


# --- broker failures ----------------------------------------------------------------------
def test_broker_down_at_start_falls_back_to_storage_polling(localhost_config, make_executor, caplog):
    dead_url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    config = merge_config(localhost_config, {"pywren": {"rabbitmq_monitor": True}, "rabbitmq": {"amqp_url": dead_url}})
    with caplog.at_level(logging.WARNING, logger="airflow_pywren"):
        executor = make_executor(config)
    assert isinstance(executor.job_monitor, RabbitMQMonitor) and not executor.job_monitor.connected
    assert any(
        "unreachable" in r.getMessage() and "polling storage" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
    assert "guest:***@" in caplog.text and "guest:guest@" not in caplog.text
    assert executor.get_result(executor.call_async(square, 5)) == 25
    assert executor.get_result(executor.map_reduce(square, range(4), sum)) == 14


def test_broker_stopped_mid_job_the_job_completes_and_everything_reconnects(pw, rabbitmq_broker, caplog, tmp_path):
    gate = tmp_path / "gate"
    publisher = RabbitMQNotifier.shared(pw.job_monitor.notifier_settings(pw.executor_id, "A901"))
    publisher.publish({"executor_id": pw.executor_id, "job_id": "A901", "call_id": "00000", "status": "running"})
    try:
        futures = pw.map(wait_for_gate, [(str(gate), i) for i in range(4)])
        with caplog.at_level(logging.WARNING, logger="airflow_pywren"):
            rabbitmq_broker.stop()
            gate.touch()  # every call ends while the broker is down
            assert pw.get_result(futures) == [0, 1, 4, 9]
        assert any(
            "lost the connection to RabbitMQ" in r.getMessage() and "polling storage" in r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING
        )
        assert not pw.job_monitor.connected
        assert pw.get_result(pw.call_async(square, 6)) == 36  # by storage polling

        rabbitmq_broker.start()
        LocalhostCompute(pw.config).shutdown()  # workers wait a while after a failed publish: use fresh ones
        assert wait_until(lambda: pw.job_monitor.connected, timeout=30)
        assert pw.get_result(pw.map(square, range(4))) == [0, 1, 4, 9]
        # a process's connection broken by the restart is replaced on its next notice
        publisher.publish({"executor_id": pw.executor_id, "job_id": "A901", "call_id": "00001", "status": "running"})
        assert wait_until(lambda: "00001" in pw.job_monitor.inbox.notices.get((pw.executor_id, "A901"), {}), timeout=30)
    finally:
        rabbitmq_broker.start()
        RabbitMQNotifier.close_all()


def test_bad_rabbitmq_settings_are_rejected_before_anything_runs(localhost_config):
    for bad, match in (
        ({"amqp_url": "http://127.0.0.1:5672"}, "amqp_url"),
        ({"amqp_url": "amqp://127.0.0.1:5672/%2F", "queue_ttl": 0}, "queue_ttl"),
    ):
        config = merge_config(localhost_config, {"pywren": {"rabbitmq_monitor": True}, "rabbitmq": bad})
        with pytest.raises(pywren.PyWrenConfigError, match=match):
            pywren.FunctionExecutor(config=config)
