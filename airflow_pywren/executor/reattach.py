"""Continuing the job an earlier try submitted under the same executor id, instead of submitting again.

A scheduler that gives every try of one task the same executor id (the Airflow operators do)
asks :func:`find_earlier_job` before submitting. It reads the executor's jobs in storage:

* no job, or none that is a complete submission of this kind: submit (``NONE``, ``OTHER_KIND``);
* the latest submission carries a done marker (:func:`mark_done`: a try succeeded with it):
  the task runs again on purpose, submit a new job (``SERVED``);
* it finished with failed calls: run every call again, as a new job (``FAILED``);
* otherwise continue with it (``CONTINUE``): it is still running, or finished without
  failures; the calls its submitter never invoked (it stopped part-way) are invoked now, once each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.errors import StorageKeyNotFound
from airflow_pywren.executor.jobref import JobRef
from airflow_pywren.executor.jobs import JobProgress, JobWatcher, reference_of

if TYPE_CHECKING:
    from airflow_pywren.executor.executor import FunctionExecutor


class Verdict(str, Enum):
    """What to do about the jobs an earlier try left under the executor id."""

    NONE = "none"
    """The executor holds no job: submit."""
    OTHER_KIND = "other_kind"
    """It holds jobs, but its latest is no complete submission of this kind: submit."""
    SERVED = "served"
    """A try already succeeded with the latest submission: submit a new job."""
    FAILED = "failed"
    """The latest submission finished with failed calls: run all of them again, as a new job."""
    CONTINUE = "continue"
    """Continue with the latest submission: it runs, or finished without failures."""


@dataclass(frozen=True)
class EarlierJob:
    """What :func:`find_earlier_job` found, with what a log line about it needs."""

    verdict: Verdict
    job_ids: tuple[str, ...] = ()
    """The submission's jobs (map and reducer for a map_reduce); every stored job for ``OTHER_KIND``."""
    done_marker: Mapping[str, Any] | None = None
    """``SERVED``: what the try that succeeded with it recorded (see :func:`mark_done`)."""
    invoked: tuple[int, ...] = ()
    """Per job: the calls invoked now because the earlier try never invoked them."""
    ref: JobRef | None = None
    """``CONTINUE`` only: the reference of the job to follow (None: submit)."""
    progress: JobProgress | None = None
    """``FAILED`` and ``CONTINUE``: how far it got."""

    @property
    def name(self) -> str:
        """The submission's jobs as a log line names them: ``M000+R001``."""
        return "+".join(self.job_ids)


def find_earlier_job(executor: FunctionExecutor, kind: str, extra_env: dict[str, str] | None = None) -> EarlierJob:
    """Look in the executor's storage for the latest submission of ``kind`` (call_async, map or map_reduce).

    When it is to be continued, invokes the calls its submitter never invoked (pass the
    ``extra_env`` the job was submitted with) and polls it once.
    """
    stored = executor.job_ids()
    if not stored:
        return EarlierJob(Verdict.NONE)
    job_ids = _latest_submission(executor, kind, stored[-1])
    if job_ids is None:
        return EarlierJob(Verdict.OTHER_KIND, tuple(stored))
    marker = done_marker(executor, job_ids[-1])
    if marker is not None:
        return EarlierJob(Verdict.SERVED, job_ids, done_marker=marker)
    invoked = tuple(executor.invoke_missing(job_id, extra_env=extra_env) for job_id in job_ids)
    futures = [  # the map calls of a map_reduce produce no result of their own: the reducer does
        future
        for job_id in job_ids
        for future in executor.job_futures(job_id, produce_output=kind != "map_reduce" or job_id != job_ids[0])
    ]
    ref = reference_of(executor, kind, futures)
    progress = JobWatcher(executor, ref).poll()
    if progress.finished and progress.failed:
        return EarlierJob(Verdict.FAILED, job_ids, invoked=invoked, progress=progress)
    return EarlierJob(Verdict.CONTINUE, job_ids, invoked=invoked, ref=ref, progress=progress)


def done_marker(executor: FunctionExecutor, job_id: str) -> dict[str, Any] | None:
    """What the try that succeeded with this job of the executor recorded, or None if none did."""
    storage = executor.storage
    try:
        return json.loads(storage.get(keys.job_key(storage.prefix, executor.executor_id, job_id, keys.TASK_DONE)))
    except StorageKeyNotFound:
        return None


def mark_done(executor: FunctionExecutor, ref: JobRef, identity: Mapping[str, Any]) -> None:
    """Record next to the referenced job that a try succeeded with it, so that a later try submits anew.

    ``identity`` names the try (Airflow: dag_id, run_id, task_id, map_index, try_number); the
    marker adds ``finished_at``.
    """
    marker = {**identity, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    storage = executor.storage
    storage.put(
        keys.job_key(storage.prefix, ref.executor_id, ref.job_ids[-1], keys.TASK_DONE), json.dumps(marker).encode()
    )


def _latest_submission(executor: FunctionExecutor, kind: str, last: str) -> tuple[str, ...] | None:
    """The job ids of the submission ending with job ``last`` if it is one of ``kind``, else None."""
    storage = executor.storage
    manifest = json.loads(storage.get(keys.job_key(storage.prefix, executor.executor_id, last, keys.JOB_MANIFEST)))
    if kind == "map_reduce":
        return (manifest["reduce_of"], last) if manifest["kind"] == "reduce" and manifest.get("reduce_of") else None
    return (last,) if manifest["kind"] == kind else None
