"""PyWrenPlugin: registers the job view tab, the jobs page and their FastAPI app with Airflow 3.

The module stays cheap to import (every Airflow process loads plugins): the FastAPI app is
imported only when the API server asks for it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from airflow_pywren.links.pywren import JOB_VIEW_ROUTE, api_base_url

URL_PREFIX = "/pywren"
JOBS_ROUTE = "pywren-jobs"
_QUERY = "dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"


def _path_prefix() -> str:
    """Where the API server's root is, e.g. ``/airflow`` when ``[api] base_url`` has a path."""
    return urlsplit(api_base_url()).path.rstrip("/") + URL_PREFIX


class PyWrenPlugin(AirflowPlugin):
    """The PyWren job tab of every task instance, the "PyWren jobs" page, ``/pywren/api``, and fixes for the
    ``pywren`` connection form (:mod:`airflow_pywren.ui.connection_form`)."""

    name = "pywren"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_pywren.ui.api import app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "PyWren jobs"}]

    @property
    def fastapi_root_middlewares(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_pywren.ui.connection_form import PyWrenConnectionForm

        return [{"middleware": PyWrenConnectionForm, "args": [], "kwargs": {}, "name": "PyWren connection form"}]

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        prefix = _path_prefix()
        return [
            {
                "name": "PyWren job",
                "href": f"{prefix}/job?{_QUERY}",
                "destination": "task_instance",
                "url_route": JOB_VIEW_ROUTE,
                "icon": f"{prefix}/static/pywren.svg",
            },
            {
                "name": "PyWren jobs",
                "href": f"{prefix}/jobs",
                "destination": "nav",
                "url_route": JOBS_ROUTE,
                "icon": f"{prefix}/static/pywren.svg",
            },
        ]
