"""Calls that return futures (composition): their values are the inner calls' values.

A function may create an executor inside its call and return the futures it got
(``return pw.map(f, items)``). The futures travel back pickled without their executor;
the client attaches them to its own executor (same storage) and ``get_result`` returns
the inner values, recursively, as PyWren did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor.errors import PyWrenError
from airflow_pywren.executor.future import ResponseFuture

if TYPE_CHECKING:
    from airflow_pywren.executor.executor import FunctionExecutor


def returned_futures(value: Any) -> list[ResponseFuture] | None:
    """The futures a call returned: one future, or a non-empty list/tuple of futures; else None."""
    if isinstance(value, ResponseFuture):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, ResponseFuture) for item in value):
        return list(value)
    return None


def attach(executor: FunctionExecutor, futures: Sequence[ResponseFuture]) -> None:
    """Let ``executor`` follow futures that came back from a call; they must live in its storage."""
    for future in futures:
        if future.has_executor():
            continue
        location = future.storage_location
        if location is not None and not executor.storage.same_location(location):
            raise PyWrenError(
                f"a call returned futures of executor {future.executor_id} stored in {location}, but this "
                f"executor uses {executor.storage.location()}; read them with an executor configured for that storage"
            )
        future.attach_executor(executor)


def attach_returned(executor: FunctionExecutor, value: Any) -> None:
    """Attach the futures in a call's return value, if it returned any."""
    inner = returned_futures(value)
    if inner is not None:
        attach(executor, inner)


def resolve(executor: FunctionExecutor, value: Any, timeout: float | None, throw_except: bool) -> Any:
    """A call's value with returned futures replaced by their results (recursively, through ``get_result``)."""
    inner = returned_futures(value)
    if inner is None:
        return value
    attach(executor, inner)
    results = executor.get_result(
        inner if isinstance(value, (list, tuple)) else inner[0], timeout=timeout, throw_except=throw_except
    )
    if (
        isinstance(value, (list, tuple))
        and not isinstance(results, list)
        and not any(f.kind == "reduce" for f in inner)
    ):
        return [results]  # a list of one call_async future stays a list; map_reduce futures give the reducer's value
    return results
