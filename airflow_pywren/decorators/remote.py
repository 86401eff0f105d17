"""Small wrappers that run inside PyWren calls; this module must not import Airflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def call_without_argument(func: Callable[[], Any], _unused: Any = None) -> Any:
    """Call a function that takes no parameters (a call always receives one data item)."""
    return func()
