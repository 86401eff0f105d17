"""What every test service shares: a free local port, and children that die with their parent."""

from __future__ import annotations

import ctypes
import signal
import socket
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In a child process (``preexec_fn``): get SIGKILL when the parent dies, so nothing outlives a killed run."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def serve_until_stopped(stop_server: Callable[[], None]) -> int:
    """Block a server's command line until SIGTERM or Ctrl-C, then call ``stop_server``; the exit status."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    stop_server()
    return 0
