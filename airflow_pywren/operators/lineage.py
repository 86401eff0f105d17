"""OpenLineage for PyWren tasks: the data a map read, and the declared outputs its functions wrote.

Inputs come from the job reference (``inputs.datasets``, recorded when a map over data
was planned); an output location given in ``outputs=`` is reported when, after the job,
at least one object exists under it (one LIST). Dataset names follow OpenLineage's
conventions: ``s3://bucket`` + key for COS, ``file`` + path for the embedded storage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow_pywren.executor.data.locations import FILE, HTTP, location_text, parse_location
from airflow_pywren.executor.data.plan import dataset_name
from airflow_pywren.executor.errors import PyWrenError
from airflow_pywren.executor.executor import FunctionExecutor

logger = logging.getLogger(__name__)

Datasets = list[dict[str, str]]


def _as_list(outputs: Sequence[Any] | str | None) -> list[Any]:
    if outputs is None:
        return []
    if location_text(outputs) is not None:
        return [outputs]
    return list(outputs)


def written_outputs(executor: FunctionExecutor, outputs: Sequence[Any] | str | None) -> Datasets:
    """The declared output locations that hold at least one object now."""
    written: Datasets = []
    for value in _as_list(outputs):
        try:
            location = parse_location(value)
            if location.kind == HTTP:
                continue
            if location.kind == FILE:
                import os

                exists = os.path.exists(location.key)
            else:
                exists = next(iter(executor.storage.list_objects(location.bucket, location.key)), None) is not None
        except (PyWrenError, OSError) as exc:
            logger.warning("output %r is not reported to lineage: %s", value, exc)
            continue
        if exists:
            written.append(dataset_name(location, executor.storage))
    return written


def job_lineage(executor: FunctionExecutor, ref: Any, outputs: Sequence[Any] | str | None) -> tuple[Datasets, Datasets]:
    """(inputs, outputs) of a finished job (its JobRef or XCom dict) as dataset names."""
    from airflow_pywren.executor.jobref import JobRef

    inputs = list((JobRef.parse(ref).inputs or {}).get("datasets") or [])
    return inputs, written_outputs(executor, outputs)


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
