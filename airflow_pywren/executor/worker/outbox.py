"""Notices published in the background: a broker that hangs never delays or fails a call.

A call hands its start and end notices to this process's outbox and goes on at once; one
daemon thread publishes them. At the end of a call the handler waits up to
``END_WAIT_SECONDS`` for the outbox to empty (so that an activation's end notice leaves
before its container may be frozen), and not at all while the thread has been stuck on one
notice longer than that (a broker that accepts connections but never answers). Storage
holds every status anyway: a dropped notice delays a result by one storage poll, nothing more.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import ClassVar

logger = logging.getLogger(__name__)

END_WAIT_SECONDS = 2.0
MAX_PENDING = 10_000


class Outbox:
    """One background publishing thread per process (a forked child gets its own)."""

    _instances: ClassVar[dict[int, Outbox]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.pending: queue.Queue[Callable[[], object]] = queue.Queue(MAX_PENDING)
        self.busy_since: float | None = None
        self.dropped = 0
        threading.Thread(target=self._run, daemon=True, name="pywren-notices").start()

    @classmethod
    def for_process(cls) -> Outbox:
        pid = os.getpid()
        outbox = cls._instances.get(pid)
        if outbox is None:
            with cls._lock:
                outbox = cls._instances.get(pid)
                if outbox is None:
                    cls._instances.clear()  # a parent's outbox has no thread in this process
                    outbox = cls._instances[pid] = cls()
        return outbox

    def submit(self, send: Callable[[], object]) -> None:
        """Queue ``send`` (one publish); dropped when the outbox is full."""
        try:
            self.pending.put_nowait(send)
        except queue.Full:
            self.dropped += 1
            logger.debug("notice outbox full: notice dropped (the client reads the status from storage)")

    def stuck(self, longer_than: float) -> bool:
        busy_since = self.busy_since
        return busy_since is not None and time.monotonic() - busy_since > longer_than

    def drain(self, timeout: float = END_WAIT_SECONDS) -> bool:
        """Wait up to ``timeout`` s until every queued notice was handled; False if not (or stuck)."""
        if self.stuck(timeout):
            return False
        deadline = time.monotonic() + timeout
        with self.pending.all_tasks_done:
            while self.pending.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.pending.all_tasks_done.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            send = self.pending.get()
            self.busy_since = time.monotonic()
            try:
                send()
            except Exception:  # never let one notice stop the thread
                logger.exception("unexpected error publishing a notice")
            finally:
                self.busy_since = None
                self.pending.task_done()
