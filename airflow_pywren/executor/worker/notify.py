"""Completion notices sent by a call as it starts and ends (besides the status in storage)."""

from __future__ import annotations

from typing import Any, Protocol


class Notifier(Protocol):
    def publish(self, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullNotifier:
    """Used when no message channel is configured: storage alone carries the status."""

    def publish(self, message: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


def notifier_for(settings: dict[str, Any] | None) -> Notifier:
    """A notifier for the activation's ``rabbitmq`` settings, or a no-op one."""
    if not settings:
        return NullNotifier()
    from airflow_pywren.executor.worker.rabbitmq_notify import RabbitMQNotifier

    return RabbitMQNotifier.shared(settings)
