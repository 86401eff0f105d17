"""Airflow hooks of the PyWren provider."""

from __future__ import annotations

from typing import Any

__all__ = ["PyWrenHook"]


def __getattr__(name: str) -> Any:
    # Imported lazily: ``hooks.connection`` is read by provider metadata without importing Airflow.
    if name == "PyWrenHook":
        from airflow_pywren.hooks.pywren import PyWrenHook

        return PyWrenHook
    raise AttributeError(name)
