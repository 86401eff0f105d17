"""Airflow names this provider uses, imported from the Task SDK (Airflow 3) or the 2.10 paths.

Everything Airflow-specific in the provider imports from here, so only this module knows
where each name lives in each Airflow major version.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION  # noqa: N812
from airflow.triggers.base import BaseTrigger, TriggerEvent  # the same path in Airflow 2.10 and 3

AIRFLOW_V3 = int(AIRFLOW_VERSION.split(".")[0]) >= 3

if AIRFLOW_V3:
    from airflow.sdk import (
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
        PokeReturnValue,
        XComArg,
    )
    from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
    )
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.sdk.log import mask_secret
else:  # Airflow 2.10
    from airflow.configuration import conf
    from airflow.decorators.base import DecoratedOperator, TaskDecorator, task_decorator_factory
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
    )
    from airflow.hooks.base import BaseHook
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.baseoperatorlink import BaseOperatorLink
    from airflow.models.xcom import XCom
    from airflow.models.xcom_arg import XComArg
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
    from airflow.utils.context import Context
    from airflow.utils.log.secrets_masker import mask_secret

__all__ = [
    "AIRFLOW_V3",
    "AIRFLOW_VERSION",
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
    "conf",
    "mask_secret",
    "task_decorator_factory",
]
