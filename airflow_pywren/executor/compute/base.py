"""The compute interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_pywren.executor.config import Config


@dataclass(frozen=True)
class Invocation:
    """The outcome of submitting one call: an activation id, or the reason it was refused."""

    call_id: str
    activation_id: str | None = None
    error: str | None = None


class ComputeBackend(ABC):
    """Runs activations of the function-side handler (``worker.handler.main``).

    ``invoke`` gets the fields common to a job once and the per-call fields
    (``call_id``, ``data_byte_range``, optionally ``reduce``); each activation's payload is
    ``{**job, **call}``. It returns at once, one :class:`Invocation` per call, in order.
    """

    name: ClassVar[str]

    def __init__(self, config: Config) -> None:
        self.config = config

    @abstractmethod
    def invoke(self, job: dict[str, Any], calls: Sequence[dict[str, Any]]) -> list[Invocation]:
        """Start one activation per call without waiting for them to finish."""

    def check(self) -> None:
        """Raise a clear error when the backend cannot be used with this configuration."""

    def cancel(self, executor_id: str, job_id: str | None = None) -> int:
        """Stop activations not yet finished, where the backend can; return how many."""
        return 0

    def activation_lost(self, activation_id: str | None, worker_pid: int | None = None) -> bool:
        """True when the backend knows this activation (running in ``worker_pid``, if known) will never finish."""
        return False

    def job_link(self, executor_id: str, job_id: str) -> str | None:
        """A URL where a person can see the job's activations, if the backend has one."""
        return None

    def close(self) -> None:
        """Release connections and threads."""
