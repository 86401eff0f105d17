"""A hung RabbitMQ broker (accepts connections, never answers): calls are never delayed, the client reads storage."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.monitor.rabbitmq import RabbitMQMonitor
from tests.conftest import merge_config


@pytest.fixture
def hung_broker() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts AMQP connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def square(x):
    return x * x


def test_a_hung_broker_never_delays_a_call(
    localhost_config, hung_broker: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the product's connection bounds (no query string): the AMQP handshake may take at most 5 s
    url = f"amqp://guest:guest@127.0.0.1:{hung_broker}/"
    config = merge_config(localhost_config, {"pywren": {"rabbitmq_monitor": True}, "rabbitmq": {"amqp_url": url}})
    caplog.set_level(logging.WARNING, logger="airflow_pywren")
    with pywren.FunctionExecutor(config=config) as executor:
        monitor = executor.job_monitor
        assert isinstance(monitor, RabbitMQMonitor)
        # by the time the executor exists, its first connection attempt gave up on the silent handshake
        unreachable = [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]
        assert len(unreachable) == 1, [r.getMessage() for r in caplog.records]
        assert "polling storage until it is back" in unreachable[0]
        assert f"amqp://guest:***@127.0.0.1:{hung_broker}/" in unreachable[0] and "handshake" in unreachable[0]
        assert not monitor.connected

        from_storage: list[int] = []
        storage_refresh = monitor.storage_monitor.refresh

        def refresh(futures):
            finished = storage_refresh(futures)
            from_storage.append(finished)
            return finished

        monkeypatch.setattr(monitor.storage_monitor, "refresh", refresh)
        # each call may run 4 s: publishing its start notice synchronously (up to the 5 s handshake bound
        # in the call's process too) would get it killed
        futures = executor.map(square, range(6), timeout=4)
        assert executor.get_result(futures, timeout=120) == [x * x for x in range(6)]
        assert all(f.status == "success" for f in futures)
        again = executor.map(square, [7], timeout=4)  # the next job on the same warm workers
        assert executor.get_result(again, timeout=120) == [49]
        assert sum(from_storage) == 7  # every call was seen finished in storage: the broker never answered
        assert not monitor.connected
        executor.clean()
