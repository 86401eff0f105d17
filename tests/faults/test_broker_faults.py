"""A hung RabbitMQ broker (accepts connections, never answers): calls are never delayed, the client reads storage."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import airflow_pywren as pywren
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


def test_a_hung_broker_never_delays_a_call(localhost_config, hung_broker: int) -> None:
    # pika would wait 60 s for the hung broker on each connection attempt (as for an expiring heartbeat)
    url = f"amqp://guest:guest@127.0.0.1:{hung_broker}/?socket_timeout=60&stack_timeout=60"
    config = merge_config(localhost_config, {"pywren": {"rabbitmq_monitor": True}, "rabbitmq": {"amqp_url": url}})
    with pywren.FunctionExecutor(config=config) as executor:
        # each call may run 5 s: publishing its start notice synchronously would get it killed
        futures = executor.map(square, range(6), timeout=5)
        assert executor.get_result(futures, timeout=120) == [x * x for x in range(6)]
        assert all(f.status == "success" for f in futures)
        again = executor.map(square, [7], timeout=5)  # the next job on the same warm workers
        assert executor.get_result(again, timeout=120) == [49]
        executor.clean()
