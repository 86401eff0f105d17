"""The monitor interface: how the client learns that calls started and finished."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_pywren.executor.future import ResponseFuture


class JobMonitor(ABC):
    """Updates futures from the backend; storage stays the source of truth."""

    name: str = ""
    """How it follows calls, as log lines say it: ``storage`` or ``rabbitmq``."""

    @property
    def truncated(self) -> bool:
        """Whether the last refresh stopped at a read limit: a backlog is left, refresh again at once."""
        return False

    @abstractmethod
    def refresh(self, futures: Sequence[ResponseFuture]) -> int:
        """Update the status of ``futures``; return how many reached a final status."""

    @abstractmethod
    def pause(self, seconds: float, done: int = 0, longest: float | None = None) -> None:
        """Wait before the next refresh, at most ``seconds``; how long is the monitor's decision.

        Without ``longest``: its own pace (a poll interval, or until a notice arrives). With it, a
        caller that follows a job for a while (an operator, a trigger) lets a polling monitor slow
        down: pauses start at its interval and double up to ``longest`` seconds while ``done``, the
        number of calls finished so far, stays the same; a monitor that notices arrive at waits at
        most ``longest`` seconds, and less when one arrives.
        """

    @abstractmethod
    def wake(self) -> None:
        """End a pause in progress at once (called from another thread: a trigger being cancelled)."""

    def close(self) -> None:
        """Release connections."""

    def notifier_settings(self, executor_id: str, job_id: str) -> dict | None:
        """What a call needs to send its start/end notices to this monitor (None: storage only)."""
        return None

    def forget(self, executor_id: str, job_id: str | None = None) -> None:
        """Drop the message channels of a job or of the whole executor (on ``clean``)."""
