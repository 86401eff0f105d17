"""Turn operator inputs into call data: upstream job references become ResultRefs.

A job reference (the XCom of an upstream PyWren task) never brings its values through
Airflow: each reference is replaced by :class:`ResultRef` items that the function side
replaces by the stored values.

* ``iterdata`` = a job reference: one call per upstream result (``result_refs``).
* ``iterdata`` = a list: items that are references to single-result jobs (call_async,
  map_reduce) become that result; dict items have such references resolved in their values.
* ``data`` (call_async) = a reference to a single-result job: the call gets that value.
  A reference to a job with several results (a map) is refused: map over it instead,
  or reduce it with map_reduce first.
* ``data`` = a dict whose keys are the function's parameters, or a list of positional
  parameters: single-result references among its values are resolved inside the call.

Items then follow the executor's argument rule (:mod:`airflow_pywren.executor.calls`): a
list item from XCom is spread into positional arguments exactly as in ``executor.map``.

Rendered templates arrive as strings; a string that holds a Python or JSON literal of a
list or of a job reference is parsed.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from airflow_pywren.executor.errors import PyWrenSubmitError
from airflow_pywren.executor.jobref import JobRef, JobRefError
from airflow_pywren.executor.jobs import result_refs
from airflow_pywren.executor.serialization import ResultRef


def _literal(text: str) -> Any:
    """A list, dict or job reference a template rendered to text (JSON or a Python literal); else the text."""
    stripped = text.strip()
    if stripped[:1] not in ("[", "{", "("):
        return text
    if stripped[:1] == "{":
        try:
            return JobRef.parse(stripped)
        except JobRefError:
            pass
    for parse in (ast.literal_eval, json.loads):
        try:
            return parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _single(ref: JobRef, what: str) -> ResultRef:
    if ref.results_total != 1:
        raise PyWrenSubmitError(
            f"{what} is the reference of {ref.kind} job {ref.name} with {ref.results_total} results, "
            "but one value is expected here; pass the reference as iterdata of a map (one call per result), "
            "or combine the results with map_reduce first"
        )
    return ResultRef(ref.result_key(0))


def _resolve_item(item: Any, what: str) -> Any:
    if JobRef.is_ref(item):
        return _single(JobRef.parse(item, what), what)
    if isinstance(item, dict):
        return {k: _single(JobRef.parse(v, what), f"{what}[{k!r}]") if JobRef.is_ref(v) else v for k, v in item.items()}
    if isinstance(item, (list, tuple)):  # positional parameters: references among them are resolved too
        return type(item)(
            _single(JobRef.parse(v, what), f"{what}[{i}]") if JobRef.is_ref(v) else v for i, v in enumerate(item)
        )
    return item


def resolve_data(data: Any) -> Any:
    """The ``data`` of a call_async, with upstream references resolved."""
    if isinstance(data, str):
        parsed = _literal(data)
        if JobRef.is_ref(parsed):
            data = parsed
    return _resolve_item(data, "data")


def resolve_iterdata(iterdata: Any) -> Any:
    """The ``iterdata`` of a map or map_reduce, with upstream references resolved."""
    if isinstance(iterdata, str):
        iterdata = _literal(iterdata)
    if JobRef.is_ref(iterdata):
        return result_refs(iterdata)
    if isinstance(iterdata, (list, tuple)):
        return [_resolve_item(item, f"iterdata item {index}") for index, item in enumerate(iterdata)]
    return iterdata  # the executor rejects what is not a list, naming the type
