"""Executors created inside a call (nested executors) inherit the call's backends.

Each job's payload carries ``nested``: the client's settings with every secret left out
(:func:`nested_settings`). While the function side runs a call it keeps those, the storage
settings and the signing keys the call was sent (:func:`running`); an executor created in
the call starts from them (:func:`inherited`), under any config file, ``PYWREN_CONFIG`` or
``config`` argument of its own. Inner results therefore land in the client's storage,
signed with the client's key, and the client reads them.

Compute credentials never travel this way: a call that creates executors on a remote
compute backend gives them their key itself (its ``config`` argument, or ``PYWREN_CONFIG``
through ``extra_env``). On localhost compute nothing is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from airflow_pywren.executor.signing import Signer

SECRET_NAME = re.compile(r"(key|secret|token|password|amqp_url)", re.IGNORECASE)
"""Settings never sent as ``nested`` (credentials, key files, broker URLs with their password)."""
SECTIONS = ("pywren", "localhost")


@dataclass(frozen=True)
class InheritedBackends:
    """What an executor created inside a running call starts from."""

    config: dict[str, dict[str, Any]]
    signer: Signer


_running: list[tuple[dict[str, Any], Signer]] = []
"""The payload and signer of each call running in this process (innermost last)."""


def nested_settings(config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The client's ``pywren``, ``localhost`` and compute sections, without secrets, for the payload."""
    compute = config["pywren"]["compute_backend"]
    settings = {
        name: {key: value for key, value in config[name].items() if not SECRET_NAME.search(key)}
        for name in dict.fromkeys((*SECTIONS, compute))
        if name in config
    }
    settings["pywren"]["rabbitmq_monitor"] = False  # the broker's URL holds its password: storage monitoring
    return settings


@contextmanager
def running(payload: dict[str, Any], signer: Signer) -> Iterator[None]:
    """Within the block (one call), executors created with no configuration use the call's backends."""
    _running.append((payload, signer))
    try:
        yield
    finally:
        _running.pop()


def inherited() -> InheritedBackends | None:
    """The running call's backends, when this code runs inside a call (built when an executor asks)."""
    if not _running or not _running[-1][0].get("nested"):
        return None
    payload, signer = _running[-1]
    config = {name: dict(section) for name, section in payload["nested"].items()}
    storage = payload["storage"]
    config["pywren"]["storage_backend"] = storage["backend"]
    config[storage["backend"]] = {**config.get(storage["backend"], {}), **storage["settings"]}
    return InheritedBackends(config, signer)
