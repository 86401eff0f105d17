"""What the job view shows, read from storage the way the executor reads it (no Airflow import).

A :class:`JobView` holds the futures of one referenced job (every job id of it: map and
reducer for map_reduce) and refreshes them through the executor's monitor: one LIST of the
job's statuses per refresh, and a GET only of the final statuses that appeared since the
last refresh (final statuses never change, so each is read once per view). Start records
and outputs are read only for the calls a page shows. :class:`JobViews` keeps a few views
per process so that a page refreshing every few seconds costs one LIST each time.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_pywren.executor.errors import PyWrenError, StorageKeyNotFound
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.future import ERROR, PENDING, RUNNING, SUCCESS, ResponseFuture
from airflow_pywren.executor.jobref import JobRef, JobStatus
from airflow_pywren.executor.monitor.storage import read_start

PREVIEW_CHARS = 2000
"""Largest JSON text of a result shown as a preview."""
MAX_PAGE = 500
FIRST_ERRORS = 3
"""Failed calls the summary describes in full (the calls page lists them all)."""
MIN_REFRESH_SECONDS = 1.0
"""Requests within this time of the last refresh (other viewers, paging) reuse it."""
MAX_CATCH_UP_POLLS = 1000
"""Polls one refresh makes at most while each stops at the layout's read limit (a GiB of backlog per segment)."""
CHECK_CLEANED_SECONDS = 10.0
"""How often a cached finished job is checked for having been cleaned (one manifest GET)."""
MAX_TIMELINE_BARS = 2000
"""Start-end bars the timeline sends at most; larger jobs send an even sample of their calls."""
MAX_TIMELINE_POINTS = 1000
"""Points of the running-calls-over-time series at most: every change up to this (jobs of ~500 calls),
then the most running in each of this many equal time slices (more than a screen's pixels)."""

ExecutorFactory = Callable[[], FunctionExecutor]
T = TypeVar("T")


class JobCleaned(PyWrenError):
    """The job's objects are gone from storage (``clean()``, a lifecycle rule, another prefix)."""


@dataclass(frozen=True)
class JobKey:
    """What identifies a job's objects: where they are and under which ids."""

    location: str
    executor_id: str
    job_ids: tuple[str, ...]


