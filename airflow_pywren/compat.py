"""Airflow names this provider uses, all imported from Airflow 3's Task SDK.

Everything Airflow-specific in the provider imports from here, so only this module knows
where each name lives. Importing it on an Airflow older than :data:`MIN_AIRFLOW_VERSION`
raises one error naming the version needed, instead of an ``ImportError`` at DAG parse.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION  # noqa: N812
from packaging.version import Version

MIN_AIRFLOW_VERSION = "3.3.2"
"""The oldest Airflow the provider is tested on (the ``apache-airflow`` requirement in pyproject.toml)."""


def check_airflow_version(installed: str = AIRFLOW_VERSION) -> None:
    """Raise RuntimeError when ``installed`` is older than :data:`MIN_AIRFLOW_VERSION`."""
    if Version(Version(installed).base_version) < Version(MIN_AIRFLOW_VERSION):
        raise RuntimeError(
            f"the airflow-pywren provider needs Apache Airflow {MIN_AIRFLOW_VERSION} or newer, but Airflow "
            f"{installed} is installed: upgrade it (pip install 'apache-airflow>={MIN_AIRFLOW_VERSION}')"
        )


check_airflow_version()

from airflow.sdk import (  # noqa: E402 - only once the version is known to have them
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    XComArg,
)
from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory  # noqa: E402
from airflow.sdk.configuration import conf  # noqa: E402
from airflow.sdk.exceptions import (  # noqa: E402
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
)
from airflow.sdk.execution_time.xcom import XCom  # noqa: E402
from airflow.sdk.log import mask_secret  # noqa: E402
from airflow.triggers.base import BaseTrigger, TriggerEvent  # noqa: E402

__all__ = [
    "AIRFLOW_VERSION",
    "MIN_AIRFLOW_VERSION",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "DecoratedOperator",
    "TaskDecorator",
    "TriggerEvent",
    "XCom",
    "XComArg",
    "PokeReturnValue",
    "check_airflow_version",
    "conf",
    "mask_secret",
    "task_decorator_factory",
]
