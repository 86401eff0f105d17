"""Keywords of the original PyWren API (1.0.x-1.5.x) that the executor accepts by their old names.

Each method passes its ``**legacy`` keywords to :func:`take`, which returns the ones it
honours (renamed to today's names), logs one WARNING line per process for each one that
has no effect here, and raises ``TypeError`` only for names PyWren never had.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_pywren.executor.errors import PyWrenConfigError, PyWrenSubmitError
from airflow_pywren.executor.wait import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, WAIT_MODES

logger = logging.getLogger("airflow_pywren.executor")

RENAMED = {
    "extra_params": "extra_args",
    "fs": "futures",
    "WAIT_DUR_SEC": "wait_dur_sec",
    "THREADPOOL_SIZE": "threadpool_size",
}
"""Old name -> the name the executor uses."""

IGNORED = {
    "remote_invocation": "large maps use the remote invoker when 'ibm_cf.remote_invoker' is set",
    "remote_invocation_groups": "large maps use the remote invoker when 'ibm_cf.remote_invoker' is set",
    "invoke_pool_threads": "invocations in flight are bounded by 'ibm_cf.max_concurrency'",
    "data_all_as_one": "a job's data is always staged as one object",
    "overwrite_invoke_args": "each call's payload is built by the executor",
    "internal_storage": "the executor reads from its own storage",
}
"""Old keywords with no effect here, and why."""

SUBMIT = ("extra_params", *IGNORED)
WAIT = ("fs", "WAIT_DUR_SEC", "THREADPOOL_SIZE", "internal_storage")

_warned: set[tuple[str, str]] = set()


def take(method: str, given: Mapping[str, Any], accepted: tuple[str, ...]) -> dict[str, Any]:
    """The honoured keywords of ``given`` under today's names; warn about ignored ones; reject unknown ones."""
    honoured: dict[str, Any] = {}
    for name, value in given.items():
        if name not in accepted:
            known = ", ".join(sorted(accepted))
            raise TypeError(
                f"{method}() got an unexpected keyword argument {name!r} (original PyWren keywords "
                f"accepted here: {known})"
            )
        if name in IGNORED:
            warn_once(method, name, IGNORED[name])
            continue
        honoured[RENAMED.get(name, name)] = value
    return honoured


def warn_once(method: str, name: str, why: str) -> None:
    """One WARNING line per process for a keyword that has no effect here."""
    if (method, name) not in _warned:
        _warned.add((method, name))
        logger.warning("%s(%s=...) has no effect here: %s", method, name, why)


def extra_args_of(extra_args: Any, legacy: Mapping[str, Any]) -> Any:
    """``extra_args``, or its PyWren 1.0 name ``extra_params``; both at once is an error."""
    if "extra_args" in legacy:
        if extra_args is not None:
            raise PyWrenSubmitError("pass either extra_args or extra_params (its PyWren 1.0 name), not both")
        return legacy["extra_args"]
    return extra_args


RETURN_WHEN_CODES = {1: ALL_COMPLETED, 2: ANY_COMPLETED, 3: ALWAYS}
"""The integer constants of PyWren's ``wait`` module."""


def return_when(value: Any) -> str:
    """A wait mode from today's names (any case) or PyWren's integer constants."""
    if isinstance(value, int) and not isinstance(value, bool) and value in RETURN_WHEN_CODES:
        return RETURN_WHEN_CODES[value]
    if isinstance(value, str) and value.upper() in WAIT_MODES:
        return value.upper()
    raise ValueError(f"return_when must be one of {', '.join(WAIT_MODES)} (or PyWren's 1, 2, 3), got {value!r}")


def wait_dur_sec(options: Mapping[str, Any], config: Mapping[str, Any]) -> float | None:
    """PyWren's ``WAIT_DUR_SEC``: seconds between storage checks; RabbitMQ monitoring keeps its own pace."""
    value = options.get("wait_dur_sec")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"WAIT_DUR_SEC must be a positive number of seconds, got {value!r}")
    if config["pywren"]["rabbitmq_monitor"]:
        return None
    return float(value)


COMPUTE_NAMES = {"localhost": "localhost", "ibm_cf": "ibm_cf", "openwhisk": "ibm_cf"}
"""Compute backend names of PyWren's ``function_executor(backend=...)`` that exist here."""


def backend_config(
    config: Mapping[str, Any] | None,
    backend: str | None = None,
    storage_backend: str | None = None,
    remote_invoker: bool | None = None,
) -> dict[str, Any] | None:
    """``config`` with the factory keywords of PyWren 1.5 (``backend``, ``storage_backend``, ``remote_invoker``) applied."""
    if backend is None and storage_backend is None and remote_invoker is None:
        return dict(config) if config is not None else None
    if config is not None and not isinstance(config, Mapping):
        raise PyWrenConfigError(f"config must be a dict of sections, got {type(config).__name__}")
    merged = {section: dict(values or {}) for section, values in (config or {}).items()}
    pywren = merged.setdefault("pywren", {})
    if backend is not None:
        if backend not in COMPUTE_NAMES:
            raise PyWrenConfigError(
                f"compute backend {backend!r} is not available here; choose one of {', '.join(sorted(COMPUTE_NAMES))}"
            )
        pywren["compute_backend"] = COMPUTE_NAMES[backend]
    if storage_backend is not None:
        pywren["storage_backend"] = storage_backend
    if remote_invoker is not None:
        merged.setdefault("ibm_cf", {})["remote_invoker"] = bool(remote_invoker)
    return merged
