"""The executor factories of later PyWren versions: ``function_executor``, ``local_executor``, ``openwhisk_executor``.

Each returns a :class:`FunctionExecutor`; the keywords override the configuration as
they did in PyWren 1.5 (``backend`` is the compute backend).
"""

from __future__ import annotations

from typing import Any

from airflow_pywren.executor import legacy
from airflow_pywren.executor.executor import FunctionExecutor


def function_executor(
    config: dict[str, Any] | None = None,
    runtime: str | None = None,
    runtime_memory: int | None = None,
    backend: str | None = None,
    storage_backend: str | None = None,
    rabbitmq_monitor: bool = False,
    log_level: str | None = None,
    remote_invoker: bool | None = None,
) -> FunctionExecutor:
    """An executor on the compute ``backend`` (``localhost``, ``ibm_cf`` or its synonym ``openwhisk``)."""
    return FunctionExecutor(
        config=legacy.backend_config(config, backend, storage_backend, remote_invoker),
        runtime=runtime,
        runtime_memory=runtime_memory,
        log_level=log_level,
        rabbitmq_monitor=rabbitmq_monitor,
    )


def local_executor(
    config: dict[str, Any] | None = None,
    storage_backend: str | None = None,
    rabbitmq_monitor: bool = False,
    log_level: str | None = None,
) -> FunctionExecutor:
    """An executor that runs calls in processes on this machine (storage: ``localhost`` unless configured)."""
    return function_executor(
        config=config,
        backend="localhost",
        storage_backend=storage_backend,
        rabbitmq_monitor=rabbitmq_monitor,
        log_level=log_level,
    )


def openwhisk_executor(
    config: dict[str, Any] | None = None,
    runtime: str | None = None,
    runtime_memory: int | None = None,
    storage_backend: str | None = None,
    rabbitmq_monitor: bool = False,
    log_level: str | None = None,
    remote_invoker: bool | None = None,
) -> FunctionExecutor:
    """An executor on Apache OpenWhisk (the ``ibm_cf`` backend)."""
    return function_executor(
        config=config,
        runtime=runtime,
        runtime_memory=runtime_memory,
        backend="ibm_cf",
        storage_backend=storage_backend,
        rabbitmq_monitor=rabbitmq_monitor,
        log_level=log_level,
        remote_invoker=remote_invoker,
    )
