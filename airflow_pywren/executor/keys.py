"""The storage key layout: the one place that knows where a job's objects live.

::

    {prefix}/{executor_id}/{job_id}/job.json                    job manifest (kind, call ids)
    {prefix}/{executor_id}/{job_id}/func.pickle                 the function and shipped modules
    {prefix}/{executor_id}/{job_id}/data.pickle                 all call data, one byte range per call
    {prefix}/{executor_id}/{job_id}/invocation.json             how far invoking the calls got, then their
                                                                activation ids (see .invocation)
    {prefix}/{executor_id}/{job_id}/activations.json            call id -> activation id, written by the remote
                                                                invoker (large maps on OpenWhisk)
    {prefix}/{executor_id}/{job_id}/task_done.json              the Airflow task instance that ran the job succeeded

and, under ``status/`` and ``output/``, the calls' records in the layout of the storage
backend (``StorageBackend.call_layout``, read and written only through
:mod:`airflow_pywren.executor.callstore`):

``objects`` (IBM COS and other object stores), one object per event::

    {prefix}/{executor_id}/{job_id}/status/{call_id}.start.json written when the call starts
    {prefix}/{executor_id}/{job_id}/status/{call_id}.json       written when the call ends (the last write)
    {prefix}/{executor_id}/{job_id}/output/{call_id}.pickle     the result (or the exception)

``segments`` (localhost files), append-only records (:mod:`.callstore.segments`)::

    {prefix}/{executor_id}/{job_id}/status/{pid}-{random}.seg   one per writing process: start and final
                                                                records, small outputs inline
    {prefix}/{executor_id}/{job_id}/output/{call_id}.pickle     an output too large to be inline

Either way a call's output is named by its output key, ``.../output/{call_id}.pickle``,
which :meth:`CallStore.read_output_key` reads wherever the layout keeps it. Everything a
monitor needs is under ``{job}/status/``, so one LIST (or directory scan) tells which
calls are pending, running or finished, without listing the outputs.
"""

from __future__ import annotations

JOB_MANIFEST = "job.json"
FUNC_OBJECT = "func.pickle"
DATA_OBJECT = "data.pickle"
INVOCATION = "invocation.json"
"""Invocation progress, rewritten while the calls are invoked (:mod:`airflow_pywren.executor.invocation`)."""
ACTIVATIONS = "activations.json"
"""Written by the remote invoker for the calls it invoked."""
START_OBJECT = "start"
STATUS_OBJECT = "status"
OUTPUT_OBJECT = "output"
TASK_DONE = "task_done.json"
"""Written by the Airflow operators when their task instance succeeded with the job (see ``job_key``)."""

STATUS_DIR = "status/"
OUTPUT_DIR = "output/"
_START_SUFFIX = ".start.json"
_STATUS_SUFFIX = ".json"
_OUTPUT_SUFFIX = ".pickle"


def call_id_of(index: int) -> str:
    """The call id of the ``index``-th call of a job: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


def executor_prefix(prefix: str, executor_id: str) -> str:
    return f"{prefix}/{executor_id}/"


def job_prefix(prefix: str, executor_id: str, job_id: str) -> str:
    return f"{prefix}/{executor_id}/{job_id}/"


def status_prefix(prefix: str, executor_id: str, job_id: str) -> str:
    """The prefix a monitor lists: every start and end status of a job's calls."""
    return f"{prefix}/{executor_id}/{job_id}/{STATUS_DIR}"


def job_key(prefix: str, executor_id: str, job_id: str, name: str) -> str:
    """Key of a job-level object (``JOB_MANIFEST``, ``FUNC_OBJECT``, ``DATA_OBJECT``, ``ACTIVATIONS``, ``INVOKER``, ``TASK_DONE``)."""
    return f"{prefix}/{executor_id}/{job_id}/{name}"


def call_key(prefix: str, executor_id: str, job_id: str, call_id: str, name: str) -> str:
    """Key of a call-level object (``START_OBJECT``, ``STATUS_OBJECT``, ``OUTPUT_OBJECT``)."""
    base = f"{prefix}/{executor_id}/{job_id}/"
    if name == STATUS_OBJECT:
        return f"{base}{STATUS_DIR}{call_id}{_STATUS_SUFFIX}"
    if name == START_OBJECT:
        return f"{base}{STATUS_DIR}{call_id}{_START_SUFFIX}"
    if name == OUTPUT_OBJECT:
        return f"{base}{OUTPUT_DIR}{call_id}{_OUTPUT_SUFFIX}"
    raise ValueError(f"unknown call object {name!r}")


def output_key_pattern(prefix: str, executor_id: str, job_id: str) -> str:
    """The output key of any call of a job, with ``{call_id}`` in place of the call id."""
    return call_key(prefix, executor_id, job_id, "{call_id}", OUTPUT_OBJECT)


def parse_status_key(key: str, status_prefix_: str) -> tuple[str, str] | None:
    """``(call_id, START_OBJECT | STATUS_OBJECT)`` of a key listed under ``status_prefix_``."""
    name = key[len(status_prefix_) :]
    if name.endswith(_START_SUFFIX):
        return name[: -len(_START_SUFFIX)], START_OBJECT
    if name.endswith(_STATUS_SUFFIX):
        return name[: -len(_STATUS_SUFFIX)], STATUS_OBJECT
    return None


def parse_output_key(key: str, prefix: str) -> tuple[str, str, str] | None:
    """``(executor_id, job_id, call_id)`` of a call's output key under ``prefix``; None for any other key."""
    if not key.startswith(prefix + "/") or not key.endswith(_OUTPUT_SUFFIX):
        return None
    parts = key[len(prefix) + 1 :].split("/")
    if len(parts) != 4 or parts[2] + "/" != OUTPUT_DIR:
        return None
    return parts[0], parts[1], parts[3][: -len(_OUTPUT_SUFFIX)]
