"""The call store interface: where a call's start, final status and output are recorded and read.

The function side records through :meth:`CallStore.record_start` and
:meth:`CallStore.record_end`; everything that follows calls (monitors, the reducer waiting
inside its activation, lost-call detection, the UI job view) reads them through a
:class:`JobCalls` view, never through raw keys. Each storage backend has one layout
(:func:`airflow_pywren.executor.callstore.call_store_for`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.errors import StorageKeyNotFound
from airflow_pywren.executor.storage.base import StorageBackend


@dataclass
class CallUpdates:
    """What one poll of a job found: calls that started and calls that reached a final status.

    ``started`` maps a call id to its start record (may be ``{}`` when the layout tells
    only that it started); ``finished`` maps a call id to its final status; ``truncated``
    says the poll stopped at its read limit: polling again at once reads the rest.
    """

    started: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    truncated: bool = False


class JobCalls(ABC):
    """An incremental view of one job's calls; each :meth:`poll` costs one LIST or directory scan."""

    def __init__(self, store: CallStore, executor_id: str, job_id: str) -> None:
        self.store = store
        self.executor_id = executor_id
        self.job_id = job_id

    @abstractmethod
    def poll(self) -> CallUpdates:
        """Read what changed since the last poll (the first poll reads everything)."""

    @abstractmethod
    def is_final(self, call_id: str) -> bool:
        """Whether the polls so far saw a final status of the call (no storage read)."""

    @abstractmethod
    def is_started(self, call_id: str) -> bool:
        """Whether the polls so far saw the call start (no storage read)."""

    @abstractmethod
    def final(self, call_id: str) -> dict[str, Any] | None:
        """The final status of a call seen by the polls so far, or None."""

    @abstractmethod
    def start(self, call_id: str) -> dict[str, Any] | None:
        """The start record of a call seen by the polls so far (reading it if the layout needs to), or None."""


class CallStore(ABC):
    """Records and reads the calls of jobs kept in one storage backend."""

    layout: str
    """``objects`` (one object per start, status and output) or ``segments`` (append-only records)."""

    lookup_scans: int = 0
    """LISTs (directory scans) made to find records for point reads rather than by a monitor's poll."""

    def __init__(self, storage: StorageBackend) -> None:
        self.storage = storage
        self.prefix = storage.prefix

    # --- function side --------------------------------------------------------
    @abstractmethod
    def record_start(self, executor_id: str, job_id: str, call_id: str, start: dict[str, Any]) -> None:
        """Record that a call started (``start`` holds its status ``running``, times and worker)."""

    @abstractmethod
    def record_end(
        self, executor_id: str, job_id: str, call_id: str, status: dict[str, Any], output: bytes | None
    ) -> None:
        """Record a call's output (if any) and final status, atomically visible: readers see both or neither.

        ``status["output_key"]`` names the output (see :meth:`output_key`) when there is one.
        """

    # --- readers --------------------------------------------------------------
    @abstractmethod
    def job(self, executor_id: str, job_id: str) -> JobCalls:
        """A new incremental view of a job's calls."""

    def output_key(self, executor_id: str, job_id: str, call_id: str) -> str:
        """The key that names a call's output, e.g. in a job reference: read it with :meth:`read_output_key`."""
        return keys.call_key(self.prefix, executor_id, job_id, call_id, keys.OUTPUT_OBJECT)

    def read_output(self, executor_id: str, job_id: str, call_id: str) -> bytes:
        """The pickled output of a finished call; raise StorageKeyNotFound when it has none."""
        return self.storage.get(self.output_key(executor_id, job_id, call_id))

    def read_outputs(self, calls: Sequence[tuple[str, str, str]], threads: int = 16) -> list[bytes]:
        """The outputs of many finished calls ``(executor_id, job_id, call_id)``, in order (parallel GETs)."""
        if len(calls) >= 4 and threads > 1:
            try:
                with ThreadPoolExecutor(max_workers=min(threads, len(calls))) as pool:
                    return list(pool.map(lambda call: self.read_output(*call), calls))
            except RuntimeError:  # "can't start new thread" under an address-space limit
                pass
        return [self.read_output(*call) for call in calls]

    def read_output_key(self, key: str) -> bytes:
        """The output named by ``key`` (from :meth:`output_key`, or any other stored object)."""
        parsed = keys.parse_output_key(key, self.prefix)
        if parsed is None:
            return self.storage.get(key)
        return self.read_output(*parsed)

    def read_status(self, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
        """The final status of one call, or None while it has none."""
        view = self.job(executor_id, job_id)
        view.poll()
        return view.final(call_id)

    def read_start(self, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
        """The start record of one call, or None if it has not started."""
        view = self.job(executor_id, job_id)
        view.poll()
        return view.start(call_id)

    def forget(self, executor_id: str, job_id: str | None = None) -> None:
        """Drop what this store keeps in memory about an executor's (or one job's) calls."""


def missing_output(store: CallStore, executor_id: str, job_id: str, call_id: str) -> StorageKeyNotFound:
    return StorageKeyNotFound(
        f"call {call_id} of job {job_id} (executor {executor_id}) has no output in {store.storage.location()}"
    )
