"""airflow-pywren: massively parallel Python from Apache Airflow, with the PyWren API.

``import airflow_pywren as pywren; pw = pywren.ibm_cf_executor()`` needs no Airflow;
the Airflow hook, operators, sensors and triggers live in the sub-packages of the same name.
"""

from airflow_pywren.executor import (
    ALL_COMPLETED,
    ALWAYS,
    ANY_COMPLETED,
    ActivationMemoryError,
    ActivationTimeoutError,
    ComputeError,
    FunctionError,
    FunctionExecutor,
    PyWrenConfigError,
    PyWrenError,
    PyWrenSubmitError,
    ResponseFuture,
    ResultRef,
    StorageError,
    ibm_cf_executor,
)
from airflow_pywren.version import __version__

__all__ = [
    "ALL_COMPLETED",
    "ALWAYS",
    "ANY_COMPLETED",
    "ActivationMemoryError",
    "ActivationTimeoutError",
    "ComputeError",
    "FunctionError",
    "FunctionExecutor",
    "PyWrenConfigError",
    "PyWrenError",
    "PyWrenSubmitError",
    "ResponseFuture",
    "ResultRef",
    "StorageError",
    "__version__",
    "ibm_cf_executor",
]
