"""Following submitted jobs by reference: progress, progress lines, and the :class:`JobWatcher`.

A job reference (:class:`~airflow_pywren.executor.jobref.JobRef`) is what travels between
processes (Airflow XCom, trigger kwargs): ids, storage location and where the results are —
never payloads or secrets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor.future import ERROR, RUNNING, ResponseFuture
from airflow_pywren.executor.jobref import JobRef, JobStatus
from airflow_pywren.executor.serialization import ResultRef

if TYPE_CHECKING:
    from airflow_pywren.executor.executor import FunctionExecutor

MAX_ERRORS_REPORTED = 5


def job_reference(executor: FunctionExecutor, kind: str, futures: Sequence[ResponseFuture]) -> dict[str, Any]:
    """The XCom dict of a submission (call_async, map or map_reduce) given its futures.

    Its results are the map's for ``map``, the reducer's for ``map_reduce``, in call order;
    see :meth:`JobRef.from_futures`.
    """
    return reference_of(executor, kind, futures).to_xcom()


def reference_of(executor: FunctionExecutor, kind: str, futures: Sequence[ResponseFuture]) -> JobRef:
    """The JobRef of a submission, with the inputs of a map over data (what it read) when it was one."""
    ref = JobRef.from_futures(kind, futures, executor.storage, executor.executor_id)
    inputs = next((executor.job_inputs[j] for j in ref.job_ids if j in getattr(executor, "job_inputs", {})), None)
    return ref._replace(inputs=inputs) if inputs else ref


def compact_reference(job_ref: dict[str, Any] | JobRef) -> dict[str, Any]:
    """The reference without values (``results``) or per-call key lists: what a trigger row needs.

    A :class:`JobWatcher` rebuilds the result keys of an old-style reference from the job's manifest.
    """
    ref = JobRef.parse(job_ref)
    if ref.legacy_result_keys is not None and ref.result_count is None:
        ref = ref._replace(legacy_result_keys=None)
    return ref.to_xcom()


def result_refs(job_ref: dict[str, Any] | JobRef) -> list[ResultRef]:
    """One ResultRef per result of a referenced job: map over them to use upstream results remotely."""
    return [ResultRef(key) for key in JobRef.parse(job_ref).result_keys]


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
    def status(self) -> JobStatus:
        if self.finished:
            return JobStatus.ERROR if self.failed else JobStatus.SUCCESS
        return JobStatus.RUNNING if self.done or self.running else JobStatus.SUBMITTED

    def line(self) -> str:
        """A progress line a person can read: ``map job M000: 734/1000 done, 2 failed``."""
        return f"{self.kind} job {'+'.join(self.job_ids)}: {self.done}/{self.total} done, {self.failed} failed"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


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


class JobWatcher:
    """Follows a referenced job's calls through the executor's monitor, incrementally."""

    def __init__(self, executor: FunctionExecutor, job_ref: dict[str, Any] | JobRef) -> None:
        self.executor = executor
        ref = JobRef.parse(job_ref)
        self.futures = [
            future for job_id in ref.job_ids for future in executor.job_futures(job_id, executor_id=ref.executor_id)
        ]
        if not ref.knows_results:  # a compact old-style reference: the keys follow from the manifests
            ref = ref.with_results(
                ref.result_job_id, [f.output_key for f in self.futures if f.job_id == ref.result_job_id]
            )
        self.job_ref: JobRef = ref

    def poll(self) -> JobProgress:
        """Refresh once (one LIST per unfinished job, or drained messages) and report progress."""
        pending = [f for f in self.futures if not f.finished]
        if pending:
            self.executor.job_monitor.refresh(pending)
            self.executor.fail_lost_calls(pending)
        return self.progress()

    def progress(self) -> JobProgress:
        failed = [f for f in self.futures if f.status == ERROR]
        return JobProgress(
            kind=self.job_ref.kind,
            job_ids=list(self.job_ref.job_ids),
            total=len(self.futures),
            done=sum(f.finished for f in self.futures),
            failed=len(failed),
            running=sum(f.status == RUNNING for f in self.futures),
            errors=[
                {"job_id": f.job_id, "call_id": f.call_id, **(f.error or {})} for f in failed[:MAX_ERRORS_REPORTED]
            ],
        )

    def pause(self, progress: JobProgress, seconds: float = math.inf, longest: float | None = None) -> None:
        """Wait before the next poll, at most ``seconds``, as long as the executor's monitor decides.

        ``longest``: pauses may grow up to that while no call finishes (see ``JobMonitor.pause``).
        """
        self.executor.job_monitor.pause(seconds, progress.done, longest)

    def wait(
        self,
        timeout: float | None = None,
        longest: float | None = None,
        on_poll: Callable[[JobProgress], None] | None = None,
    ) -> JobProgress:
        """Block until every call finished or ``timeout`` passed; return the progress.

        ``longest``: as in :meth:`pause`; ``on_poll`` sees the progress after every poll (to log it).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.poll()
            if on_poll is not None:
                on_poll(progress)
            remaining = math.inf if deadline is None else deadline - time.monotonic()
            if progress.finished or remaining <= 0:
                return progress
            self.pause(progress, remaining, longest)

    def results(self) -> list[Any]:
        """The values of the job's results, read from storage in call order (raises the first call error)."""
        wanted = set(self.job_ref.result_keys)
        producing = [f for f in self.futures if f.output_key in wanted]
        return self.executor.get_result(producing) if len(producing) != 1 else [self.executor.get_result(producing[0])]
