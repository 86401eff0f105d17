"""Airflow operators of the PyWren provider: call_async, map and map_reduce jobs as tasks."""

from __future__ import annotations

from typing import Any

__all__ = ["PyWrenCallAsyncOperator", "PyWrenMapOperator", "PyWrenMapReduceOperator"]


def __getattr__(name: str) -> Any:
    # Imported lazily: ``operators.inputs`` is used without importing Airflow.
    if name in __all__:
        from airflow_pywren.operators import pywren

        return getattr(pywren, name)
    raise AttributeError(name)
