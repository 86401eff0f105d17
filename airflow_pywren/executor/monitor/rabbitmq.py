"""The RabbitMQ monitor: futures resolved from the notices calls publish as they start and end.

Queues
    One durable queue per job, ``pywren.{executor_id}.{job_id}``, so that a client
    waiting for one job (an Airflow sensor, say) never takes the notices of another
    job of the same executor. The client declares it before invoking the job and
    the calls declare it again (idempotently), so notices published while nobody
    consumes wait in the queue, for a client that connects after the calls ended as
    well. ``x-expires`` (``rabbitmq.queue_ttl`` seconds without consumers) removes
    abandoned queues; ``forget`` (called by ``FunctionExecutor.clean``) deletes them.

Consuming
    A daemon thread owns the connection: it consumes the queues of the jobs this
    monitor has seen, acknowledges each notice once it is recorded in memory, and
    wakes ``pause`` at once, which is where the latency gain over polling comes from.
    The same notice twice (a redelivery) changes nothing.

Notices and storage
    A ``success`` notice is published after the call wrote its output and its final
    status, and carries the call's stats, so the future is finished from the notice
    without reading storage (its ``end_time`` and ``duration`` are the stored
    status's). An ``error`` notice makes the monitor read that call's final
    status for the error details.
    Storage remains the source of truth: the monitor refreshes the pending futures
    from storage on every (re)connection, for jobs it did not declare itself, and
    every ``rabbitmq.reconcile_interval`` seconds, so a lost notice delays a result
    but never loses it. While the broker is unreachable, it polls storage like
    :class:`~airflow_pywren.executor.monitor.storage.StorageMonitor` (a WARNING says
    so) and the thread keeps reconnecting in the background.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions

from airflow_pywren.executor import keys
from airflow_pywren.executor.errors import PyWrenConfigError
from airflow_pywren.executor.jobref import CallStatus
from airflow_pywren.executor.monitor.base import JobMonitor
from airflow_pywren.executor.monitor.storage import StorageMonitor, read_status
from airflow_pywren.executor.worker.rabbitmq_notify import (
    connection_parameters,
    describe_error,
    queue_arguments,
    safe_url,
)

if TYPE_CHECKING:
    from airflow_pywren.executor.future import ResponseFuture

logger = logging.getLogger(__name__)

QUEUE_PREFIX = "pywren"
DECLARE_TIMEOUT = 5.0  # seconds the client waits for a queue declaration or deletion
RETRY_MIN, RETRY_MAX = 0.5, 10.0  # reconnection back-off, seconds
PREFETCH = 1000
FINAL = (CallStatus.SUCCESS, CallStatus.ERROR)


def queue_name(executor_id: str, job_id: str) -> str:
    """The queue holding the notices of one job."""
    return f"{QUEUE_PREFIX}.{executor_id}.{job_id}"


class Inbox:
    """Notices received by the consumer thread, read by the monitor; guarded by ``cond``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.notices: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        # calls whose final notice was applied to a future and dropped: call id -> its precedence
        self.settled: dict[tuple[str, str], dict[str, tuple[float, bool]]] = {}
        self.news = False  # a notice arrived, or the connection state changed
        self.generation = 0  # counts connections: notices are known complete per job and connection
        self.up = False

    def add(self, notice: dict[str, Any]) -> None:
        """Record ``notice`` unless it is older news than the one known for its call.

        A final notice replaces a running one, never another final one of the same
        submission, so duplicates are harmless; a later submission (an executor id
        reused after ``clean``) replaces an earlier one.
        """
        key, call_id, precedence = (notice["executor_id"], notice["job_id"]), notice["call_id"], _precedence(notice)
        with self.cond:
            settled = self.settled.get(key, {}).get(call_id)
            calls = self.notices.setdefault(key, {})
            known = calls.get(call_id)
            if (settled is None or precedence > settled) and (known is None or precedence > _precedence(known)):
                calls[call_id] = notice
            self.news = True
            self.cond.notify_all()

    def set_up(self, up: bool) -> int:
        """Record a connection (a new generation) or its loss; return the generation."""
        with self.cond:
            self.up = up
            self.generation += up
            self.news = True
            self.cond.notify_all()
            return self.generation


