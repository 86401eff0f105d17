"""The compute interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, overload

from airflow_pywren.executor.config import Config, Setting


class Invocation(NamedTuple):
    """The outcome of submitting one call: an activation id, or the reason it was refused (a tuple: cheap to
    make by the hundred thousand).

    ``invoker_id``: the activation that invokes the call for the client (a remote invoker), if any.
    """

    call_id: str
    activation_id: str | None = None
    error: str | None = None
    invoker_id: str | None = None


class CallList(Sequence[dict[str, Any]]):
    """The per-call fields of a job's calls (``call_id``, ``data_byte_range``, ``reduce``), built on demand,
    so that a job of 100,000 calls holds no dict per call while it is invoked.

    ``call_ids`` are the calls' ids (each the call's index in its job); ``data_ends`` the end of each call's
    byte range in the job's data object (None: no data object); ``reduce`` each call's reduce fields.
    """

    def __init__(
        self, call_ids: Sequence[str], data_ends: Sequence[int] | None = None, reduce: Sequence[Any] | None = None
    ) -> None:
        self.call_ids = call_ids
        self.data_ends = data_ends
        self.reduce = reduce

    def __len__(self) -> int:
        return len(self.call_ids)

    def byte_ranges(self) -> list[int]:
        """Every call's data byte range, flat: ``[start, end, start, end, ...]``."""
        ends = self.data_ends
        if ends is None:
            return [0, 0] * len(self.call_ids)
        flat: list[int] = []
        for call_id in self.call_ids:
            index = int(call_id)
            flat += (ends[index - 1] if index else 0, ends[index])
        return flat

    @overload
    def __getitem__(self, position: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, position: slice) -> CallList: ...

    def __getitem__(self, position: int | slice) -> dict[str, Any] | CallList:
        if isinstance(position, slice):
            return CallList(self.call_ids[position], self.data_ends, self.reduce)
        call_id = self.call_ids[position]
        index, ends = int(call_id), self.data_ends
        call: dict[str, Any] = {
            "call_id": call_id,
            "data_byte_range": [0, 0] if ends is None else [ends[index - 1] if index else 0, ends[index]],
        }
        if self.reduce:
            call["reduce"] = self.reduce[index]
        return call


def _no_start() -> dict[str, Any] | None:
    return None


@dataclass
class PendingCall:
    """A call without a final status, as a compute backend checks it for a lost activation.

    ``activation_id`` and ``worker_pid`` may be unknown (None) to a process that did not
    submit the call; ``load_start()`` fills them from the call's start status in storage,
    which a backend asks for only when it needs them (one storage read, at most once).
    """

    executor_id: str
    job_id: str
    call_id: str
    activation_id: str | None
    submit_time: float | None
    started: bool
    worker_pid: int | None = None
    read_start: Callable[[], dict[str, Any] | None] = field(default=_no_start, repr=False)
    _start_loaded: bool = field(default=False, init=False, repr=False)

    def load_start(self) -> None:
        """Fill ``activation_id`` and ``worker_pid`` from the start status, if the call started."""
        if self._start_loaded or not self.started:
            return
        self._start_loaded = True
        start = self.read_start() or {}
        self.activation_id = self.activation_id or start.get("activation_id")
        self.worker_pid = self.worker_pid or start.get("worker_pid")


class ComputeBackend(ABC):
    """Runs activations of the function-side handler (``worker.handler.main``).

    ``invoke`` gets the fields common to a job once and the per-call fields
    (``call_id``, ``data_byte_range``, optionally ``reduce``); each activation's payload is
    ``{**job, **call}``. It returns at once, one :class:`Invocation` per call, in order.
    """

    name: ClassVar[str]
    """The backend's name: the value of ``pywren.compute_backend`` and the name of its config section."""
    settings_schema: ClassVar[dict[str, Setting]] = {}
    """The keys of the backend's config section, with their types, defaults and bounds."""
    is_local: ClassVar[bool] = False
    """True when activations run on this machine, so they share its files."""

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """Raise PyWrenConfigError when ``settings`` (the section, checked for types and bounds) lack what the
        backend needs; called when the backend is the configured one, before anything is built."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @abstractmethod
    def invoke(self, job: dict[str, Any], calls: CallList) -> Sequence[Invocation]:
        """Start one activation per call without waiting for them to finish; one invocation per call, in order."""

    def invoke_batch(self, calls: int) -> int:
        """How many of a job's ``calls`` to pass to one :meth:`invoke`, so that the executor records the
        invocation's progress between batches (:mod:`airflow_pywren.executor.invocation`); 0: all at once."""
        return 0

    def invoked_calls(self, executor_id: str, job_id: str, call_ids: Sequence[str]) -> set[str] | None:
        """Of these calls of a job, those the backend holds (queued or running): it tells a call that was
        invoked but has not started from one never invoked. None when the backend cannot tell."""
        return None

    def check(self) -> None:
        """Raise a clear error when the backend cannot be used with this configuration."""

    def cancel(self, executor_id: str, job_id: str | None = None) -> int:
        """Stop activations not yet finished, where the backend can; return how many."""
        return 0

    def clean(self, executor_id: str) -> int:
        """Remove what the backend created for this executor's finished jobs (Kubernetes Jobs, say); how many."""
        return 0

    def lost_activations(self, pending: Sequence[PendingCall]) -> dict[str, str]:
        """Of these calls' activations, those the backend knows ended (or will never run) without the
        call writing its final status: ``{activation_id: reason}``. The reason says what the
        platform reported and how to avoid it. A backend may answer ``{}`` between its own checks.
        """
        return {}

    def job_link(self, executor_id: str, job_id: str) -> str | None:
        """A URL where a person can see the job's activations, if the backend has one."""
        return None

    def close(self) -> None:
        """Release connections and threads."""
