"""Storage backends, by name. Adding one is one module and one entry in ``BACKENDS``.

The module holds a :class:`StorageBackend` subclass, which declares its config section
(``settings_schema``, ``check_settings``); see "Adding a backend" in the README.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow_pywren.executor.storage.base import StorageBackend

BACKENDS = {
    "localhost": "airflow_pywren.executor.storage.localhost:LocalhostStorage",
    "ibm_cos": "airflow_pywren.executor.storage.ibm_cos:IBMCOSStorage",
}


def storage_class(name: str) -> type[StorageBackend]:
    """The class of the storage backend ``name`` (its module is imported on first use)."""
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_storage(name: str, settings: dict[str, Any]) -> StorageBackend:
    """Build the storage backend ``name`` from its config section."""
    return storage_class(name)(settings)


def storage_from_spec(spec: dict[str, Any]) -> StorageBackend:
    """Build storage on the function side from ``{"backend": name, "settings": {...}}``."""
    return create_storage(spec["backend"], spec["settings"])


def storage_spec(storage: StorageBackend) -> dict[str, Any]:
    """What travels with an activation so the function side can reach the same storage."""
    return {"backend": storage.name, "settings": storage.function_settings()}


__all__ = ["StorageBackend", "storage_class", "create_storage", "storage_from_spec", "storage_spec", "BACKENDS"]
