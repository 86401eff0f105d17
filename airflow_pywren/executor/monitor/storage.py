"""The storage monitor: one LIST (or directory scan) of each job's statuses per poll, reading only what is new."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor.callstore import JobCalls, call_store_for
from airflow_pywren.executor.monitor.base import JobMonitor
from airflow_pywren.executor.storage.base import StorageBackend

if TYPE_CHECKING:
    from airflow_pywren.executor.future import ResponseFuture


def read_objects(storage: StorageBackend, object_keys: Sequence[str], threads: int) -> list[bytes]:
    """GET many objects; in parallel threads unless storage is on this machine."""
    if storage.is_local or len(object_keys) < 4 or threads <= 1:
        return [storage.get(key) for key in object_keys]
    with ThreadPoolExecutor(max_workers=min(threads, len(object_keys))) as pool:
        return list(pool.map(storage.get, object_keys))


class PollBackoff:
    """Pauses between storage polls: short while calls finish, doubling up to ``longest`` while none do.

    Short jobs are seen finished within ``shortest`` seconds; long ones cost few requests.
    """

    def __init__(self, shortest: float, longest: float) -> None:
        self.shortest = min(shortest, longest)
        self.longest = longest
        self._next = self.shortest
        self._last_done = -1

    def next_pause(self, done: int) -> float:
        """The pause before the next poll, given how many calls the last poll saw finished."""
        if done != self._last_done:
            self._last_done, self._next = done, self.shortest
        pause, self._next = self._next, min(self._next * 2, self.longest)
        return pause


class StorageMonitor(JobMonitor):
    """Polls storage every ``interval`` seconds, or less often when a poll itself is costly.

    A poll of a large job can take a while (a LIST of thousands of keys); the pause
    after it is at least twice its cost, so polling never takes more than a third of
    the client's time. A caller that follows a job for a while passes ``longest`` to
    :meth:`pause`, and pauses then grow while no call finishes (:class:`PollBackoff`).
    Each job is followed by one incremental view
    (:class:`~airflow_pywren.executor.callstore.JobCalls`), so a poll reads only what
    changed since the last one.
    """

    name = "storage"

    def __init__(self, storage: StorageBackend, interval: float, threads: int = 16) -> None:
        self.storage = storage
        self.calls = call_store_for(storage)
        self.interval = interval
        self.threads = threads
        self._last_poll_cost = 0.0
        self._views: dict[tuple[str, str], JobCalls] = {}
        self._truncated = False
        self._backoff: PollBackoff | None = None
        self._woken = threading.Event()

    def refresh(self, futures: Sequence[ResponseFuture]) -> int:
        started_at = time.perf_counter()
        try:
            return self._refresh(futures)
        finally:
            self._last_poll_cost = time.perf_counter() - started_at

    def _refresh(self, futures: Sequence[ResponseFuture]) -> int:
        by_job: dict[tuple[str, str], list[ResponseFuture]] = defaultdict(list)
        for future in futures:
            if not future.finished:
                by_job[(future.executor_id, future.job_id)].append(future)
        finished = 0
        self._truncated = False
        for (executor_id, job_id), job_futures in by_job.items():
            view = self._views.get((executor_id, job_id))
            if view is None:
                view = self._views[(executor_id, job_id)] = self.calls.job(executor_id, job_id)
            updates = view.poll()
            self._truncated = self._truncated or updates.truncated
            for future in job_futures:
                call_id = future.call_id
                status = updates.finished.get(call_id)
                if status is None and view.is_final(call_id):  # seen by an earlier poll for other futures
                    status = view.final(call_id)
                if status is not None:
                    future.set_final(status)
                    finished += 1
                elif call_id in updates.started or view.is_started(call_id):
                    future.set_running(updates.started.get(call_id) or None)
            if all(f.finished for f in job_futures):
                self._views.pop((executor_id, job_id), None)
        return finished

    @property
    def truncated(self) -> bool:
        return self._truncated

    def pause(self, seconds: float, done: int = 0, longest: float | None = None) -> None:
        if self._truncated:
            return  # statuses are left over from the last poll: read them now
        if longest is None:
            pace = self.interval
        else:
            if self._backoff is None or self._backoff.longest != longest:
                self._backoff = PollBackoff(self.interval, longest)
            pace = self._backoff.next_pause(done)
        self._woken.wait(max(0.0, min(max(pace, 2 * self._last_poll_cost), seconds)))
        self._woken.clear()

    def wake(self) -> None:
        self._woken.set()

    def forget(self, executor_id: str, job_id: str | None = None) -> None:
        for key in [k for k in self._views if k[0] == executor_id and job_id in (None, k[1])]:
            del self._views[key]
        self.calls.forget(executor_id, job_id)


def read_status(storage: StorageBackend, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
    """The final status of one call, or None while it has none."""
    return call_store_for(storage).read_status(executor_id, job_id, call_id)


def read_start(storage: StorageBackend, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
    """The start record of one call (start time, worker), or None while it has none."""
    return call_store_for(storage).read_start(executor_id, job_id, call_id)