def _precedence(notice: dict[str, Any]) -> tuple[float, bool]:
    submitted = notice.get("host_submit_time")
    return (submitted if isinstance(submitted, (int, float)) else 0.0, notice["status"] in FINAL)


def parse_notice(body: bytes) -> dict[str, Any] | None:
    """The notice in a message body, or None when it is not one."""
    try:
        notice = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(notice, dict) or notice.get("status") not in (CallStatus.RUNNING, *FINAL):
        return None
    if not all(isinstance(notice.get(name), str) for name in ("executor_id", "job_id", "call_id")):
        return None
    return notice


@dataclass
class _Deletion:
    queues: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class BrokerLink:
    """A daemon thread that keeps one connection, consumes the wanted queues and reconnects.

    Only the thread touches pika objects; other threads ask for work (``subscribe``,
    ``delete``) and wake it with ``add_callback_threadsafe``.
    """

    def __init__(self, amqp_url: str, queue_ttl: int, inbox: Inbox) -> None:
        self.amqp_url = amqp_url
        self.queue_ttl = queue_ttl
        self.inbox = inbox
        self.params = connection_parameters(amqp_url)
        self.lock = threading.Condition()
        self.wanted: dict[str, int] = {}  # queue -> generation of the connection consuming it (0: none)
        self.generation = 0
        self.deletions: list[_Deletion] = []
        self.stopping = threading.Event()
        self.first_attempt = threading.Event()
        self.connection: pika.BlockingConnection | None = None
        self.consumer_tags: dict[str, str] = {}
        self.thread = threading.Thread(target=self._run, name="pywren-rabbitmq", daemon=True)
        self.thread.start()

    # --- other threads ------------------------------------------------------
    def subscribe(self, queue: str, timeout: float = 0.0) -> int:
        """Declare and consume ``queue``; wait up to ``timeout`` s for it.

        Returns the generation of the connection consuming it, or 0 when none is yet.
        """
        with self.lock:
            self.wanted.setdefault(queue, 0)
        self._wake()
        deadline = time.monotonic() + timeout
        with self.lock:
            while not self.wanted.get(queue, 0) and self.inbox.up and not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.lock.wait(remaining)
            return self.wanted.get(queue, 0)

    def delete(self, queues: list[str], timeout: float = DECLARE_TIMEOUT) -> bool:
        """Stop consuming ``queues`` and delete them; False when the broker could not be reached."""
        deletion = _Deletion(queues)
        with self.lock:
            for queue in queues:
                self.wanted.pop(queue, None)
            up = self.inbox.up
            if up:
                self.deletions.append(deletion)
        if not up:
            return _delete_directly(self.amqp_url, queues)
        self._wake()
        deletion.done.wait(timeout)
        return deletion.ok

    def stop(self) -> None:
        """Close the connection and end the thread."""
        self.stopping.set()
        self._wake()
        if threading.current_thread() is not self.thread:
            self.thread.join(DECLARE_TIMEOUT)

    def _wake(self) -> None:
        connection = self.connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(lambda: None)
            except Exception:  # closed meanwhile: the thread notices by itself
                pass

    # --- the thread -----------------------------------------------------------
    def _run(self) -> None:
        delay, outage_logged = RETRY_MIN, False
        while not self.stopping.is_set():
            try:
                self._connect()
            except Exception as exc:
                self._close()
                if not outage_logged:
                    logger.warning(
                        "RabbitMQ at %s is unreachable (%s); polling storage until it is back, "
                        "reconnecting in the background",
                        safe_url(self.amqp_url),
                        describe_error(exc),
                    )
                    outage_logged = True
                self.first_attempt.set()
                self.stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            logger.log(
                logging.INFO if outage_logged else logging.DEBUG,
                "connected to RabbitMQ at %s; reconciling with storage",
                safe_url(self.amqp_url),
            )
            delay, outage_logged = RETRY_MIN, False
            self.generation = self.inbox.set_up(True)
            self.first_attempt.set()
            assert self.connection is not None  # just opened
            try:
                while not self.stopping.is_set():
                    self._do_work()
                    self.connection.process_data_events(time_limit=1.0)
            except Exception as exc:
                if not self.stopping.is_set():
                    logger.warning(
                        "lost the connection to RabbitMQ at %s (%s); polling storage until it is back",
                        safe_url(self.amqp_url),
                        describe_error(exc),
                    )
                    outage_logged = True
            finally:
                self.inbox.set_up(False)
                self._close()
        self._close()
        self.first_attempt.set()

    def _connect(self) -> None:
        self.connection = pika.BlockingConnection(self.params)
        self.admin = self.connection.channel()
        self.consumer = self.connection.channel()
        self.consumer.basic_qos(prefetch_count=PREFETCH)
        self.consumer_tags.clear()
        with self.lock:
            for queue in self.wanted:
                self.wanted[queue] = 0

    def _do_work(self) -> None:
        with self.lock:
            todo = [queue for queue, consuming in self.wanted.items() if not consuming]
            deletions, self.deletions = self.deletions, []
        for queue in todo:
            self._declare(queue)
            self.consumer_tags[queue] = self.consumer.basic_consume(queue, self._on_message)
            with self.lock:
                if queue in self.wanted:
                    self.wanted[queue] = self.generation
                self.lock.notify_all()
        for deletion in deletions:
            for queue in deletion.queues:
                tag = self.consumer_tags.pop(queue, None)
                if tag is not None:
                    self.consumer.basic_cancel(tag)
                self._admin_channel().queue_delete(queue)
            deletion.ok = True
            deletion.done.set()

    def _admin_channel(self) -> Any:
        if not self.admin.is_open:
            assert self.connection is not None  # called from the connected loop only
            self.admin = self.connection.channel()
        return self.admin

    def _declare(self, queue: str) -> None:
        """Declare ``queue``; one that exists with other arguments (another ``queue_ttl``) is kept as is."""
        try:
            self._admin_channel().queue_declare(queue, durable=True, arguments=queue_arguments(self.queue_ttl))
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # PRECONDITION_FAILED: declared with other arguments
                raise
            self._admin_channel().queue_declare(queue, passive=True)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        notice = parse_notice(body)
        if notice is None:
            logger.debug("ignored a message that is not a call notice: %r", body[:200])
        else:
            self.inbox.add(notice)
        channel.basic_ack(method.delivery_tag)

    def _close(self) -> None:
        connection, self.connection = self.connection, None
        with self.lock:
            for queue in self.wanted:
                self.wanted[queue] = 0
            for deletion in self.deletions:
                deletion.done.set()
            self.deletions = []
            self.lock.notify_all()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # the broker is gone: nothing to release
                pass


