"""Compute backends, by name. Adding one is one module and one entry in ``BACKENDS``.

The module holds a :class:`ComputeBackend` subclass, which declares its config section
(``settings_schema``, ``check_settings``); see "Adding a backend" in the README.
"""

from __future__ import annotations

import importlib

from airflow_pywren.executor.compute.base import ComputeBackend, Invocation
from airflow_pywren.executor.config import Config

BACKENDS = {
    "localhost": "airflow_pywren.executor.compute.localhost:LocalhostCompute",
    "ibm_cf": "airflow_pywren.executor.compute.ibm_cf:OpenWhiskCompute",
    "k8s": "airflow_pywren.executor.compute.k8s:KubernetesCompute",
    "code_engine": "airflow_pywren.executor.compute.code_engine:CodeEngineCompute",
}


def compute_class(name: str) -> type[ComputeBackend]:
    """The class of the compute backend ``name`` (its module is imported on first use)."""
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_compute(config: Config) -> ComputeBackend:
    """Build the compute backend named by ``pywren.compute_backend``."""
    return compute_class(config["pywren"]["compute_backend"])(config)


__all__ = ["ComputeBackend", "Invocation", "compute_class", "create_compute", "BACKENDS"]
