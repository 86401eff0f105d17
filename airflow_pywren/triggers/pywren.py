"""PyWrenJobTrigger: follows a PyWren job from the triggerer until it finishes, fails or times out.

Everything that blocks (connection lookup, executor construction, storage LISTs and GETs,
the monitor's pauses between polls) runs in one thread dedicated to the trigger, never on the
event loop; a cancelled trigger ends the pause in progress at once.
Storage is the source of truth: a new trigger instance (after a triggerer restart) simply
reads the job's state from storage again.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from airflow_pywren.compat import BaseTrigger, TriggerEvent
from airflow_pywren.executor.errors import PyWrenConfigError, PyWrenError, StorageError
from airflow_pywren.executor.jobref import JobRef, JobStatus
from airflow_pywren.executor.jobs import JobProgress, JobWatcher, ProgressLog

STORAGE, RABBITMQ = "storage", "rabbitmq"
MONITORS = (STORAGE, RABBITMQ)
SUCCESS, ERROR = JobStatus.SUCCESS, JobStatus.ERROR
TIMEOUT = "timeout"
"""The event status of a job that did not finish in time (its calls may still run)."""
PROGRESS_LOG_SECONDS = 5.0
"""Least time between two progress lines while calls keep finishing."""
QUIET_LOG_SECONDS = 60.0
"""A progress line at least this often even when nothing changed."""
MAX_POLL_FAILURES = 3
"""Consecutive failed polls (storage or broker unreachable) before the trigger reports an error."""

T = TypeVar("T")


def updated_job_ref(job_ref: dict[str, Any] | JobRef, progress: JobProgress | dict[str, Any]) -> dict[str, Any]:
    """The job reference's XCom dict with the progress fields operators push: status, done, failed."""
    state = progress.as_dict() if isinstance(progress, JobProgress) else progress
    ref = JobRef.parse(job_ref).with_progress(JobStatus(state["status"]), state["done"], state["failed"])
    return ref.to_xcom()


def describe_failure(progress: dict[str, Any]) -> str:
    """A failure report from ``JobProgress.as_dict()``: failed count, error type, message and remote traceback."""
    errors = progress.get("errors") or []
    jobs = "+".join(progress.get("job_ids") or [])
    head = f"{progress.get('failed', len(errors))} of {progress.get('total', '?')} call(s) of {progress.get('kind')} job {jobs} failed."
    if not errors:
        return head
    first = errors[0]
    lines = [
        head,
        f"First failure: job {first.get('job_id')} call {first.get('call_id')}: "
        f"{first.get('type', 'Exception')}: {first.get('message', '')}",
    ]
    lines += [
        f"Also failed: job {e.get('job_id')} call {e.get('call_id')}: {e.get('type', 'Exception')}: {e.get('message', '')}"
        for e in errors[1:]
    ]
    if first.get("traceback"):
        lines.append("Remote traceback:\n" + first["traceback"].rstrip())
    return "\n".join(lines)