def _delete_directly(amqp_url: str, queues: list[str]) -> bool:
    """Delete ``queues`` over a short-lived connection (the consumer thread is not connected)."""
    try:
        connection = pika.BlockingConnection(connection_parameters(amqp_url))
    except Exception:
        return False
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        return True
    except Exception:
        return False
    finally:
        try:
            connection.close()
        except Exception:
            pass


class RabbitMQMonitor(JobMonitor):
    """Futures resolved by RabbitMQ notices, with storage as the fallback and the source of truth."""

    name = "rabbitmq"

    def __init__(self, settings: dict[str, Any], storage_monitor: StorageMonitor, executor_id: str) -> None:
        self.amqp_url: str = settings["amqp_url"]
        self.queue_ttl: int = settings["queue_ttl"]
        self.reconcile_interval: float = settings.get("reconcile_interval", 5.0)
        self.storage_monitor = storage_monitor
        self.executor_id = executor_id
        _check_settings(self.amqp_url, self.queue_ttl, self.reconcile_interval)
        # job -> generation of the connection since which all its notices reach this monitor (0: unknown)
        self.jobs: dict[tuple[str, str], int] = {}
        self.next_reconcile = 0.0
        self._start()

    def _start(self) -> None:
        self.pid = os.getpid()
        self.inbox = Inbox()
        self.link = BrokerLink(self.amqp_url, self.queue_ttl, self.inbox)
        self._finalizer = weakref.finalize(self, self.link.stop)
        self.link.first_attempt.wait(DECLARE_TIMEOUT + 5)
        self.next_reconcile = time.monotonic() + self.reconcile_interval

    def _check_fork(self) -> None:
        """In a forked child the thread is gone: start a new one (the parent's socket is left alone)."""
        if os.getpid() != self.pid:
            self._finalizer.detach()
            self.jobs = dict.fromkeys(self.jobs, 0)
            self._start()

    @property
    def connected(self) -> bool:
        """True while notices can be received."""
        return self.inbox.up

    # --- JobMonitor -------------------------------------------------------------
    def notifier_settings(self, executor_id: str, job_id: str) -> dict[str, Any]:
        """Declare the job's queue before its calls run; return what the calls need to publish."""
        self._check_fork()
        queue = queue_name(executor_id, job_id)
        key = (executor_id, job_id)
        generation = self.link.subscribe(queue, timeout=DECLARE_TIMEOUT) if self.inbox.up else 0
        self.jobs[key] = generation or self.jobs.get(key, 0)
        return {"amqp_url": self.amqp_url, "queue": queue, "queue_ttl": self.queue_ttl}

    def refresh(self, futures: Sequence[ResponseFuture]) -> int:
        self._check_fork()
        pending = [f for f in futures if not f.finished]
        if not pending:
            return 0
        job_keys = {(f.executor_id, f.job_id) for f in pending}
        for key in job_keys:
            if key not in self.jobs:
                self.jobs[key] = 0
                self.link.subscribe(queue_name(*key), timeout=DECLARE_TIMEOUT if self.inbox.up else 0)
        with self.inbox.cond:
            up, generation = self.inbox.up, self.inbox.generation
            self.inbox.news = False
            notices = [self.inbox.notices.get((f.executor_id, f.job_id), {}).get(f.call_id) for f in pending]
            settled = [f.call_id in self.inbox.settled.get((f.executor_id, f.job_id), ()) for f in pending]
        finished = self._apply(pending, notices)
        resettle = {id(f) for f, done in zip(pending, settled) if done and not f.finished}
        still = [f for f in pending if not f.finished]
        now = time.monotonic()
        if not still:
            return finished
        if not up or now >= self.next_reconcile:
            targets = still
            self.next_reconcile = now + self.reconcile_interval
        else:
            # jobs not consumed since this connection began (first seen, or (re)connected since),
            # and calls whose notice was used up by another future of the same call
            targets = [f for f in still if self.jobs[(f.executor_id, f.job_id)] != generation or id(f) in resettle]
        if targets:
            finished += self.storage_monitor.refresh(targets)
            self._settle([f for f in targets if f.finished])
            if up:
                for future in targets:
                    self.jobs[(future.executor_id, future.job_id)] = generation
        return finished

    def pause(self, seconds: float, done: int = 0, longest: float | None = None) -> None:
        self._check_fork()
        if not self.inbox.up:
            self.storage_monitor.pause(seconds, done, longest)
            return
        timeout = max(0.0, min(seconds, self.next_reconcile - time.monotonic()))
        if longest is not None:
            timeout = min(timeout, longest)
        with self.inbox.cond:
            if self.inbox.up and not self.inbox.news:
                self.inbox.cond.wait(timeout)

    def wake(self) -> None:
        with self.inbox.cond:
            self.inbox.news = True  # the next refresh drains the inbox once more, finding nothing new
            self.inbox.cond.notify_all()
        self.storage_monitor.wake()

    def forget(self, executor_id: str, job_id: str | None = None) -> None:
        """Delete the queues of one job, or of every job of the executor (known here or in storage)."""
        job_ids = {job_id} if job_id is not None else self._job_ids(executor_id)
        for key in [(executor_id, j) for j in job_ids]:
            self.jobs.pop(key, None)
            with self.inbox.cond:
                self.inbox.notices.pop(key, None)
                self.inbox.settled.pop(key, None)
        if not job_ids:
            return
        queues = sorted(queue_name(executor_id, j) for j in job_ids)
        if self.link.delete(queues):
            logger.debug("deleted %d RabbitMQ queue(s) of executor %s", len(queues), executor_id)
        else:
            logger.warning(
                "could not delete %d RabbitMQ queue(s) of executor %s at %s; unused, they expire after "
                "%d s (rabbitmq.queue_ttl)",
                len(queues),
                executor_id,
                safe_url(self.amqp_url),
                self.queue_ttl,
            )

    def close(self) -> None:
        self._finalizer()

    # --- helpers --------------------------------------------------------------
    def _apply(self, pending: list[ResponseFuture], notices: list[dict[str, Any] | None]) -> int:
        """Move futures along with their notices; return how many finished.

        A final notice, once applied, leaves the inbox (memory stays bounded by the calls
        in flight); its call is remembered as settled so that another future of the same
        call is resolved from storage and repeated notices are ignored.
        """
        used: list[ResponseFuture] = []
        for future, notice in zip(pending, notices):
            if notice is None or not _same_submission(future, notice):
                continue
            if notice["status"] == CallStatus.RUNNING:
                future.set_running(notice)
                continue
            if notice["status"] == CallStatus.ERROR:
                status = read_status(self.storage_monitor.storage, future.executor_id, future.job_id, future.call_id)
                if status is None:  # not visible yet: storage reconciliation picks it up
                    continue
            else:
                status = _status_from_notice(notice)
            future.set_final(status)
            used.append(future)
        self._settle(used)
        return len(used)

    def _settle(self, finished: list[ResponseFuture]) -> None:
        """Drop the notices of calls whose futures finished; later notices of the same submission are ignored."""
        if not finished:
            return
        with self.inbox.cond:
            for future in finished:
                key = (future.executor_id, future.job_id)
                self.inbox.notices.get(key, {}).pop(future.call_id, None)
                precedence = _precedence({"host_submit_time": future.host_submit_time, "status": future.status})
                self.inbox.settled.setdefault(key, {})[future.call_id] = precedence

    def _job_ids(self, executor_id: str) -> set[str]:
        """Jobs of ``executor_id`` seen by this monitor or stored (by manifest) in storage."""
        known = {job for (executor, job) in self.jobs if executor == executor_id}
        storage = self.storage_monitor.storage
        prefix = keys.executor_prefix(storage.prefix, executor_id)
        try:
            stored = {
                key[len(prefix) :].split("/")[0]
                for key in storage.list_keys(prefix)
                if key.endswith("/" + keys.JOB_MANIFEST)
            }
        except Exception as exc:
            logger.warning("could not list the jobs of executor %s to delete their queues: %s", executor_id, exc)
            stored = set()
        return known | stored


