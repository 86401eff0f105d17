"""Job references: small JSON descriptions of submitted jobs, and watching them by reference.

A job reference is what travels between processes (Airflow XCom, trigger kwargs): ids,
storage location and result keys — never payloads or secrets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor.future import ERROR, RUNNING, SUCCESS, ResponseFuture
from airflow_pywren.executor.serialization import ResultRef

if TYPE_CHECKING:
    from airflow_pywren.executor.executor import FunctionExecutor

MAX_ERRORS_REPORTED = 5
REFERENCE_KEYS = ("executor_id", "kind", "job_ids")
"""Keys every job reference has; ``result_keys`` may be left out (see :func:`compact_reference`)."""


def is_job_reference(value: Any) -> bool:
    """True for a job reference (full or compact)."""
    return isinstance(value, dict) and all(value.get(key) for key in REFERENCE_KEYS)


def job_reference(executor: FunctionExecutor, kind: str, futures: Sequence[ResponseFuture]) -> dict[str, Any]:
    """The JSON reference of a submission (call_async, map or map_reduce) given its futures.

    ``result_keys`` are the outputs a downstream consumer wants: the map's for ``map``,
    the reducer's for ``map_reduce``, in call order.
    """
    job_ids = list(dict.fromkeys(f.job_id for f in futures))
    producing = [f for f in futures if f.produce_output] or list(futures)
    storage = executor.storage
    return {
        "executor_id": executor.executor_id,
        "kind": kind,
        "job_ids": job_ids,
        "result_job_id": producing[0].job_id,
        "storage_backend": storage.name,
        "bucket": storage.bucket,
        "storage_prefix": storage.prefix,
        "location": storage.location(),
        "result_keys": [f.output_key for f in producing],
        "total": len(futures),
    }


def compact_reference(job_ref: dict[str, Any]) -> dict[str, Any]:
    """The reference without per-call lists (``result_keys``, ``results``): what a trigger row needs.

    A :class:`JobWatcher` rebuilds ``result_keys`` from the job's manifest in storage.
    """
    return {key: value for key, value in job_ref.items() if key not in ("result_keys", "results")}


def result_refs(job_ref: dict[str, Any]) -> list[ResultRef]:
    """One ResultRef per result of a referenced job: map over them to use upstream results remotely."""
    return [ResultRef(key) for key in job_ref["result_keys"]]


@dataclass
class JobProgress:
    """How far a referenced job has got."""

    kind: str
    job_ids: list[str]
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.done == self.total

    @property
    def status(self) -> str:
        if self.finished:
            return ERROR if self.failed else SUCCESS
        return RUNNING if self.done or self.running else "submitted"

    def line(self) -> str:
        """A progress line a person can read: ``map job M000: 734/1000 done, 2 failed``."""
        return f"{self.kind} job {'+'.join(self.job_ids)}: {self.done}/{self.total} done, {self.failed} failed"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


class ProgressLog:
    """When to log a progress line: once on completion, when calls finished (at most every
    ``every`` seconds), and at least every ``quiet`` seconds while nothing changes."""

    def __init__(self, every: float = 5.0, quiet: float = 60.0) -> None:
        self.every = every
        self.quiet = quiet
        self._logged_at = -float("inf")
        self._logged_done = -1

    def due(self, progress: JobProgress) -> bool:
        """True when ``progress`` should be logged now (and records that it was)."""
        now = time.monotonic()
        since = now - self._logged_at
        changed = progress.done != self._logged_done
        if (progress.finished and changed) or (changed and since >= self.every) or since >= self.quiet:
            self._logged_at, self._logged_done = now, progress.done
            return True
        return False


class PollBackoff:
    """Pauses between storage polls: short while calls finish, doubling up to ``longest`` while none do.

    Short jobs are seen finished within ``shortest`` seconds; long ones cost few requests.
    """

    def __init__(self, shortest: float, longest: float) -> None:
        self.shortest = min(shortest, longest)
        self.longest = longest
        self._next = self.shortest
        self._last_done = -1

    def next_pause(self, progress: JobProgress) -> float:
        """The pause before the next poll, given what the last poll saw."""
        if progress.done != self._last_done:
            self._last_done, self._next = progress.done, self.shortest
        pause, self._next = self._next, min(self._next * 2, self.longest)
        return pause


class JobWatcher:
    """Follows a referenced job's calls through the executor's monitor, incrementally."""

    def __init__(self, executor: FunctionExecutor, job_ref: dict[str, Any]) -> None:
        self.executor = executor
        self.job_ref = job_ref
        self.futures = [
            future
            for job_id in job_ref["job_ids"]
            for future in executor.job_futures(job_id, executor_id=job_ref["executor_id"])
        ]
        if "result_keys" not in job_ref:  # a compact reference: the keys follow from the manifests
            result_job = job_ref.get("result_job_id") or job_ref["job_ids"][-1]
            self.job_ref = {**job_ref, "result_keys": [f.output_key for f in self.futures if f.job_id == result_job]}

    def poll(self) -> JobProgress:
        """Refresh once (one LIST per unfinished job, or drained messages) and report progress."""
        pending = [f for f in self.futures if not f.finished]
        if pending:
            self.executor.monitor.refresh(pending)
            self.executor.fail_lost_calls(pending)
        return self.progress()

    def progress(self) -> JobProgress:
        failed = [f for f in self.futures if f.status == ERROR]
        return JobProgress(
            kind=self.job_ref["kind"],
            job_ids=list(self.job_ref["job_ids"]),
            total=len(self.futures),
            done=sum(f.finished for f in self.futures),
            failed=len(failed),
            running=sum(f.status == RUNNING for f in self.futures),
            errors=[{"job_id": f.job_id, "call_id": f.call_id, **(f.error or {})} for f in failed[:MAX_ERRORS_REPORTED]],
        )

    def wait(self, timeout: float | None = None) -> JobProgress:
        """Block until every call finished or ``timeout`` passed; return the progress."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.poll()
            remaining = float("inf") if deadline is None else deadline - time.monotonic()
            if progress.finished or remaining <= 0:
                return progress
            self.executor.monitor.pause(remaining)

    def results(self) -> list[Any]:
        """The values behind ``result_keys``, read from storage (raises the first call error)."""
        wanted = set(self.job_ref["result_keys"])
        producing = [f for f in self.futures if f.output_key in wanted]
        return self.executor.get_result(producing) if len(producing) != 1 else [self.executor.get_result(producing[0])]
