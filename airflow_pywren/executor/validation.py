"""Checks of ids, storage keys and numeric settings, shared by the executor, the CLI and the hook.

Ids become storage key components, so a bad one could address another executor's data
(``clean(executor_id=".")``) or a path outside the storage root. Every id is checked
where it enters (executor, ``clean``, ``job_futures``, the CLI, job references read by
the hook), and every storage backend confines its keys to its own prefix.
"""

from __future__ import annotations

import math
import re
from typing import Any

from airflow_pywren.executor.errors import InvalidIdError, PyWrenConfigError, PyWrenSubmitError, StorageError

ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
"""Executor ids: 1 to 128 letters, digits, ``_``, ``-`` or ``.``, not starting with ``.`` or ``-``."""
JOB_ID_PATTERN = re.compile(r"[A-Z][0-9]{3,9}")
"""Job ids: a kind letter and a number, e.g. ``M001``."""
CALL_ID_PATTERN = re.compile(r"[0-9]{5,9}")

# Documented bounds of call options and settings (README, "Bad input").
MAX_TIMEOUT = 31 * 24 * 3600.0
"""Seconds: the longest per-call timeout (31 days)."""
MAX_RUNTIME_MEMORY = 1024 * 1024
"""MB: the largest per-call memory (1 TiB)."""
MAX_MONITOR_INTERVAL = 3600.0
"""Seconds: the longest pause between storage polls."""
MAX_WORKERS = 256
"""The most worker processes of one localhost runner."""


def check_executor_id(value: Any, what: str = "executor_id") -> str:
    """Return ``value`` if it is a well-formed executor id, else raise InvalidIdError naming it."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidIdError(
            f"{what} {value!r} is not a valid id: use 1 to 128 letters, digits, '_', '-' or '.', starting with a "
            "letter, digit or '_' (never '.', '..', empty, or with '/' or '\\')"
        )
    return value


def check_job_id(value: Any, what: str = "job_id") -> str:
    """Return ``value`` if it is a well-formed job id (``A000``, ``M001``, ``R002``...), else raise."""
    if not isinstance(value, str) or not JOB_ID_PATTERN.fullmatch(value):
        raise InvalidIdError(f"{what} {value!r} is not a valid job id: a letter and a number, such as 'M000'")
    return value


def check_call_id(value: Any, what: str = "call_id") -> str:
    if not isinstance(value, str) or not CALL_ID_PATTERN.fullmatch(value):
        raise InvalidIdError(f"{what} {value!r} is not a valid call id: five or more digits, such as '00000'")
    return value


def _bad_parts(parts: list[str]) -> bool:
    return any(part in ("", ".", "..") for part in parts)


def confine_key(prefix: str, key: Any, location: str, is_prefix: bool = False) -> str:
    """Return ``key`` if it lies under ``prefix/`` without ``.``, ``..`` or empty components; else raise.

    ``is_prefix`` allows a listing prefix: it may end with ``/`` or in the middle of a name.
    """
    root = f"{prefix}/" if prefix else ""
    if not isinstance(key, str) or not key.startswith(root) or "\\" in key or "\0" in key or key.startswith("/"):
        raise StorageError(f"storage key {key!r} is outside {location}: every key must start with {root!r}")
    parts = key[len(root) :].split("/")
    if is_prefix:
        parts = parts[:-1]  # the last part of a listing prefix may be empty or partial
    if _bad_parts(parts):
        raise StorageError(
            f"storage key {key!r} refused: keys never contain '..', '.' or empty components ({location})"
        )
    return key


def check_prefix(prefix: Any, setting: str) -> str:
    """A storage prefix: non-empty components, none ``.`` or ``..``."""
    if (
        not isinstance(prefix, str)
        or not prefix.strip("/")
        or _bad_parts(prefix.strip("/").split("/"))
        or "\\" in prefix
    ):
        raise PyWrenConfigError(
            f"'{setting}' is {prefix!r}: use a non-empty path such as 'pywren.jobs' without '.' or '..' parts"
        )
    return prefix.strip("/")


def check_number(
    value: Any,
    what: str,
    minimum: float,
    maximum: float,
    integer: bool = False,
    error: type[Exception] = PyWrenSubmitError,
    unit: str = "",
) -> Any:
    """Return ``value`` if it is a finite number in ``[minimum, maximum]`` (an int if ``integer``), else raise."""
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    number = (
        float(value)
        if isinstance(value, (int, float)) and isinstance(value, kinds) and not isinstance(value, bool)
        else math.nan
    )
    if not math.isfinite(number) or not minimum <= number <= maximum:
        kind = "an integer" if integer else "a finite number"
        raise error(f"{what} must be {kind} from {minimum:g} to {maximum:g}{unit}, got {value!r}")
    return value
