"""OpenLineage for PyWren tasks: the data a map read, and the declared outputs its functions wrote.

Inputs come from the job reference (``inputs.datasets``, recorded when a map over data
was planned); an output location given in ``outputs=`` is reported when, after the job,
an object under it was written since the job was submitted (a listing; objects that were
there before do not count). Dataset names follow OpenLineage's conventions:
``s3://bucket`` + key for COS, ``file`` + path for the embedded storage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_pywren.executor.data.locations import FILE, HTTP, location_text, parse_location
from airflow_pywren.executor.data.plan import dataset_name
from airflow_pywren.executor.errors import PyWrenError
from airflow_pywren.executor.executor import FunctionExecutor

logger = logging.getLogger(__name__)

Datasets = list[dict[str, str]]

CLOCK_SLACK_SECONDS = 2.0
"""How much earlier than the job's submission an object's time may be and still count as the job's
(the storage's clock and the submitter's differ a little)."""


def _as_list(outputs: Sequence[Any] | str | None) -> list[Any]:
    if outputs is None:
        return []
    if location_text(outputs) is not None:
        return [outputs]
    return list(outputs)


def _file_times(path: str) -> Iterator[float]:
    if os.path.isfile(path):
        yield os.stat(path).st_mtime
    for folder, _, files in os.walk(path):
        for name in files:
            yield os.stat(os.path.join(folder, name)).st_mtime


def written_outputs(
    executor: FunctionExecutor, outputs: Sequence[Any] | str | None, since: float | None = None
) -> Datasets:
    """The declared output locations holding an object written at ``since`` or later (any object without it)."""
    earliest = None if since is None else since - CLOCK_SLACK_SECONDS
    written: Datasets = []
    for value in _as_list(outputs):
        try:
            location = parse_location(value)
            if location.kind == HTTP:
                continue
            if location.kind == FILE:
                times: Iterator[float | None] = _file_times(location.key)
            else:
                times = (info.modified for info in executor.storage.list_objects(location.bucket, location.key))
            found = any(earliest is None or at is None or at >= earliest for at in times)
        except (PyWrenError, OSError) as exc:
            logger.warning("output %r is not reported to lineage: %s", value, exc)
            continue
        if found:
            written.append(dataset_name(location, executor.storage))
    return written


def job_lineage(executor: FunctionExecutor, ref: Any, outputs: Sequence[Any] | str | None) -> tuple[Datasets, Datasets]:
    """(inputs, outputs) of a finished job (its JobRef or XCom dict) as dataset names."""
    from airflow_pywren.executor.jobref import JobRef

    job_ref = JobRef.parse(ref)
    inputs = list((job_ref.inputs or {}).get("datasets") or [])
    if not outputs:
        return inputs, []
    try:
        submitted: float | None = executor.job_submitted_at(job_ref.job_ids[0], executor_id=job_ref.executor_id)
    except PyWrenError as exc:
        logger.warning(
            "job %s: its submission time is unknown (%s); any object under an output counts", job_ref.name, exc
        )
        submitted = None
    return inputs, written_outputs(executor, outputs, submitted)


def operator_lineage(inputs: Datasets, outputs: Datasets) -> Any:
    """An ``OperatorLineage`` for the OpenLineage provider (None when it is not installed)."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=d["namespace"], name=d["name"]) for d in inputs],
        outputs=[Dataset(namespace=d["namespace"], name=d["name"]) for d in outputs],
    )
