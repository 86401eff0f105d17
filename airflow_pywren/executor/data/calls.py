"""What a call of a map over data receives: ``obj`` and the legacy ``bucket``/``key``/``url``/``data_stream``.

The map function declares the parameters it wants:

* ``obj``: a :class:`DataChunk` with ``bucket``, ``key``, ``url``, ``part``, ``parts``,
  ``data_byte_range``, ``chunk_size``, ``size``, ``etag`` and ``data_stream``;
* ``data_stream``: the chunk's bytes as a binary stream (iterate for lines);
* ``bucket`` and ``key`` (``key`` is ``'bucket/key'``, as the original documents), or ``url``;
* any other injected parameter (``id``, ``storage``, ``ibm_cos``, ...);

plus keyword arguments given with the location (``{"obj": "cos://b/k", "top": 10}``) or
in ``extra_args``. ``obj`` and ``data_stream`` are injected parameters
(:mod:`.injected`); ``bucket``, ``key`` and ``url`` are known at planning and travel as
keyword arguments, so functions that merely have a parameter named ``key`` elsewhere are
not affected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from airflow_pywren.executor.data.locations import FILE, HTTP, STORAGE
from airflow_pywren.executor.data.partitioner import DataPart
from airflow_pywren.executor.data.reader import open_part
from airflow_pywren.executor.errors import PyWrenSubmitError
from airflow_pywren.executor.storage.base import StorageBackend

LEGACY_PARAMETERS = ("bucket", "key", "url")

DATA_PARAMETERS = ("obj", "bucket", "key", "url", "data_stream")
"""Parameter names through which a map over data hands each call its data."""
ACTIVATING_PARAMETERS = ("obj", "data_stream")
"""Declaring one of these makes ``map``/``map_reduce`` read ``iterdata`` as data locations."""


class DataChunk:
    """One call's share of an object (``obj``); ``data_stream`` is opened on first use."""

    def __init__(self, part: DataPart, storage: StorageBackend) -> None:
        obj = part.obj
        self.kind = obj.kind
        self.bucket: str | None = obj.bucket or None
        self.key: str | None = obj.key if obj.kind in (STORAGE, FILE) else None
        self.url: str | None = obj.url or None
        self.part = part.part
        self.parts = part.parts
        self.data_byte_range = part.byte_range
        self.chunk_size = part.chunk_size
        self.size = obj.size
        self.etag = obj.etag
        self._part = part
        self._storage = storage
        self._stream: Any = None

    @property
    def path(self) -> str:
        """``bucket/key`` for storage objects, the URL otherwise."""
        return self._part.obj.name

    @property
    def data_stream(self) -> Any:
        """The chunk's bytes, aligned to lines (a buffered binary stream)."""
        if self._stream is None:
            self._stream = open_part(self._part, self._storage)
        return self._stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def __repr__(self) -> str:
        return (
            f"DataChunk({self.path!r}, part {self.part + 1}/{self.parts}, bytes {self.data_byte_range[0]}-"
            f"{self.data_byte_range[1]} of {self.size})"
        )


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def parameters(func: Callable) -> dict[str, inspect.Parameter] | None:
    """The parameters of ``func`` that can be passed by name (None when it has no signature)."""
    try:
        return {
            n: p for n, p in inspect.signature(func).parameters.items() if p.kind in _NAMED or p.kind == p.VAR_KEYWORD
        }
    except (TypeError, ValueError):
        return None


def wants_data(func: Callable) -> bool:
    """True when ``func`` declares ``obj`` or ``data_stream``: its iterdata names data."""
    params = parameters(func)
    return params is not None and any(name in params and params[name].kind in _NAMED for name in ACTIVATING_PARAMETERS)


def check_data_function(func: Callable, extra_names: set[str]) -> None:
    """Raise PyWrenSubmitError unless ``func`` can be called with data parameters and ``extra_names``."""
    params = parameters(func)
    name = getattr(func, "__name__", "the function")
    if params is None:
        return
    if not any(p in params for p in DATA_PARAMETERS):
        raise PyWrenSubmitError(
            f"{name}{inspect.signature(func)} maps over data but declares none of "
            f"{', '.join(DATA_PARAMETERS)}; add a parameter 'obj' (or 'data_stream') to receive each chunk"
        )
    from airflow_pywren.executor.calls import injected_parameters

    provided = set(DATA_PARAMETERS) | set(injected_parameters()) | extra_names
    takes_kwargs = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(n for n in extra_names if n not in params and not takes_kwargs)
    if unknown:
        raise PyWrenSubmitError(f"{name}{inspect.signature(func)} has no parameter {unknown[0]!r} given with the data")
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and n not in provided
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    if missing:
        raise PyWrenSubmitError(
            f"{name}{inspect.signature(func)}: parameter {missing[0]!r} gets no value in a map over data; "
            f"give it a default, or pass items like {{'obj': 'cos://bucket/key', {missing[0]!r}: ...}}"
        )


def legacy_arguments(part: DataPart, params: dict[str, inspect.Parameter]) -> dict[str, Any]:
    """``bucket``, ``key`` (``'bucket/key'``) and ``url`` for the function that declares them."""
    obj = part.obj
    values = {
        "bucket": obj.bucket or None,
        "key": f"{obj.bucket}/{obj.key}" if obj.kind == STORAGE else (obj.key or obj.url),
        "url": obj.url if obj.kind in (HTTP, FILE) else None,
    }
    return {name: value for name, value in values.items() if name in params}
