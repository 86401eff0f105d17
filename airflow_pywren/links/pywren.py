"""PyWrenJobLink: the task's "PyWren Job" button, opening the job view of its task instance.

The link is an ``http(s)`` URL on the API server (``[api] base_url``): the Airflow UI page of
the task instance with the PyWren job tab selected, whatever the compute and storage backends.
Operators also record the job they submitted in XCom (:data:`JOB_XCOM_KEY`), which is what
the job view reads.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from airflow_pywren.compat import BaseOperatorLink
from airflow_pywren.executor.jobref import JobRef, JobStatus

XCOM_KEY = "_link_PyWrenJobLink"
JOB_XCOM_KEY = "pywren_job"
"""XCom key of the job record a PyWren task instance writes: its job reference, status and counts."""
JOB_VIEW_ROUTE = "pywren-job"
"""The Airflow UI tab (``plugin/<route>``) of the job view on a task instance."""
DEFAULT_BASE_URL = "http://localhost:8080"


def api_base_url() -> str:
    """``[api] base_url`` without a trailing slash (the API server's default address when unset)."""
    from airflow_pywren.compat import conf

    base = (conf.get("api", "base_url", fallback="") or "").strip()
    if not base:
        port = conf.get("api", "port", fallback="8080") or "8080"
        base = f"http://localhost:{port}"
    return base.rstrip("/")


def job_view_url(dag_id: str, run_id: str, task_id: str, map_index: int = -1, base_url: str | None = None) -> str:
    """The Airflow UI address of a task instance's PyWren job tab."""
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    if map_index is not None and int(map_index) >= 0:
        path += f"/mapped/{int(map_index)}"
    return f"{base_url or api_base_url()}{path}/plugin/{JOB_VIEW_ROUTE}"


def job_record(
    job_ref: dict[str, Any] | JobRef, conn_id: str, status: JobStatus, done: int = 0, failed: int = 0
) -> dict[str, Any]:
    """The small JSON the job view reads: the reference (never per-call lists), its connection, status and counts."""
    ref = JobRef.parse(job_ref).with_conn_id(conn_id).with_progress(status, done, failed)
    record = {key: value for key, value in ref.to_xcom().items() if key not in ("result_keys", "results")}
    record["recorded_at"] = time.time()
    return record


class PyWrenJobLink(BaseOperatorLink):
    """Link to the job view of the task instance (an ``http(s)`` URL, drawn by the Airflow UI)."""

    name = "PyWren Job"

    @property
    def xcom_key(self) -> str:
        """Where the URL is stored (Airflow 3 reads links from this XCom key)."""
        return XCOM_KEY

    @classmethod
    def record(
        cls,
        context: Any,
        job_ref: dict[str, Any] | JobRef,
        conn_id: str,
        status: JobStatus,
        done: int = 0,
        failed: int = 0,
    ) -> None:
        """Store the job record and the link of the running task instance (both small, O(1) in calls)."""
        ti = context["ti"]
        ti.xcom_push(key=JOB_XCOM_KEY, value=job_record(job_ref, conn_id, status, done, failed))
        ti.xcom_push(key=XCOM_KEY, value=job_view_url(ti.dag_id, ti.run_id, ti.task_id, ti.map_index))

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        map_index = getattr(ti_key, "map_index", -1)
        return job_view_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id, -1 if map_index is None else map_index)
