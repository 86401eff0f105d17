"""Keywords of the original PyWren API (1.0.x-1.5.x) that the executor accepts by their old names.

Each method passes its ``**legacy`` keywords to :func:`take`, which returns the ones it
honours (renamed to today's names), logs one WARNING line per process for each one that
has no effect here, and raises ``TypeError`` only for names PyWren never had.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_pywren.executor.errors import PyWrenSubmitError

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
            if (method, name) not in _warned:
                _warned.add((method, name))
                logger.warning("%s(%s=...) has no effect here: %s", method, name, IGNORED[name])
            continue
        honoured[RENAMED.get(name, name)] = value
    return honoured


def extra_args_of(extra_args: Any, legacy: Mapping[str, Any]) -> Any:
    """``extra_args``, or its PyWren 1.0 name ``extra_params``; both at once is an error."""
    if "extra_args" in legacy:
        if extra_args is not None:
            raise PyWrenSubmitError("pass either extra_args or extra_params (its PyWren 1.0 name), not both")
        return legacy["extra_args"]
    return extra_args
