"""Helpers of the RabbitMQ monitoring tests: functions run remotely and broker inspection with pika."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pika
import pika.exceptions


def square(x: int) -> int:
    return x * x


def fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def sleep_then(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def wait_for_gate(args: tuple[str, int]) -> int:
    """Block until the file ``args[0]`` exists, then return ``args[1]`` squared."""
    path, x = args
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return x * x


def queue_depth(amqp_url: str, queue: str) -> int | None:
    """Messages ready in ``queue``, or None when it does not exist."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise
    finally:
        if connection.is_open:
            connection.close()


def peek_notices(amqp_url: str, queue: str) -> list[dict[str, Any]]:
    """Every notice waiting in ``queue``, left in it (read without acknowledgement, then requeued)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        notices = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return notices
            notices.append(json.loads(body))
    finally:
        connection.close()  # unacknowledged messages go back to the queue


def publish_raw(amqp_url: str, queue: str, body: bytes) -> None:
    """Publish ``body`` to ``queue`` as a call would (persistent, default exchange)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", queue, body, properties=pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return bool(value)
        time.sleep(interval)
