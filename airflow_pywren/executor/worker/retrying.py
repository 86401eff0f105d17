"""Writes of the function side that outlast a storage outage: bounded retries with backoff.

The SDK of a storage backend retries a request a few times within seconds; a call's
start, output and final status are retried here for up to ``write_retry_seconds`` (the
``pywren.write_retry_seconds`` setting, 30 s by default) before the call gives up. A call
that gave up is reported by its compute backend as lost (the localhost runner remembers
it, OpenWhisk's activation record says it failed), so the client fails it with the
storage error instead of waiting for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from airflow_pywren.executor.errors import StorageError
from airflow_pywren.executor.storage.base import StorageBackend

logger = logging.getLogger(__name__)

DEFAULT_WRITE_RETRY_SECONDS = 30.0
FIRST_PAUSE = 0.1
LONGEST_PAUSE = 5.0


class UnrecordedCallError(StorageError):
    """A call could not write its start or final status within ``write_retry_seconds``."""


def put_retrying(storage: StorageBackend, key: str, data: bytes, retry_seconds: float, what: str) -> None:
    """``storage.put(key, data)``, retried with doubling pauses for up to ``retry_seconds``."""
    write_retrying(storage, lambda: storage.put(key, data), retry_seconds, f"{what} ({key})")


def write_retrying(storage: StorageBackend, write: Callable[[], None], retry_seconds: float, what: str) -> None:
    """Run ``write`` (idempotent), retried with doubling pauses for up to ``retry_seconds``."""
    deadline = time.monotonic() + max(retry_seconds, 0.0)
    pause = FIRST_PAUSE
    attempts = 0
    while True:
        attempts += 1
        try:
            write()
            return
        except (StorageError, OSError) as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UnrecordedCallError(
                    f"could not write {what} in {storage.location()} after {attempts} attempt(s) over "
                    f"{retry_seconds:g} s (pywren.write_retry_seconds): {type(exc).__name__}: {exc}"
                ) from exc
            logger.warning("writing %s failed (%s); retrying in %.1f s", what, exc, min(pause, remaining))
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, LONGEST_PAUSE)
