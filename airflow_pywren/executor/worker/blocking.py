"""A call that waits for other calls tells its localhost runner, so the runner can lend it a worker.

Nested executors (a call that runs ``map`` and waits for the results) would otherwise hold
every worker of the pool while their inner calls queue behind them. The runner's worker
process installs a reporter (:func:`set_reporter`); ``FunctionExecutor.wait`` runs inside
:func:`waiting_for_calls`, which reports "blocked" on entry and "unblocked" on exit. Outside
a localhost worker there is no reporter and nothing happens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_reporter: Callable[[bool], None] | None = None
_depth = 0
_lock = threading.Lock()  # threads of one call may wait at once: report the first entry and the last exit


def set_reporter(reporter: Callable[[bool], None] | None) -> None:
    """Install (or remove) the function that tells the runner this worker is blocked (True) or not."""
    global _reporter, _depth, _lock
    _reporter, _depth, _lock = reporter, 0, threading.Lock()


def inside_localhost_call() -> bool:
    """True in a localhost runner's worker process: calls submitted from here are nested calls."""
    return _reporter is not None


@contextmanager
def waiting_for_calls() -> Iterator[None]:
    """Report this call as blocked while the block runs (nested waits report once)."""
    global _depth
    reporter = _reporter
    if reporter is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            reporter(True)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                reporter(False)
