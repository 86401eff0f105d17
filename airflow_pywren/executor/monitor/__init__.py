"""Job monitors: storage polling (always available) and RabbitMQ notifications."""

from __future__ import annotations

import logging

from airflow_pywren.executor.config import Config
from airflow_pywren.executor.monitor.base import JobMonitor
from airflow_pywren.executor.monitor.storage import StorageMonitor
from airflow_pywren.executor.storage.base import StorageBackend

logger = logging.getLogger(__name__)


def create_monitor(config: Config, storage: StorageBackend, executor_id: str) -> JobMonitor:
    """The monitor the configuration asks for; storage polling when RabbitMQ is off or unreachable."""
    storage_monitor = StorageMonitor(storage, config["pywren"]["monitor_interval"], config["pywren"]["max_workers"])
    if not config["pywren"]["rabbitmq_monitor"]:
        return storage_monitor
    from airflow_pywren.executor.monitor.rabbitmq import RabbitMQMonitor

    return RabbitMQMonitor(config["rabbitmq"], storage_monitor, executor_id)


__all__ = ["JobMonitor", "StorageMonitor", "create_monitor"]
