"""The storage monitor: one LIST of a job's ``status/`` prefix per poll, then GETs of new final statuses only."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.monitor.base import JobMonitor
from airflow_pywren.executor.storage.base import StorageBackend

if TYPE_CHECKING:
    from airflow_pywren.executor.future import ResponseFuture


def read_objects(storage: StorageBackend, object_keys: Sequence[str], threads: int) -> list[bytes]:
    """GET many objects; in parallel threads unless storage is on this machine."""
    if storage.name == "localhost" or len(object_keys) < 4 or threads <= 1:
        return [storage.get(key) for key in object_keys]
    with ThreadPoolExecutor(max_workers=min(threads, len(object_keys))) as pool:
        return list(pool.map(storage.get, object_keys))


class StorageMonitor(JobMonitor):
    """Polls storage every ``interval`` seconds, or less often when a poll itself is costly.

    A poll of a large job can take a while (a LIST of thousands of keys); the pause
    after it is at least twice its cost, so polling never takes more than a third of
    the client's time.
    """

    def __init__(self, storage: StorageBackend, interval: float, threads: int = 16) -> None:
        self.storage = storage
        self.interval = interval
        self.threads = threads
        self._last_poll_cost = 0.0

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
        for (executor_id, job_id), job_futures in by_job.items():
            prefix = keys.status_prefix(self.storage.prefix, executor_id, job_id)
            present = self.storage.list_keys(prefix)
            started, ended = set(), set()
            for key in present:
                parts = keys.parse_status_key(key, prefix)
                if parts is None:
                    continue
                if parts[1] == keys.STATUS_OBJECT:
                    ended.add(parts[0])
                elif parts[1] == keys.START_OBJECT:
                    started.add(parts[0])
            newly_ended = [f for f in job_futures if f.call_id in ended]
            statuses = read_objects(
                self.storage,
                [keys.call_key(self.storage.prefix, executor_id, job_id, f.call_id, keys.STATUS_OBJECT) for f in newly_ended],
                self.threads,
            )
            for future, raw in zip(newly_ended, statuses):
                future._set_final(json.loads(raw))
            finished += len(newly_ended)
            for future in job_futures:
                if future.call_id in started:
                    future._set_running()
        return finished

    def pause(self, seconds: float) -> None:
        time.sleep(max(0.0, min(max(self.interval, 2 * self._last_poll_cost), seconds)))


def read_status(storage: StorageBackend, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
    """The final status of one call, or None while it has none."""
    from airflow_pywren.executor.errors import StorageKeyNotFound

    try:
        return json.loads(storage.get(keys.call_key(storage.prefix, executor_id, job_id, call_id, keys.STATUS_OBJECT)))
    except StorageKeyNotFound:
        return None


def read_start(storage: StorageBackend, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
    """The start record of one call (start time, worker), or None while it has none."""
    from airflow_pywren.executor.errors import StorageKeyNotFound

    try:
        return json.loads(storage.get(keys.call_key(storage.prefix, executor_id, job_id, call_id, keys.START_OBJECT)))
    except StorageKeyNotFound:
        return None
