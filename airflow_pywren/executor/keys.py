"""The storage key layout: the one place that knows where a job's objects live.

::

    {prefix}/{executor_id}/{job_id}/job.json                 job manifest (calls, data ranges)
    {prefix}/{executor_id}/{job_id}/func.pickle              the function and shipped modules
    {prefix}/{executor_id}/{job_id}/data.pickle              all call data, one byte range per call
    {prefix}/{executor_id}/{job_id}/{call_id}/start.json     written when the call starts
    {prefix}/{executor_id}/{job_id}/{call_id}/status.json    written when the call ends
    {prefix}/{executor_id}/{job_id}/{call_id}/output.pickle  the result (or the exception)

``start.json`` and ``status.json`` are separate objects so that one LIST of the job
prefix tells which calls are pending, running or finished.
"""

from __future__ import annotations

JOB_MANIFEST = "job.json"
FUNC_OBJECT = "func.pickle"
DATA_OBJECT = "data.pickle"
START_OBJECT = "start.json"
STATUS_OBJECT = "status.json"
OUTPUT_OBJECT = "output.pickle"


def call_id_of(index: int) -> str:
    """The call id of the ``index``-th call of a job: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


def executor_prefix(prefix: str, executor_id: str) -> str:
    return f"{prefix}/{executor_id}/"


def job_prefix(prefix: str, executor_id: str, job_id: str) -> str:
    return f"{prefix}/{executor_id}/{job_id}/"


def job_key(prefix: str, executor_id: str, job_id: str, name: str) -> str:
    """Key of a job-level object (``JOB_MANIFEST``, ``FUNC_OBJECT``, ``DATA_OBJECT``)."""
    return f"{prefix}/{executor_id}/{job_id}/{name}"


def call_key(prefix: str, executor_id: str, job_id: str, call_id: str, name: str) -> str:
    """Key of a call-level object (``START_OBJECT``, ``STATUS_OBJECT``, ``OUTPUT_OBJECT``)."""
    return f"{prefix}/{executor_id}/{job_id}/{call_id}/{name}"


def split_call_key(key: str, job_prefix_: str) -> tuple[str, str] | None:
    """``(call_id, object name)`` of a key listed under ``job_prefix_``, or None for job-level keys."""
    rest = key[len(job_prefix_):]
    call_id, sep, name = rest.partition("/")
    return (call_id, name) if sep else None
