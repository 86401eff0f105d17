"""The PyWren executor, usable without Airflow."""

from airflow_pywren.executor.errors import (
    ActivationMemoryError,
    ActivationTimeoutError,
    ComputeError,
    FunctionError,
    FunctionExitError,
    PyWrenConfigError,
    PyWrenError,
    PyWrenSubmitError,
    StorageError,
)
from airflow_pywren.executor.executor import FunctionExecutor, ibm_cf_executor
from airflow_pywren.executor.factories import function_executor, local_executor, openwhisk_executor
from airflow_pywren.executor.future import ResponseFuture
from airflow_pywren.executor.serialization import ResultRef
from airflow_pywren.executor.wait import ALL_COMPLETED, ALWAYS, ANY_COMPLETED

__all__ = [
    "ALL_COMPLETED",
    "ALWAYS",
    "ANY_COMPLETED",
    "ActivationMemoryError",
    "ActivationTimeoutError",
    "ComputeError",
    "FunctionError",
    "FunctionExecutor",
    "FunctionExitError",
    "PyWrenConfigError",
    "PyWrenError",
    "PyWrenSubmitError",
    "ResponseFuture",
    "ResultRef",
    "StorageError",
    "function_executor",
    "ibm_cf_executor",
    "local_executor",
    "openwhisk_executor",
]