class _Worker:
    """One thread that runs this trigger's blocking calls in order (a pika connection stays in one thread)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pywren-trigger")

    async def __call__(self, func: Callable[..., T], *args: Any) -> T:
        context = contextvars.copy_context()  # log context of the trigger follows its calls
        call = functools.partial(context.run, func, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def shutdown(self, last: Callable[[], Any] | None = None) -> None:
        """Run ``last`` after whatever is in flight, then let the thread end; does not block."""
        if last is not None:
            self._pool.submit(last)
        self._pool.shutdown(wait=False)


class PyWrenJobTrigger(BaseTrigger):
    """Fires one event when the referenced job has finished, has failed calls, or ran past ``timeout``.

    :param job_ref: the job reference (XCom return_value of a PyWren operator).
    :param pywren_conn_id: the Airflow connection with the executor configuration.
    :param monitor: ``"storage"`` polls storage, the pauses growing from ``pywren.monitor_interval`` to
        ``poll_interval`` seconds while no call finishes; ``"rabbitmq"`` waits for the calls' RabbitMQ
        notices (at most ``poll_interval`` seconds between refreshes), storage still deciding the outcome.
    :param poll_interval: the longest pause between polls.
    :param timeout: seconds to wait in all before a ``"timeout"`` event; None waits for ever.
    :param end_time: the absolute deadline (epoch seconds) derived from ``timeout``; kept in the
        serialized kwargs so that a restarted triggerer keeps the original deadline.
    """

    def __init__(
        self,
        job_ref: dict[str, Any],
        pywren_conn_id: str = "pywren_default",
        monitor: str = STORAGE,
        poll_interval: float = 2.0,
        timeout: float | None = None,
        end_time: float | None = None,
    ) -> None:
        super().__init__()
        self._ref = JobRef.parse(job_ref)
        self.job_ref: dict[str, Any] = self._ref.to_xcom()
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or not poll_interval > 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self.pywren_conn_id = pywren_conn_id
        self.monitor = monitor
        self.poll_interval = float(poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        if end_time is None and self.timeout is not None:
            end_time = time.time() + self.timeout
        self.end_time = None if end_time is None else float(end_time)
        self._last_failure = ""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ref": dict(self.job_ref),
                "pywren_conn_id": self.pywren_conn_id,
                "monitor": self.monitor,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "end_time": self.end_time,
            },
        )

    # ------------------------------------------------------------------ run
    async def run(self) -> AsyncIterator[TriggerEvent]:
        worker = _Worker()
        watcher: JobWatcher | None = None
        try:
            watcher, payload = await self._connect(worker)
            if payload is None:
                assert watcher is not None  # _connect returns a watcher or an error event
                payload = await self._follow(worker, watcher)
            if watcher is not None:
                executor, watcher = watcher.executor, None
                await worker(executor.close)
        except BaseException:  # cancelled (triggerer stopping): release in the background
            if watcher is not None:
                watcher.executor.job_monitor.wake()  # a pause in progress ends now
            worker.shutdown(watcher.executor.close if watcher is not None else None)
            raise
        worker.shutdown()
        yield TriggerEvent(payload)

    def _remaining(self) -> float:
        return math.inf if self.end_time is None else self.end_time - time.time()

    def _build_watcher(self) -> JobWatcher:
        from airflow_pywren.hooks.pywren import PyWrenHook

        return PyWrenHook(pywren_conn_id=self.pywren_conn_id, resumed=True).watch(
            self.job_ref, rabbitmq_monitor=self.monitor == RABBITMQ
        )

    async def _connect(self, worker: _Worker) -> tuple[JobWatcher | None, dict[str, Any] | None]:
        """The job's watcher, or (None, error event) when it cannot be followed."""
        failures = 0
        while True:
            try:
                return await worker(self._build_watcher), None
            except (PyWrenConfigError, ValueError) as exc:
                return None, self._event(ERROR, None, f"cannot follow {self._name()}: {type(exc).__name__}: {exc}")
            except PyWrenError as exc:
                if not isinstance(exc, StorageError):  # e.g. no such job in this storage
                    return None, self._event(ERROR, None, f"cannot follow {self._name()}: {exc}")
                failures = self._poll_failed(exc, failures)
            except Exception as exc:  # connection lookup, broker or storage trouble: maybe passing
                failures = self._poll_failed(exc, failures)
            if failures >= MAX_POLL_FAILURES:
                return None, self._event(
                    ERROR, None, f"cannot follow {self._name()} after {failures} attempts: {self._last_failure}"
                )
            if self._remaining() <= 0:
                return None, self._timeout_event(None)
            await asyncio.sleep(min(self.poll_interval, max(self._remaining(), 0)))

    async def _follow(self, worker: _Worker, watcher: JobWatcher) -> dict[str, Any]:
        """Poll (and wait) until the job finished or the deadline passed; return the event payload."""
        self.log.info(
            "following %s job %s of executor %s by %s every %.3g s%s",
            self._ref.kind,
            self._ref.name,
            self._ref.executor_id,
            self.monitor,
            self.poll_interval,
            "" if self.end_time is None else f", for at most {max(self._remaining(), 0):.0f} s",
        )
        if self.monitor == RABBITMQ and watcher.executor.job_monitor.name != RABBITMQ:
            self.log.warning(
                "the connection's executor has no RabbitMQ monitor (no 'rabbitmq.amqp_url'?); "
                "polling storage for %s instead",
                self._name(),
            )
        progress_log, failures = ProgressLog(PROGRESS_LOG_SECONDS, QUIET_LOG_SECONDS), 0
        progress = watcher.progress()
        while True:
            try:
                progress = await worker(watcher.poll)
                failures = 0
            except Exception as exc:
                failures = self._poll_failed(exc, failures)
                if failures >= MAX_POLL_FAILURES:
                    return self._event(
                        ERROR,
                        progress,
                        f"{self._name()}: {failures} polls in a row failed, last: "
                        f"{self._last_failure}; {progress.line()}",
                    )
            if progress_log.due(progress):
                self.log.info("%s", progress.line())
            if progress.finished:
                if progress.failed:
                    return self._event(ERROR, progress, describe_failure(progress.as_dict()))
                return self._event(SUCCESS, progress, progress.line())
            remaining = self._remaining()
            if remaining <= 0:
                return self._timeout_event(progress)
            # as long as the monitor decides (up to poll_interval), in the trigger's thread: a notice ends it early
            await worker(watcher.pause, progress, remaining, self.poll_interval)

    # -------------------------------------------------------------- helpers
    def _poll_failed(self, exc: BaseException, failures: int) -> int:
        self._last_failure = f"{type(exc).__name__}: {exc}"
        failures += 1
        self.log.warning(
            "%s: attempt %d of %d failed: %s", self._name(), failures, MAX_POLL_FAILURES, self._last_failure
        )
        return failures

    def _name(self) -> str:
        return self._ref.describe()

    def _timeout_event(self, progress: JobProgress | None) -> dict[str, Any]:
        state = f"; {progress.line()}" if progress is not None else ""
        limit = f"the trigger timeout of {self.timeout:g} s" if self.timeout is not None else "the trigger's end_time"
        return self._event(
            TIMEOUT,
            progress,
            f"{self._name()} did not finish within {limit}{state}. "
            "Its calls keep running; raise the timeout, or follow the job again to wait longer.",
        )

    def _event(self, status: str, progress: JobProgress | None, message: str) -> dict[str, Any]:
        if progress is None:  # the job could not be read: report what the reference says
            ref = self._ref
            progress = JobProgress(kind=ref.kind, job_ids=list(ref.job_ids), total=ref.total or 0)
        state = progress.as_dict()
        return {
            "status": str(status),
            "job_ref": updated_job_ref(self.job_ref, state),
            "progress": state,
            "message": message,
        }