def _same_submission(future: ResponseFuture, notice: dict[str, Any]) -> bool:
    """False for a notice of an earlier job that had the same ids (an executor id reused after ``clean``)."""
    submitted, announced = future.host_submit_time, notice.get("host_submit_time")
    return submitted is None or announced is None or abs(float(submitted) - float(announced)) < 1e-3


def _status_from_notice(notice: dict[str, Any]) -> dict[str, Any]:
    status = {**notice, "error": None}
    status.pop("extra_meta", None)
    if isinstance(notice.get("start_time"), (int, float)) and isinstance(notice.get("end_time"), (int, float)):
        status["duration"] = notice["end_time"] - notice["start_time"]
    return status


def _check_settings(amqp_url: Any, queue_ttl: Any, reconcile_interval: Any) -> None:
    """Reject settings RabbitMQ or pika would refuse, before anything is invoked."""
    if not isinstance(amqp_url, str) or not amqp_url.startswith(("amqp://", "amqps://")):
        raise PyWrenConfigError(
            f"'rabbitmq.amqp_url' is {amqp_url!r}; use amqp://user:password@host:port/vhost (or amqps:// for TLS)"
        )
    try:
        connection_parameters(amqp_url)
    except Exception as exc:
        raise PyWrenConfigError(f"'rabbitmq.amqp_url' {safe_url(amqp_url)!r} is not a valid AMQP URL: {exc}") from None
    if queue_ttl < 1:
        raise PyWrenConfigError(f"'rabbitmq.queue_ttl' must be 1 second or more, got {queue_ttl}")
    if not isinstance(reconcile_interval, (int, float)) or reconcile_interval <= 0:
        raise PyWrenConfigError(
            f"'rabbitmq.reconcile_interval' must be a positive number of seconds, got {reconcile_interval!r}"
        )


__all__ = ["BrokerLink", "Inbox", "RabbitMQMonitor", "queue_name"]
