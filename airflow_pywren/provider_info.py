"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

It must stay cheap to import (Airflow calls it while loading its configuration): it
imports no Airflow module and no hook.
"""

from __future__ import annotations

from typing import Any

from airflow_pywren.hooks.connection import CONN_TYPE, conn_fields, ui_field_behaviour
from airflow_pywren.version import __version__

INTEGRATION = "PyWren"


def get_provider_info() -> dict[str, Any]:
    behaviour = ui_field_behaviour()
    return {
        "package-name": "airflow-pywren",
        "name": "PyWren",
        "description": (
            "Massively parallel Python from Airflow with the PyWren API: single calls, maps and map-reduce "
            "jobs on IBM Cloud Functions / Apache OpenWhisk (or this machine), with IBM COS (or local) storage, "
            "and a job view in the Airflow UI."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://github.com/pywren/pywren-ibm-cloud",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_pywren.hooks.pywren"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": ["airflow_pywren.operators.pywren"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_pywren.sensors.pywren"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_pywren.triggers.pywren"]}],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_pywren.hooks.pywren.PyWrenHook",
                "hook-name": "PyWren",
                "conn-fields": conn_fields(),
                "ui-field-behaviour": {
                    "hidden-fields": behaviour["hidden_fields"],
                    "relabeling": behaviour["relabeling"],
                    "placeholders": behaviour["placeholders"],
                },
            }
        ],
        "extra-links": ["airflow_pywren.links.pywren.PyWrenJobLink"],
        "task-decorators": [{"name": "pywren", "class-name": "airflow_pywren.decorators.pywren.pywren_task"}],
    }
