"""``@task.pywren``: run the decorated function as PyWren calls.

Three forms, chosen by the decorator's arguments:

``@task.pywren``
    call_async: calling the task runs the function once as a PyWren call, with the
    arguments it was called with (``add(1, y=2)``; XComArgs and job references of
    single-result PyWren tasks are resolved, the latter inside the call).

``@task.pywren(map=True)``
    map: the task takes one argument, ``iterdata`` (a list, an XComArg, or the job
    reference of an upstream PyWren task); the function runs once per item.

``@task.pywren(reduce_function=combine)``
    map_reduce: like ``map=True``, then ``combine(list_of_map_results)`` runs as the reducer.

Either way the return values stay in storage and XCom gets the job reference; downstream
use ``PyWrenHook().get_results(reference)`` or pass the reference to another PyWren task.
The operator keywords (``pywren_conn_id``, ``deferrable``, ``extra_env``, ``runtime_memory``,
...) go in the decorator's arguments. Functions defined in the DAG file are shipped by value.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import wraps
from typing import Any

from airflow_pywren.compat import Context, DecoratedOperator, TaskDecorator, task_decorator_factory
from airflow_pywren.executor.calls import parameters_of
from airflow_pywren.executor.errors import PyWrenSubmitError
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.future import ResponseFuture
from airflow_pywren.operators.inputs import resolve_data, resolve_iterdata
from airflow_pywren.operators.pywren import CALL_ASYNC, MAP, MAP_REDUCE, BasePyWrenOperator, _chunking, _memory

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _takes_iterdata(iterdata: Any) -> None:
    """The call signature of a map task: its one argument is the iterdata."""


def _without_injected(func: Callable) -> Callable:
    """``func`` as Airflow should see it: without the parameters the function side injects (``id``, ...)."""
    params = parameters_of(func)
    if not params.injected:
        return func

    @wraps(func)
    def data_parameters_only(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    data_parameters_only.__signature__ = params.data_signature  # type: ignore[attr-defined]
    return data_parameters_only


class PyWrenDecoratedOperator(DecoratedOperator, BasePyWrenOperator):
    """The operator behind ``@task.pywren``.

    :param python_callable: the decorated function.
    :param map: run the function once per item of the task's argument (``iterdata``).
    :param reduce_function: map, then reduce the map results with this function.
    :param reducer_wait_local: wait for the maps in the task, then invoke the reducer.
    :param chunk_size: over data (the function declares ``obj`` or ``data_stream``): bytes per call.
    :param chunk_n: over data: calls per object.
    :param reducer_one_per_object: over data: one reducer per object.
    :param runtime_memory: memory per call (map calls for map_reduce) in MB.
    :param reduce_runtime_memory: memory of the reducer in MB.
    """

    custom_operator_name = "@task.pywren"
    template_fields: Sequence[str] = ("op_args", "op_kwargs", *BasePyWrenOperator.template_fields)
    template_fields_renderers = {**BasePyWrenOperator.template_fields_renderers, "op_args": "py", "op_kwargs": "py"}

    def __init__(
        self,
        *,
        python_callable: Callable,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        map: bool = False,
        reduce_function: Callable | None = None,
        reducer_wait_local: bool = False,
        chunk_size: int | None = None,
        chunk_n: int | None = None,
        reducer_one_per_object: bool = False,
        runtime_memory: int | None = None,
        reduce_runtime_memory: int | None = None,
        multiple_outputs: bool = False,
        **kwargs: Any,
    ) -> None:
        if multiple_outputs:
            raise ValueError("@task.pywren pushes one job reference to XCom; multiple_outputs=True is not supported")
        if reduce_function is not None and not callable(reduce_function):
            raise TypeError(f"reduce_function must be callable, got {type(reduce_function).__name__}")
        kind = MAP_REDUCE if reduce_function is not None else MAP if map else CALL_ASYNC
        # A map task is called with its iterdata, not with the function's own arguments.
        signature_source = _without_injected(python_callable) if kind == CALL_ASYNC else _takes_iterdata
        super().__init__(python_callable=signature_source, op_args=op_args, op_kwargs=op_kwargs, **kwargs)
        self.python_callable = python_callable
        self.kind = kind
        self.reduce_function = reduce_function
        self.reducer_wait_local = reducer_wait_local
        self.chunk_size = chunk_size
        self.chunk_n = chunk_n
        self.reducer_one_per_object = reducer_one_per_object
        self.runtime_memory = runtime_memory
        self.reduce_runtime_memory = reduce_runtime_memory

    def submit(self, executor: FunctionExecutor, context: Context) -> list[ResponseFuture]:
        options = self._call_options(executor)
        memory = _memory(self.runtime_memory, executor)
        if self.kind == CALL_ASYNC:
            func, data = self._call_arguments()
            return [executor.call_async(func, resolve_data(data), runtime_memory=memory, **options)]
        iterdata = resolve_iterdata(
            self.op_kwargs["iterdata"] if "iterdata" in self.op_kwargs else list(self.op_args)[0]
        )
        if self.kind == MAP:
            return executor.map(
                self.python_callable,
                iterdata,
                runtime_memory=memory,
                **options,
                **_chunking(self.chunk_size, self.chunk_n),
            )
        assert self.reduce_function is not None  # the kind is map_reduce only with a reduce_function
        return executor.map_reduce(
            self.python_callable,
            iterdata,
            self.reduce_function,
            reducer_wait_local=self.reducer_wait_local,
            **_chunking(self.chunk_size, self.chunk_n, self.reducer_one_per_object),
            map_runtime_memory=memory,
            reduce_runtime_memory=_memory(self.reduce_runtime_memory, executor),
            **options,
        )

    def _call_arguments(self) -> tuple[Callable, Any]:
        """The function and the call's data: the bound arguments as keyword arguments."""
        func = self.python_callable
        signature = inspect.signature(_without_injected(func))
        unsupported = [p.name for p in signature.parameters.values() if p.kind not in _NAMED]
        if unsupported:
            raise PyWrenSubmitError(
                f"@task.pywren function {func.__name__}{signature}: parameter {unsupported[0]!r} is not supported; "
                "use named parameters (no positional-only, *args or **kwargs)"
            )
        try:
            bound = signature.bind(*self.op_args, **self.op_kwargs)
        except TypeError as exc:
            raise PyWrenSubmitError(f"@task.pywren function {func.__name__}{signature}: {exc}") from None
        if not bound.arguments:
            return func, []  # no arguments: an empty list spreads into none
        return func, dict(bound.arguments)


def pywren_task(
    python_callable: Callable | None = None, multiple_outputs: bool | None = None, **kwargs: Any
) -> TaskDecorator:
    """Run the decorated function as PyWren calls (``@task.pywren``); see the module docs for the forms.

    :param python_callable: the function (when used without parentheses).
    :param multiple_outputs: not supported (the task pushes one job reference).
    """
    if multiple_outputs:
        raise ValueError("@task.pywren pushes one job reference to XCom; multiple_outputs=True is not supported")
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=PyWrenDecoratedOperator,
        **kwargs,
    )