class JobView:
    """The calls of one referenced job, refreshed on demand."""

    def __init__(self, executor: FunctionExecutor, job_ref: JobRef | Mapping[str, Any]) -> None:
        self.executor = executor
        self.job_ref = JobRef.parse(job_ref, "the job record")
        self.executor_id = self.job_ref.executor_id
        self.job_ids = list(self.job_ref.job_ids)
        self.lock = threading.Lock()
        self.futures: list[ResponseFuture] = self._load_futures()
        self.refreshed_at = 0.0
        self.checked_at = time.monotonic()
        self.list_requests = 0

    def _load_futures(self) -> list[ResponseFuture]:
        futures: list[ResponseFuture] = []
        for job_id in self.job_ids:
            try:
                futures.extend(self.executor.job_futures(job_id, executor_id=self.executor_id))
            except PyWrenError as exc:
                raise JobCleaned(
                    f"job {job_id} of executor {self.executor_id} is no longer in {self.executor.storage.location()}: "
                    "its results were cleaned"
                ) from exc
        return futures

    # ------------------------------------------------------------ refresh
    @property
    def finished(self) -> bool:
        return all(f.finished for f in self.futures)

    def refresh(self) -> None:
        """One LIST of the statuses of each unfinished job; GETs only of statuses that are new.

        A poll reads a bounded backlog (the segment layout reads at most a MiB per segment): while
        one stops at that bound, the next follows at once, so a page never shows a finished job
        as partly done.
        """
        with self.lock:
            if time.time() - self.refreshed_at < MIN_REFRESH_SECONDS:
                return
            pending = [f for f in self.futures if not f.finished]
            if pending:
                for _ in range(MAX_CATCH_UP_POLLS):
                    self.list_requests += len({f.job_id for f in pending})
                    self.executor.job_monitor.refresh(pending)
                    pending = [f for f in pending if not f.finished]
                    if not pending or not self.executor.job_monitor.truncated:
                        break
            elif time.monotonic() - self.checked_at > CHECK_CLEANED_SECONDS:
                self.checked_at = time.monotonic()
                self._load_futures()  # raises JobCleaned once the objects are gone
            self.refreshed_at = time.time()

    # ------------------------------------------------------------ reports
    def summary(self) -> dict[str, Any]:
        """Counts, ids, backend and times of the job (no storage request)."""
        counts = {PENDING: 0, RUNNING: 0, SUCCESS: 0, ERROR: 0}
        for future in self.futures:
            counts[future.status] = counts.get(future.status, 0) + 1
        starts = [float(f.start_time) for f in self.futures if f.start_time]
        ends = [float(f.end_time) for f in self.futures if f.end_time]
        submitted = min((f.host_submit_time or 0 for f in self.futures), default=None) or None
        total = len(self.futures)
        done = counts[SUCCESS] + counts[ERROR]
        finished = done == total
        first_start = min(starts) if starts else None
        last_end = max(ends) if ends and finished else None
        kinds = {f.job_id: f.kind for f in self.futures}
        return {
            "kind": self.job_ref.kind,
            "executor_id": self.executor_id,
            "job_ids": self.job_ids,
            "jobs": [
                {"job_id": job_id, "kind": kind, "calls": sum(f.job_id == job_id for f in self.futures)}
                for job_id, kind in kinds.items()
            ],
            "storage_backend": self.executor.storage.name,
            "compute_backend": self.executor.compute.name,
            "location": self.executor.storage.location(),
            "total": total,
            "done": done,
            "pending": counts[PENDING],
            "running": counts[RUNNING],
            "success": counts[SUCCESS],
            "failed": counts[ERROR],
            "status": (JobStatus.ERROR if counts[ERROR] else JobStatus.SUCCESS)
            if finished
            else (JobStatus.RUNNING if done or counts[RUNNING] else JobStatus.SUBMITTED),
            "submitted_at": submitted,
            "first_start": first_start,
            "last_end": last_end,
            "duration": _duration(submitted or first_start, last_end),
            "refreshed_at": self.refreshed_at,
            "first_errors": [call_row(i, f) for i, f in enumerate(self.futures) if f.status == ERROR][:FIRST_ERRORS],
        }

    def calls(self, offset: int = 0, limit: int = 100, status: str | None = None) -> dict[str, Any]:
        """One page of calls in call order (``status``: only calls with that status, e.g. ``error``).

        Running calls on the page get their start time from their start record (one GET each).
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        indexed = list(enumerate(self.futures))
        if status:
            indexed = [(i, f) for i, f in indexed if f.status == status]
        page = indexed[offset : offset + limit]
        self._read_starts([f for _, f in page if f.status == RUNNING and not f.start_time])
        return {
            "total": len(indexed),
            "offset": offset,
            "limit": limit,
            "status": status,
            "calls": [call_row(index, future) for index, future in page],
        }

    def timeline(self, max_bars: int = MAX_TIMELINE_BARS, max_points: int = MAX_TIMELINE_POINTS) -> dict[str, Any]:
        """The calls that started as start-end bars (seconds after the first start, in call order) and
        the number of calls running over time, both bounded for large jobs.

        Up to ``max_bars`` started calls every bar is sent; beyond that an even sample across the
        started calls (``sampled`` says so). The running-calls series is computed here from every
        started call: each change exactly, or, beyond ``max_points``, the most running in each of
        ``max_points`` equal time slices, so that peaks are kept.
        """
        origin = min((f.start_time or float("inf") for f in self.futures), default=float("inf"))
        submitted = min((f.host_submit_time or float("inf") for f in self.futures), default=float("inf"))
        now = time.time()
        known = origin != float("inf")
        started: list[tuple[int, float, float | None, str]] = []
        for index, future in enumerate(self.futures):
            start = future.start_time
            if start:
                end = future.end_time
                started.append((index, start - origin, end - origin if end else None, future.status))
        elapsed = max(now - origin, 0.0) if known else 0.0
        end = max((stop if stop is not None else elapsed for _, _, stop, _ in started), default=0.0)
        running, peak = running_over_time(
            [(start, stop if stop is not None else elapsed) for _, start, stop, _ in started], end, max_points
        )
        shown = sample_evenly(started, max_bars)
        return {
            "origin": origin if known else None,
            "now": now,
            "total": len(self.futures),
            "queued": round(origin - submitted, 4) if known and submitted != float("inf") else None,
            "started": len(started),
            "sampled": len(shown) < len(started),
            "end": round(end, 4),
            "calls": [
                [index, round(start, 4), round(stop, 4) if stop is not None else None, status]
                for index, start, stop, status in shown
            ],
            "running": running,
            "peak": peak,
        }

    def result_preview(self, index: int) -> dict[str, Any]:
        """The result of one call when it is JSON-serialisable and small; otherwise why not (one GET)."""
        future = self._future(index)
        row = {"index": index, "job_id": future.job_id, "call_id": future.call_id, "status": future.status}
        if future.status != SUCCESS:
            return {**row, "available": False, "reason": f"the call has no result: it is {future.status}"}
        if not future.produce_output:
            return {**row, "available": False, "reason": "this call's result is consumed by the reducer"}
        try:
            value = future.result()
        except StorageKeyNotFound:
            return {**row, "available": False, "reason": "the result was cleaned from storage"}
        except Exception as exc:  # a class this server cannot import, a damaged object
            return {**row, "available": False, "reason": f"the result cannot be read here: {type(exc).__name__}: {exc}"}
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            return {
                **row,
                "available": False,
                "reason": f"the result is a {type(value).__name__}, not JSON-serialisable",
            }
        if len(text) > PREVIEW_CHARS:
            return {
                **row,
                "available": False,
                "reason": f"the result is {len(text):,} characters of JSON; previews show up to {PREVIEW_CHARS:,}",
            }
        return {**row, "available": True, "value": value, "type": type(value).__name__}

    # ------------------------------------------------------------ helpers
    def _future(self, index: int) -> ResponseFuture:
        if not 0 <= index < len(self.futures):
            raise IndexError(f"call index {index} is out of range: the job has {len(self.futures)} call(s)")
        return self.futures[index]

    def _read_starts(self, futures: Sequence[ResponseFuture]) -> None:
        storage = self.executor.storage
        for future in futures:
            start = read_start(storage, future.executor_id, future.job_id, future.call_id)
            if start:
                future.set_running(start)
                future.take_start(start)

    def close(self) -> None:
        self.executor.close()


def _duration(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None


def sample_evenly(items: Sequence[T], limit: int) -> list[T]:
    """``items`` when there are at most ``limit``; else ``limit`` of them evenly spread, first and last included."""
    count = len(items)
    if count <= limit:
        return list(items)
    if limit <= 1:
        return list(items[:limit])
    return [items[round(i * (count - 1) / (limit - 1))] for i in range(limit)]


def running_over_time(
    spans: Sequence[tuple[float, float]], end: float, max_points: int
) -> tuple[list[list[float]], int]:
    """How many of ``spans`` (start, stop) run over time, as ``[time, running]`` steps, and the peak.

    Every change is a point while there are at most ``max_points``; beyond that the span
    ``[0, end]`` is cut into ``max_points`` equal slices, each point giving the most calls running
    during its slice (a peak is never hidden by the sampling).
    """
    events = sorted([(start, 1) for start, _ in spans] + [(stop, -1) for _, stop in spans], key=lambda e: (e[0], e[1]))
    steps: list[list[float]] = [[0.0, 0]]
    running = peak = 0
    for moment, delta in events:
        running += delta
        peak = max(peak, running)
        if steps[-1][0] == moment:
            steps[-1][1] = running
        else:
            steps.append([moment, running])
    if len(steps) <= max_points or end <= 0:
        return [[round(t, 4), n] for t, n in steps], peak
    width = end / max_points
    slices = [0] * max_points
    level = 0
    position = 0
    for slot in range(max_points):
        slice_end = (slot + 1) * width
        most = level
        while position < len(steps) and (steps[position][0] < slice_end or slot == max_points - 1):
            level = int(steps[position][1])
            most = max(most, level)
            position += 1
        slices[slot] = most
    return [[round(slot * width, 4), most] for slot, most in enumerate(slices)], peak


def call_row(index: int, future: ResponseFuture) -> dict[str, Any]:
    """One row of the calls table."""
    start, end = future.start_time, future.end_time
    error = future.error or None
    return {
        "index": index,
        "job_id": future.job_id,
        "call_id": future.call_id,
        "status": future.status,
        "start_time": start,
        "end_time": end,
        "duration": future.duration if future.duration is not None else (end - start if start and end else None),
        "worker_host": future.worker_host,
        "worker_pid": future.worker_pid,
        "activation_id": future.activation_id,
        "error": None
        if error is None
        else {
            "type": error.get("type", "Exception"),
            "message": error.get("message", ""),
            "traceback": error.get("traceback", ""),
        },
    }


class JobViews:
    """A few :class:`JobView` per process, least recently used dropped first."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._views: OrderedDict[JobKey, JobView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: JobKey, job_ref: JobRef, make_executor: ExecutorFactory) -> JobView:
        """The cached view of ``key`` (refreshed), or a new one built with ``make_executor()``."""
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
        if view is None:
            executor = make_executor()
            try:
                view = JobView(executor, job_ref)
            except BaseException:
                executor.close()
                raise
            with self._lock:
                self._views[key] = view
                while len(self._views) > self.size:
                    _, old = self._views.popitem(last=False)
                    old.close()
        try:
            view.refresh()
        except JobCleaned:
            self.drop(key)
            raise
        return view

    def drop(self, key: JobKey) -> None:
        with self._lock:
            view = self._views.pop(key, None)
        if view is not None:
            view.close()

    def clear(self) -> None:
        with self._lock:
            views, self._views = list(self._views.values()), OrderedDict()
        for view in views:
            view.close()
