"""PyWrenJobLink: the task's "PyWren Job" button, pointing at the job it submitted."""

from __future__ import annotations

from typing import Any

from airflow_pywren.compat import BaseOperatorLink, XCom
from airflow_pywren.executor.jobref import JobRef

XCOM_KEY = "_link_PyWrenJobLink"


class PyWrenJobLink(BaseOperatorLink):
    """Link to the task's PyWren job: the compute backend's job page when it has one
    (e.g. OpenWhisk activations), else the job's storage location.

    Operators store the URL in XCom under :attr:`xcom_key` when they submit or re-attach;
    the Airflow UI reads it from there.
    """

    name = "PyWren Job"

    @property
    def xcom_key(self) -> str:
        """Where operators store the URL (Airflow 3 reads links from this XCom key)."""
        return XCOM_KEY

    @classmethod
    def url_for(cls, executor: Any, job_ref: dict[str, Any] | JobRef) -> str:
        """``compute.job_link`` of the reference's first job, else ``<storage location>/<executor_id>/``."""
        ref = JobRef.parse(job_ref)
        executor_id = ref.executor_id
        link = executor.compute.job_link(executor_id, ref.job_ids[0])
        return link or f"{executor.storage.location()}/{executor_id}/"

    @classmethod
    def persist(cls, context: Any, url: str) -> None:
        """Store the link of the running task instance."""
        context["ti"].xcom_push(key=cls().xcom_key, value=url)

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return XCom.get_value(key=self.xcom_key, ti_key=ti_key) or ""
