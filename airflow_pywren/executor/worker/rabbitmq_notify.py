"""Function side of RabbitMQ monitoring: publish a call's start and end notices.

Each job has its own durable queue (see :mod:`airflow_pywren.executor.monitor.rabbitmq`),
declared by the client before it invokes the job and again, idempotently, by the first
call of the job that publishes on a connection. Messages are persistent and published
with publisher confirms, so a notice the broker acknowledged survives until a consumer
reads it, however late that consumer connects; a confirm costs one round trip per notice.

One connection per process and broker URL serves every call a warm worker runs. The
cache is keyed by the process id: a process forked from another one (the localhost
runner forks its workers) never uses its parent's socket. Publishing never fails a
call: storage already holds the call's status, so on any broker error the notice is
logged and dropped, and after a failed connection the process skips notices for
``RETRY_AFTER_SECONDS`` instead of waiting for the broker on every call.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, ClassVar

import pika
import pika.exceptions

from airflow_pywren.executor.jobref import CallStatus
from airflow_pywren.executor.worker.outbox import Outbox

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10.0
# Connection settings used unless the amqp_url's query string sets them.
URL_DEFAULTS: dict[str, Any] = {
    "socket_timeout": 3.0,
    "stack_timeout": 5.0,
    "blocked_connection_timeout": 5.0,
    "connection_attempts": 1,
}


def quiet_pika() -> None:
    """Leave connection errors to this package's messages: pika logs several lines per failed attempt.

    Only when the application did not configure the ``pika`` logger itself.
    """
    pika_logger = logging.getLogger("pika")
    if pika_logger.level == logging.NOTSET:
        pika_logger.setLevel(logging.CRITICAL)


quiet_pika()


def describe_error(exc: BaseException) -> str:
    """The root cause of a pika error in one line, e.g. ``ConnectionRefusedError: [Errno 111] ...``."""
    for _ in range(10):
        inner = [*(getattr(exc, "exceptions", None) or []), getattr(exc, "exception", None), *exc.args]
        causes = [e for e in inner if isinstance(e, BaseException)]
        if not causes:
            break
        exc = causes[0]
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text[:200]}"


def connection_parameters(amqp_url: str, **defaults: Any) -> pika.URLParameters:
    """pika parameters for ``amqp_url``, with ``defaults`` for settings its query string leaves out."""
    params = pika.URLParameters(amqp_url)
    query = amqp_url.partition("?")[2]
    given = {part.partition("=")[0] for part in query.split("&") if part}
    for name, value in {**URL_DEFAULTS, **defaults}.items():
        if name not in given:
            setattr(params, name, value)
    return params


def queue_arguments(queue_ttl: int) -> dict[str, Any]:
    """Arguments of a job queue; client and functions must declare it with the same ones."""
    return {"x-expires": int(queue_ttl) * 1000}


def safe_url(amqp_url: str) -> str:
    """``amqp_url`` without its password, for messages."""
    scheme, sep, rest = amqp_url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return amqp_url
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}"


class _Publisher:
    """One confirmed channel of one process to one broker; reconnects when the broker dropped it."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.connection: pika.BlockingConnection | None = None
        self.channel: Any = None
        self.declared: set[str] = set()
        self.retry_at = 0.0

    def _open(self) -> Any:
        if (
            self.connection is not None
            and self.connection.is_open
            and self.channel is not None
            and self.channel.is_open
        ):
            self.connection.process_data_events(0)  # notices a connection the broker closed while idle
            if self.connection.is_open and self.channel.is_open:
                return self.channel
        self.reset()
        self.connection = pika.BlockingConnection(connection_parameters(self.amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        return self.channel

    def reset(self) -> None:
        """Forget the connection (closing it if it is still open)."""
        connection, self.connection, self.channel = self.connection, None, None
        self.declared.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # already broken: nothing to release
                pass

    def _declare(self, channel: Any, queue: str, queue_ttl: int) -> Any:
        """Declare ``queue``; one that exists with other arguments (another ``queue_ttl``) is used as is."""
        try:
            channel.queue_declare(queue, durable=True, arguments=queue_arguments(queue_ttl))
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # PRECONDITION_FAILED: the queue exists with other arguments
                raise
            assert self.connection is not None  # a channel exists, so its connection does
            channel = self.channel = self.connection.channel()
            channel.confirm_delivery()
        self.declared.add(queue)
        return channel

    def publish(self, queue: str, queue_ttl: int, body: bytes) -> bool:
        """Publish ``body`` to ``queue``; True once the broker confirmed it."""
        if time.monotonic() < self.retry_at:
            return False
        for attempt in (1, 2):
            try:
                channel = self._open()
                if queue not in self.declared:
                    channel = self._declare(channel, queue, queue_ttl)
                channel.basic_publish(
                    "",
                    queue,
                    body,
                    mandatory=True,
                    properties=pika.BasicProperties(
                        delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json"
                    ),
                )
                return True
            except pika.exceptions.UnroutableError:
                logger.debug("queue %s no longer exists (the job was cleaned or expired): notice dropped", queue)
                self.declared.discard(queue)
                return False
            except pika.exceptions.NackError:
                logger.warning(
                    "RabbitMQ refused a notice for queue %s; the client will read the status from storage", queue
                )
                return False
            except Exception as exc:  # connection refused, dropped, timed out, channel closed
                self.reset()
                if attempt == 2:
                    self.retry_at = time.monotonic() + RETRY_AFTER_SECONDS
                    logger.warning(
                        "cannot publish to RabbitMQ at %s (%s); the client will read the status from "
                        "storage; next attempt in %.0f s",
                        safe_url(self.amqp_url),
                        describe_error(exc),
                        RETRY_AFTER_SECONDS,
                    )
        return False


class RabbitMQNotifier:
    """Publishes a call's notices to its job's queue over the process's shared connection."""

    _publishers: ClassVar[dict[tuple[int, str], _Publisher]] = {}

    def __init__(self, publisher: _Publisher, queue: str, queue_ttl: int) -> None:
        self.publisher = publisher
        self.queue = queue
        self.queue_ttl = queue_ttl

    @classmethod
    def shared(cls, settings: dict[str, Any]) -> RabbitMQNotifier:
        """A notifier for ``settings`` (``amqp_url``, ``queue``, ``queue_ttl``) on this process's connection."""
        key = (os.getpid(), settings["amqp_url"])
        publisher = cls._publishers.get(key)
        if publisher is None:
            for stale in [k for k in cls._publishers if k[0] != key[0]]:
                del cls._publishers[stale]  # a parent's connection: never touch its socket
            publisher = cls._publishers[key] = _Publisher(settings["amqp_url"])
        return cls(publisher, settings["queue"], settings["queue_ttl"])

    def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` as JSON in the background (see :mod:`.outbox`): a hung broker never delays the call.

        An end notice waits up to ``outbox.END_WAIT_SECONDS`` for the notices before it to leave.
        """
        body = json.dumps(message).encode()
        outbox = Outbox.for_process()
        outbox.submit(lambda: self._send(body))
        if message.get("status") != CallStatus.RUNNING:
            outbox.drain()

    def _send(self, body: bytes) -> None:
        try:
            self.publisher.publish(self.queue, self.queue_ttl, body)
        except Exception:  # never let a notice fail the call
            logger.exception("unexpected error publishing a notice to queue %s", self.queue)

    def close(self) -> None:
        """Nothing to do: the connection stays open for the process's next calls."""

    @classmethod
    def close_all(cls) -> None:
        """Close this process's connections."""
        for key in [k for k in cls._publishers if k[0] == os.getpid()]:
            cls._publishers.pop(key).reset()
