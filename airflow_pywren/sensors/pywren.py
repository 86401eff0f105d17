"""PyWrenJobSensor: waits for a PyWren job submitted by an upstream task, found through its XCom."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_pywren.compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow_pywren.executor.jobref import JobRef, JobStatus
from airflow_pywren.executor.jobs import JobProgress, JobWatcher, compact_reference
from airflow_pywren.links.pywren import PyWrenJobLink
from airflow_pywren.triggers.pywren import (
    ERROR,
    MONITORS,
    RABBITMQ,
    STORAGE,
    SUCCESS,
    TIMEOUT,
    PyWrenJobTrigger,
    describe_failure,
    updated_job_ref,
)

if TYPE_CHECKING:
    from airflow_pywren.compat import Context

DEFAULT_CONN_ID = "pywren_default"


def parse_job_ref(value: Any) -> dict[str, Any]:
    """The XCom dict of a job reference given as a dict or as the text a template rendered it to."""
    return JobRef.parse(value, "job_ref").to_xcom()


class PyWrenJobSensor(BaseSensorOperator):
    """Succeeds when every call of a PyWren job has finished; fails if any call failed.

    :param job_ref: the job reference an upstream PyWren task returned: an ``XComArg``
        (``upstream.output``), a dict, or a template rendering to one
        (``"{{ ti.xcom_pull(task_ids='submit') }}"``). Templated.
    :param pywren_conn_id: the Airflow connection with the executor configuration (templated); by
        default the one the upstream operator used (``pywren_conn_id`` in the job reference), else
        ``pywren_default``.
    :param monitor: ``"storage"`` reads the job's statuses from storage; ``"rabbitmq"`` uses the
        calls' RabbitMQ notices (storage still decides).
    :param deferrable: wait in the triggerer (``PyWrenJobTrigger``) instead of a worker slot.

    Poke and reschedule modes, ``poke_interval`` and ``timeout`` work as for any sensor. On
    success the sensor returns the job reference with ``status``, ``done`` and ``failed``.
    """

    template_fields: Sequence[str] = ("job_ref", "pywren_conn_id")
    operator_extra_links = (PyWrenJobLink(),)
    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        job_ref: Any,
        pywren_conn_id: str | None = None,
        monitor: str = STORAGE,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
        self.job_ref = job_ref
        self.pywren_conn_id = pywren_conn_id
        self.monitor = monitor
        self.deferrable = deferrable
        self._watcher: JobWatcher | None = None

    # ------------------------------------------------------------ execution
    def execute(self, context: Context) -> Any:
        try:
            if not self.deferrable:
                return super().execute(context)
            job_ref = JobRef.parse(self.job_ref, "job_ref")
            progress = self._poll(job_ref)
            self._record(context, job_ref, progress)
            if progress.finished:
                return self._finish(job_ref, progress)
        finally:
            self._close()
        self.log.info("deferring to PyWrenJobTrigger (%s monitoring, every %g s)", self.monitor, self.poke_interval)
        self.defer(
            trigger=PyWrenJobTrigger(
                job_ref=compact_reference(job_ref),  # keep the trigger row small
                pywren_conn_id=self._conn_id(job_ref),
                monitor=self.monitor,
                poll_interval=self.poke_interval or 1.0,
                timeout=self.timeout or None,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        job_ref = JobRef.parse(self.job_ref, "job_ref")
        try:
            progress = self._poll(job_ref)
        finally:
            if self.reschedule:  # each reschedule is a new try: keep no connection between them
                self._close()
        self._record(context, job_ref, progress)
        if not progress.finished:
            return False
        self._close()
        return PokeReturnValue(is_done=True, xcom_value=self._finish(job_ref, progress))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the updated job reference or fail with the job's errors."""
        status = event.get("status")
        if status == SUCCESS:
            self.log.info("%s", event.get("message"))
            return updated_job_ref(JobRef.parse(self.job_ref, "job_ref"), event["progress"])
        if status == TIMEOUT:
            raise AirflowSensorTimeout(event.get("message"))
        progress = event.get("progress") or {}
        if status == ERROR and progress.get("failed"):
            raise AirflowFailException(event.get("message"))
        raise AirflowException(
            event.get("message") or f"PyWrenJobTrigger sent an event this sensor cannot read: {event!r:.200}"
        )

    def on_kill(self) -> None:
        self._close()

    def _record(self, context: Context, job_ref: JobRef, progress: JobProgress) -> None:
        """Record the watched job for the job view, once per try and when it finishes."""
        if getattr(self, "_recorded", None) == progress.finished:
            return
        self._recorded = progress.finished
        status = progress.status if progress.finished else JobStatus.SUBMITTED
        PyWrenJobLink.record(context, job_ref, self._conn_id(job_ref), status, progress.done, progress.failed)

    # -------------------------------------------------------------- helpers
    def _poll(self, job_ref: JobRef) -> JobProgress:
        if self._watcher is None:
            from airflow_pywren.hooks.pywren import PyWrenHook

            self._watcher = PyWrenHook(pywren_conn_id=self._conn_id(job_ref)).watch(
                job_ref, rabbitmq_monitor=self.monitor == RABBITMQ
            )
        progress = self._watcher.poll()
        self.log.info("%s", progress.line())
        return progress

    def _conn_id(self, job_ref: JobRef) -> str:
        return self.pywren_conn_id or job_ref.pywren_conn_id or DEFAULT_CONN_ID

    def _finish(self, job_ref: JobRef, progress: JobProgress) -> dict[str, Any]:
        if progress.failed:
            raise AirflowFailException(describe_failure(progress.as_dict()))
        return updated_job_ref(job_ref, progress)

    def _close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.executor.close()
