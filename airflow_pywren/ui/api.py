"""The PyWren plugin's FastAPI app: the job view, the jobs page and the JSON API they draw from.

Mounted by Airflow's API server under :data:`URL_PREFIX`. Every ``/api`` route needs an
authenticated Airflow user (the API server's JWT, as a bearer token or the UI's cookie) whom
the auth manager allows to read the DAG's task instances. Answers carry ids, counts, timings,
error messages and small result previews, never connection settings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from airflow_pywren.executor.jobref import JobRef
from airflow_pywren.links.pywren import JOB_XCOM_KEY, job_view_url
from airflow_pywren.ui.reader import JobCleaned, JobKey, JobView, JobViews

log = logging.getLogger(__name__)

URL_PREFIX = "/pywren"
STATIC_DIR = Path(__file__).with_name("static")
RECENT_JOBS = 200

VIEWS = JobViews()
CanReadTaskInstances = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))

app = FastAPI(title="PyWren", description="PyWren jobs of Airflow task instances", docs_url=None, redoc_url=None)
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# ------------------------------------------------------------------- pages
@app.get("/job", include_in_schema=False)
def job_page() -> FileResponse:
    """The job view of one task instance (``?dag_id=&run_id=&task_id=&map_index=``); data comes from ``/api``."""
    return FileResponse(STATIC_DIR / "job.html", headers={"Cache-Control": "no-cache"})


@app.get("/jobs", include_in_schema=False)
def jobs_page() -> FileResponse:
    """Recent PyWren jobs across the DAGs the user may read."""
    return FileResponse(STATIC_DIR / "jobs.html", headers={"Cache-Control": "no-cache"})


# ------------------------------------------------------------------- lookups
def _map_index(value: str | None) -> int:
    """``map_index`` from a query string: the UI leaves ``{MAP_INDEX}`` in place for unmapped tasks."""
    try:
        return int(value) if value not in (None, "") else -1
    except ValueError:
        return -1


def _task_instance(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        )
        if ti is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no task instance {dag_id}/{run_id}/{task_id} with map index {map_index}"
            )
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key.in_([JOB_XCOM_KEY, "return_value"]),
            )
        ).all()
        values = {row.key: XComModel.deserialize_value(row) for row in rows}
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "state": str(ti.state.value if hasattr(ti.state, "value") else ti.state) if ti.state else None,
            "try_number": ti.try_number,
            "operator": ti.custom_operator_name or ti.operator,
            "start_date": ti.start_date.isoformat() if ti.start_date else None,
            "end_date": ti.end_date.isoformat() if ti.end_date else None,
            "duration": ti.duration,
            "record": _job_record(values),
        }


def _job_record(values: dict[str, Any]) -> dict[str, Any] | None:
    """The task instance's job record, or a job reference it returned (tasks run before the record existed)."""
    for key in (JOB_XCOM_KEY, "return_value"):
        value = values.get(key)
        if isinstance(value, dict) and JobRef.is_ref(value):
            return value
    return None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """What the pages may show of a job record (it holds no secrets; keep it to known keys anyway)."""
    keep = (
        "executor_id",
        "kind",
        "job_ids",
        "storage_backend",
        "bucket",
        "storage_prefix",
        "location",
        "total",
        "status",
        "done",
        "failed",
        "pywren_conn_id",
        "recorded_at",
    )
    return {key: record[key] for key in keep if key in record}


def _view(record: dict[str, Any]) -> JobView:
    from airflow_pywren.hooks.pywren import PyWrenHook, _check_same_storage

    ref = JobRef.parse(record, "the task instance's job record")
    conn_id = ref.pywren_conn_id or PyWrenHook.default_conn_name
    key = JobKey(f"{conn_id}|{ref.location or ''}", ref.executor_id, ref.job_ids)

    def make_executor() -> Any:
        executor = PyWrenHook(pywren_conn_id=conn_id).get_conn(rabbitmq_monitor=False)
        try:
            _check_same_storage(executor, ref, conn_id)
        except BaseException:
            executor.close()
            raise
        return executor

    return VIEWS.get(key, ref, make_executor)


def _redacted(message: str) -> str:
    try:
        from airflow.sdk.log import redact
    except ImportError:  # pragma: no cover - older task SDKs
        return message
    return str(redact(message))


def _job_state(dag_id: str, run_id: str, task_id: str, map_index: str | None) -> tuple[dict[str, Any], JobView | None]:
    """The task instance, and the view of its job when it can be read; ``ti["view_state"]`` says which."""
    ti = _task_instance(dag_id, run_id, task_id, _map_index(map_index))
    record = ti.pop("record")
    ti["job"] = _public(record) if record else None
    if record is None:
        ti["view_state"] = "no_job"
        ti["message"] = (
            "this task instance has not submitted a PyWren job"
            if ti["state"] in (None, "scheduled", "queued")
            else "this task instance ran no PyWren job"
        )
        return ti, None
    try:
        view = _view(record)
    except JobCleaned as exc:
        ti["view_state"], ti["message"] = "cleaned", f"The results were cleaned: {exc}"
        return ti, None
    except Exception as exc:  # storage unreachable, connection gone or changed
        log.warning("cannot read PyWren job %s of %s/%s/%s: %s", record.get("job_ids"), dag_id, run_id, task_id, exc)
        ti["view_state"], ti["message"] = (
            "unavailable",
            _redacted(f"the job cannot be read: {type(exc).__name__}: {exc}"),
        )
        return ti, None
    ti["view_state"] = "ok"
    return ti, view


