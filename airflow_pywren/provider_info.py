"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_pywren.version import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-pywren",
        "name": "PyWren",
        "description": "Massively parallel Python functions on OpenWhisk / IBM Cloud Functions with COS storage.",
        "versions": [__version__],
    }
