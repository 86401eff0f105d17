"""The injected parameters of maps over data: ``obj`` and ``data_stream``.

Registered with the other injected parameters (see :mod:`airflow_pywren.executor.calls`);
the call's :class:`DataPart` travels in its ``CallData.context`` under ``data_part``. Both
names share one :class:`DataChunk`, whose stream is opened (one ranged GET) on first read.
"""

from __future__ import annotations

from typing import Any

from airflow_pywren.executor.calls import CallContext, InjectedParameter
from airflow_pywren.executor.data.calls import DataChunk
from airflow_pywren.executor.errors import PyWrenError

PART, CHUNK = "data_part", "_data_chunk"


def chunk_of(context: CallContext) -> DataChunk:
    """The call's chunk, built once per call."""
    per_call = context.data.context
    if not per_call or PART not in per_call:
        raise PyWrenError(
            "'obj' and 'data_stream' are given only to calls over data; pass data that names objects "
            "('cos://bucket/prefix/', keys, URLs) to map(), map_reduce() or call_async()"
        )
    if CHUNK not in per_call:
        per_call[CHUNK] = DataChunk(per_call[PART], context.storage)
    return per_call[CHUNK]


def _close(value: Any) -> None:
    value.close()


INJECTED_PARAMETERS = [
    InjectedParameter(
        "obj",
        "the call's chunk of data: bucket, key, url, part, data_byte_range, chunk_size, data_stream",
        provide=chunk_of,
        release=lambda chunk: chunk.close(),
    ),
    InjectedParameter(
        "data_stream",
        "the call's chunk as a binary stream of whole lines",
        provide=lambda context: chunk_of(context).data_stream,
        release=_close,
    ),
]