def readable_dag_ids(user: Any, dag_ids: set[str], session: Any) -> set[str]:
    """The DAGs among ``dag_ids`` whose task instances ``user`` may read.

    The auth manager gets the details the job endpoints' check (``requires_access_dag``) gives it,
    the DAG's team included, so that a multi-team deployment keeps each team to its own DAGs.
    """
    from airflow.models.dag import DagModel

    teams = DagModel.get_dag_id_to_team_name_mapping(sorted(dag_ids), session=session)
    auth_manager = get_auth_manager()
    return {
        dag_id
        for dag_id in dag_ids
        if auth_manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id, team_name=teams.get(dag_id)),
            user=user,
        )
    }


TaskInstanceQuery = Annotated[str, Query(min_length=1)]


# ------------------------------------------------------------------- API
@app.get("/api/job", dependencies=[CanReadTaskInstances])
def job(
    dag_id: TaskInstanceQuery,
    run_id: TaskInstanceQuery,
    task_id: TaskInstanceQuery,
    map_index: str | None = None,
    offset: int = 0,
    limit: int = 50,
    status_filter: Annotated[str | None, Query(alias="status")] = None,
    timeline: bool = True,
) -> dict[str, Any]:
    """The job of a task instance: summary, one page of calls and the timeline (one LIST per refresh)."""
    ti, view = _job_state(dag_id, run_id, task_id, map_index)
    if view is None:
        return ti
    with view.lock:
        ti["summary"] = view.summary()
        ti["calls"] = view.calls(offset, limit, status_filter or None)
        if timeline:
            ti["timeline"] = view.timeline()
    ti["list_requests"] = view.list_requests
    return ti


@app.get("/api/job/calls", dependencies=[CanReadTaskInstances])
def job_calls(
    dag_id: TaskInstanceQuery,
    run_id: TaskInstanceQuery,
    task_id: TaskInstanceQuery,
    map_index: str | None = None,
    offset: int = 0,
    limit: int = 100,
    status_filter: Annotated[str | None, Query(alias="status")] = None,
) -> dict[str, Any]:
    """One page of the job's calls (``status=error``: failed calls only)."""
    ti, view = _job_state(dag_id, run_id, task_id, map_index)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, ti["message"])
    with view.lock:
        return view.calls(offset, limit, status_filter or None)


@app.get("/api/job/result", dependencies=[CanReadTaskInstances])
def job_result(
    dag_id: TaskInstanceQuery,
    run_id: TaskInstanceQuery,
    task_id: TaskInstanceQuery,
    index: int,
    map_index: str | None = None,
) -> dict[str, Any]:
    """A preview of one call's result when it is JSON-serialisable and small."""
    ti, view = _job_state(dag_id, run_id, task_id, map_index)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, ti["message"])
    try:
        preview = view.result_preview(index)
    except IndexError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if "reason" in preview:
        preview["reason"] = _redacted(preview["reason"])
    return preview


@app.get("/api/jobs")
def jobs(user: GetUserDep, limit: Annotated[int, Query(ge=1, le=RECENT_JOBS)] = 50) -> dict[str, Any]:
    """Recent PyWren jobs (newest first) of the DAGs whose task instances the user may read (no storage request)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    rows: list[dict[str, Any]] = []
    with create_session() as session:
        query = (
            select(XComModel, TaskInstance)
            .join(
                TaskInstance,
                (TaskInstance.dag_id == XComModel.dag_id)
                & (TaskInstance.run_id == XComModel.run_id)
                & (TaskInstance.task_id == XComModel.task_id)
                & (TaskInstance.map_index == XComModel.map_index),
            )
            .where(XComModel.key == JOB_XCOM_KEY)
            .order_by(XComModel.timestamp.desc())
            .limit(RECENT_JOBS * 5)
        )
        found = session.execute(query).all()
        readable = readable_dag_ids(user, {xcom.dag_id for xcom, _ in found}, session)
        for xcom, ti in found:
            if xcom.dag_id not in readable:
                continue
            record = XComModel.deserialize_value(xcom)
            if not isinstance(record, dict):
                continue
            state = getattr(ti.state, "value", ti.state)
            rows.append(
                {
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": state,
                    "try_number": ti.try_number,
                    "operator": ti.custom_operator_name or ti.operator,
                    "start_date": ti.start_date.isoformat() if ti.start_date else None,
                    "end_date": ti.end_date.isoformat() if ti.end_date else None,
                    "duration": ti.duration,
                    "job": _public(record),
                    "ui_url": job_view_url(ti.dag_id, ti.run_id, ti.task_id, ti.map_index),
                }
            )
            if len(rows) >= limit:
                break
    return {"jobs": rows, "total": len(rows)}
