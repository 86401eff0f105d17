"""Compute backends, by name. Adding one is one module and one entry in ``BACKENDS``."""

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


def create_compute(config: Config) -> ComputeBackend:
    """Build the compute backend named by ``pywren.compute_backend``."""
    module_name, _, class_name = BACKENDS[config["pywren"]["compute_backend"]].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(config)


__all__ = ["ComputeBackend", "Invocation", "create_compute", "BACKENDS"]
