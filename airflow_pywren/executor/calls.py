"""How call data becomes a function's arguments, and the parameters the function side injects.

The argument rule, for ``call_async(func, data)`` and each item of ``map(func, iterdata)``:

* a non-empty ``dict`` whose keys are all parameter names of ``func``: keyword arguments,
  ``func(**item)``;
* a ``list`` or ``tuple``: positional arguments, ``func(*item)``. When the spread item
  cannot bind but ``func`` takes exactly one positional data parameter, the item is
  passed whole, ``func(item)`` (so ``[[1, 2], [3, 4]]`` reaches ``def f(pair)`` as pairs).
  A list meant as the one argument of a function with more parameters is wrapped:
  ``[[1, 2, 3]]`` calls ``func([1, 2, 3])``;
* anything else: the single positional argument, ``func(item)``.

``extra_args`` (``extra_params`` in PyWren 1.0) is added to every call: a tuple or list is
appended to the positional arguments, a dict is added as keyword arguments.

**Injected parameters** are parameters named in the registry below (``id``, ``storage``,
``ibm_cos``, ``rabbitmq``, ``internal_storage``, ...). A function that declares one gets it
from the function side; the caller never passes it, and data that tries to (a dict key
of that name) is refused at submit time. Registering one is a single
:class:`InjectedParameter` in the ``INJECTED_PARAMETERS`` list of a module named in
``PROVIDER_MODULES`` (or :func:`register_injected` at run time, e.g. in tests)::

    # airflow_pywren/executor/my_params.py
    INJECTED_PARAMETERS = [
        InjectedParameter("now", "the call's start time", provide=lambda context: time.time()),
    ]

``provide(context)`` runs on the function side with a :class:`CallContext`;
``settings(config, storage)`` (optional) runs on the client at submit time and its
JSON-able result travels in the payload (``context.settings``); ``release(value)``
(optional) runs after the call. Per-call values a provider needs (a data partition,
say) travel in :attr:`CallData.context`, set by whoever builds the call's data.

Binding is checked at submit time (:func:`bind_call`, :func:`stage_items`) and applied on
the function side (:func:`call_function`); one rule, one module.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pickle
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor import serialization
from airflow_pywren.executor.callstore import call_store_for
from airflow_pywren.executor.errors import FunctionExitError, PyWrenSubmitError
from airflow_pywren.executor.serialization import ResultRef
from airflow_pywren.executor.signing import Signer

if TYPE_CHECKING:
    from airflow_pywren.executor.storage.base import StorageBackend

PROVIDER_MODULES: tuple[str, ...] = ("airflow_pywren.executor.injected", "airflow_pywren.executor.data.injected")
"""Modules whose ``INJECTED_PARAMETERS`` list is registered on first use (client and function side)."""

RULE = (
    "A list or tuple is spread into positional arguments (wrap a list meant as one argument: [[1, 2, 3]]); "
    "a dict whose keys are all parameter names is passed as keyword arguments; "
    "anything else is the single positional argument."
)

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NAMED = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


# ------------------------------------------------------------------ injected parameters
@dataclass(frozen=True)
class CallContext:
    """What a provider of an injected parameter knows about the call it serves (function side)."""

    executor_id: str
    job_id: str
    call_id: str
    storage: StorageBackend
    payload: dict[str, Any]
    data: CallData
    settings: Any = None

    @property
    def index(self) -> int:
        """The call's index in its job (0 for call_async)."""
        return int(self.call_id)


@dataclass(frozen=True)
class InjectedParameter:
    """A parameter the function side fills in when a function declares it."""

    name: str
    description: str
    provide: Callable[[CallContext], Any]
    settings: Callable[[dict[str, Any], StorageBackend], Any] | None = None
    release: Callable[[Any], None] | None = None


_registry: dict[str, InjectedParameter] = {}
_registry_lock = threading.Lock()
_loaded_modules: set[str] = set()


def register_injected(parameter: InjectedParameter, replace: bool = False) -> None:
    """Add an injected parameter; ``replace`` allows redefining an existing name."""
    if not parameter.name.isidentifier():
        raise ValueError(f"injected parameter name {parameter.name!r} is not a Python identifier")
    _load_providers()
    with _registry_lock:
        if parameter.name in _registry and not replace and _registry[parameter.name] != parameter:
            raise ValueError(f"injected parameter {parameter.name!r} is already registered; pass replace=True")
        _registry[parameter.name] = parameter
    parameters_of.cache_clear()


def unregister_injected(name: str) -> None:
    """Remove an injected parameter (tests)."""
    with _registry_lock:
        _registry.pop(name, None)
    parameters_of.cache_clear()


def _load_providers() -> None:
    for module_name in PROVIDER_MODULES:
        if module_name in _loaded_modules:
            continue
        module = importlib.import_module(module_name)
        with _registry_lock:
            if module_name in _loaded_modules:
                continue
            for parameter in getattr(module, "INJECTED_PARAMETERS", ()):
                _registry.setdefault(parameter.name, parameter)
            _loaded_modules.add(module_name)


def injected_parameters() -> dict[str, InjectedParameter]:
    """Every registered injected parameter, by name."""
    _load_providers()
    return dict(_registry)


# ------------------------------------------------------------------------- signatures
@dataclass(frozen=True)
class FunctionParameters:
    """A function's parameters as the argument rule sees them."""

    name: str
    signature: inspect.Signature | None
    injected: tuple[str, ...] = ()
    data_signature: inspect.Signature | None = None
    positional: int = 0
    var_positional: bool = False
    keyword_names: frozenset[str] = frozenset()

    def describe(self) -> str:
        return f"{self.name}{self.signature}" if self.signature is not None else self.name

    def binds(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> TypeError | None:
        """None when ``args``/``kwargs`` fit the data parameters, else the binding error."""
        if self.data_signature is None:
            return None
        try:
            self.data_signature.bind(*args, **kwargs)
        except TypeError as exc:
            return exc
        return None


@lru_cache(maxsize=256)
def parameters_of(func: Callable) -> FunctionParameters:
    """The data parameters of ``func`` and the injected ones it declares (cached per function)."""
    name = getattr(func, "__name__", None) or type(func).__name__
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return FunctionParameters(name, None)
    registered = injected_parameters()
    # positional-only parameters (``len(obj, /)``) always take data: injection is by name
    injected = tuple(p.name for p in signature.parameters.values() if p.kind in _NAMED[1:] and p.name in registered)
    data = [p for p in signature.parameters.values() if p.name not in injected]
    return FunctionParameters(
        name=name,
        signature=signature,
        injected=injected,
        data_signature=signature.replace(parameters=data),
        positional=sum(p.kind in _POSITIONAL for p in data),
        var_positional=any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in data),
        keyword_names=frozenset(p.name for p in data if p.kind in _NAMED[1:]),
    )


def _parameters(func: Callable) -> FunctionParameters:
    try:
        return parameters_of(func)
    except TypeError:  # unhashable callable
        return parameters_of.__wrapped__(func)


# ------------------------------------------------------------------------------ binding
@dataclass(frozen=True)
class CallData:
    """One call's arguments as stored with its job.

    ``args``/``kwargs`` may hold :class:`ResultRef` values (an upstream call's output),
    replaced by their values on the function side. ``unbound`` is an item whose value is
    known only there (a ResultRef item): it is bound by the same rule once read.
    ``context`` carries per-call values for injected parameters.
    """

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    unbound: Any = None
    has_unbound: bool = False
    extra_args: Any = None
    context: dict[str, Any] | None = None


def check_extra_args(extra_args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``extra_args`` as (positional, keyword) parts; a tuple/list or a dict of parameter names."""
    if extra_args is None:
        return (), {}
    if isinstance(extra_args, (list, tuple)):
        return tuple(extra_args), {}
    if isinstance(extra_args, dict) and all(isinstance(k, str) for k in extra_args):
        return (), dict(extra_args)
    raise PyWrenSubmitError(
        f"extra_args must be a tuple or list (appended to each call's positional arguments) or a dict of "
        f"parameter names (added as keyword arguments), got {type(extra_args).__name__} {_short(extra_args)}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _contains_unbound(item: Any) -> bool:
    return isinstance(item, ResultRef)


def bind_call(func: Callable, item: Any, extra_args: Any = None, where: str = "data") -> CallData:
    """Apply the argument rule to one item; raise PyWrenSubmitError naming the item when it cannot fit ``func``."""
    params = _parameters(func)
    extra_pos, extra_kw = check_extra_args(extra_args)
    clash = sorted(set(extra_kw) & set(params.injected))
    if clash:
        raise PyWrenSubmitError(_injected_clash(params, clash, "extra_args"))
    if _contains_unbound(item):  # the value is read on the function side, then bound by this rule
        return CallData(unbound=item, has_unbound=True, extra_args=extra_args)
    args, kwargs = _arguments(params, item, extra_pos, extra_kw, where)
    return CallData(args=args, kwargs=kwargs)


def _injected_clash(params: FunctionParameters, names: Sequence[str], source: str) -> str:
    listed = ", ".join(repr(n) for n in names)
    return (
        f"{source} passes {listed} to {params.describe()}, but {listed} "
        f"{'is an injected parameter' if len(names) == 1 else 'are injected parameters'}: the function side fills "
        f"{'it' if len(names) == 1 else 'them'} in (injected: {', '.join(sorted(injected_parameters()))}); "
        "rename the function's parameter or drop the key from the data"
    )


def _arguments(
    params: FunctionParameters, item: Any, extra_pos: tuple[Any, ...], extra_kw: dict[str, Any], where: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(item, dict) and item and all(isinstance(k, str) for k in item):
        clash = sorted(k for k in item if k in params.injected)
        if clash and all(k in params.keyword_names or k in params.injected for k in item):
            raise PyWrenSubmitError(_injected_clash(params, clash, f"{where} ({_short(item)})"))
        if params.signature is not None and all(k in params.keyword_names for k in item):
            kwargs = {**item, **extra_kw}
            _require(params, extra_pos, kwargs, item, where, "as keyword arguments")
            return extra_pos, kwargs
    if isinstance(item, (list, tuple)):
        spread = (*item, *extra_pos)
        spread_error = params.binds(spread, extra_kw)
        if spread_error is None:
            return spread, dict(extra_kw)
        whole = (item, *extra_pos)
        if (
            params.positional == 1 + len(extra_pos)
            and not params.var_positional
            and params.binds(whole, extra_kw) is None
        ):
            return whole, dict(extra_kw)
        raise PyWrenSubmitError(
            f"{where} ({_short(item)}) does not fit {params.describe()}: spread into {len(spread)} positional "
            f"argument(s): {spread_error}. {RULE}"
        )
    args = (item, *extra_pos)
    _require(params, args, extra_kw, item, where, "as the single positional argument")
    return args, dict(extra_kw)


def _require(
    params: FunctionParameters, args: Sequence[Any], kwargs: Mapping[str, Any], item: Any, where: str, how: str
) -> None:
    error = params.binds(args, kwargs)
    if error is not None:
        raise PyWrenSubmitError(f"{where} ({_short(item)}) does not fit {params.describe()} {how}: {error}. {RULE}")


@dataclass(frozen=True)
class StagedData:
    """A job's data object: each call's signed pickle, concatenated, with each call's byte range.

    ``bare``: every range holds the pickle of the call's single positional argument (a plain
    scalar), not a :class:`CallData`; the function side wraps it (:func:`unstage`).
    """

    blob: bytes
    ends: list[int]
    """Where each call's pickle ends in ``blob`` (the next one starts there)."""
    bare: bool

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """Each call's byte range in ``blob``."""
        return list(zip([0, *self.ends[:-1]], self.ends))


def stage_items(
    func: Callable, items: Sequence[Any], what: str = "iterdata", extra_args: Any = None, signer: Signer | None = None
) -> StagedData:
    """Bind every item (raising at the first that does not fit) and pickle each call's data into one blob
    (each signed by ``signer``); a map over plain scalars that fit as the one argument stores them bare."""
    # a scalar item is the single positional argument: when any one argument fits, it needs no binding
    scalar_fits = extra_args is None and _parameters(func).binds((None,), {}) is None
    plain = serialization.PLAIN_SCALARS
    bare = scalar_fits and all(type(item) in plain for item in items)
    sign = signer.sign if signer is not None else bytes
    protocol = pickle.HIGHEST_PROTOCOL
    if bare:
        chunks = [sign(pickle.dumps(item, protocol)) for item in items]
    else:
        chunks = [
            sign(_call_pickle(func, index, item, what, extra_args, scalar_fits)) for index, item in enumerate(items)
        ]
    return StagedData(b"".join(chunks), list(itertools.accumulate(map(len, chunks))), bare)


def _call_pickle(func: Callable, index: int, item: Any, what: str, extra_args: Any, scalar_fits: bool) -> bytes:
    """The pickle of one call's :class:`CallData`."""
    protocol = pickle.HIGHEST_PROTOCOL
    if scalar_fits and type(item) in serialization.PLAIN_SCALARS:
        return pickle.dumps(CallData(args=(item,)), protocol)
    where = what if what == "data" else f"{what} item {index}"
    call_data = item if isinstance(item, CallData) else bind_call(func, item, extra_args, where)
    try:
        return pickle.dumps(call_data, protocol) if _plain_call(call_data) else serialization.dumps(call_data)
    except Exception as exc:
        raise PyWrenSubmitError(f"{where} ({_short(item)}) cannot be pickled: {type(exc).__name__}: {exc}") from exc


def unstage(value: Any, bare: bool) -> CallData:
    """A call's :class:`CallData` from what its byte range of the data object holds."""
    return CallData(args=(value,)) if bare else value


def _plain_call(call_data: CallData) -> bool:
    """True when the standard pickler stores ``call_data`` exactly as cloudpickle would (plain values only)."""
    return (
        not call_data.has_unbound
        and call_data.extra_args is None
        and call_data.context is None
        and all(serialization.is_plain(v) for v in call_data.args)
        and all(serialization.is_plain(v) for v in call_data.kwargs.values())
    )


def check_reducer(func: Callable) -> None:
    """Raise PyWrenSubmitError unless ``func`` takes the list of map results as its one data argument."""
    params = _parameters(func)
    error = params.binds(([],), {})
    if error is not None:
        raise PyWrenSubmitError(
            f"the reducer {params.describe()} must take the list of map results as its one positional argument "
            f"(besides injected parameters): {error}"
        )


def injected_names(func: Callable) -> list[str]:
    """The injected parameters (``storage``, ``ibm_cos``, ``id``...) that ``func`` declares."""
    return list(_parameters(func).injected)


def injected_settings(func: Callable, config: dict[str, Any], storage: StorageBackend) -> dict[str, Any]:
    """What the injected parameters ``func`` declares need from the client (travels in the payload)."""
    return injected_settings_named(injected_names(func), config, storage)


def injected_settings_named(names: Sequence[str], config: dict[str, Any], storage: StorageBackend) -> dict[str, Any]:
    """:func:`injected_settings` of a function known by the names of its injected parameters."""
    registered = injected_parameters()
    settings: dict[str, Any] = {}
    for name in names:
        parameter = registered[name]
        settings[name] = parameter.settings(config, storage) if parameter.settings else None
    return settings


# -------------------------------------------------------------------- function side
def _resolve(value: Any, context: CallContext) -> Any:
    if isinstance(value, ResultRef):
        signer = Signer.from_payload(context.payload["signing"])
        return serialization.loads_signed(
            call_store_for(context.storage).read_output_key(value.key),
            signer,
            what=f"the upstream result {value.key!r}",
        )
    return value


def place_injected(
    params: FunctionParameters, args: tuple[Any, ...], kwargs: dict[str, Any], values: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Merge injected values into the call: positionally where data fills a later positional slot, else by name."""
    if not values:
        return args, kwargs
    values = dict(values)
    remaining = list(args)
    placed: list[Any] = []
    assert params.signature is not None
    for parameter in params.signature.parameters.values():
        if parameter.kind not in _POSITIONAL or not remaining:
            break
        placed.append(values.pop(parameter.name) if parameter.name in values else remaining.pop(0))
    return (*placed, *remaining), {**kwargs, **values}


def call_function(func: Callable, data: CallData, context: CallContext) -> Any:
    """Run ``func`` with the call's data and the injected parameters it declares; release them after.

    ``sys.exit()`` (or KeyboardInterrupt) inside the function fails the call with
    :class:`FunctionExitError` instead of ending the worker.
    """
    params = _parameters(func)
    if data.has_unbound:
        value = _resolve(data.unbound, context)
        extra_pos, extra_kw = check_extra_args(data.extra_args)
        args, kwargs = _arguments(params, value, extra_pos, extra_kw, f"the upstream result {data.unbound.key!r}")
    else:
        args = tuple(_resolve(a, context) for a in data.args)
        kwargs = {k: _resolve(v, context) for k, v in data.kwargs.items()}
    registered = injected_parameters()
    provided: dict[str, Any] = {}
    try:
        settings = context.payload.get("injected") or {}
        for name in params.injected:
            scoped = CallContext(
                context.executor_id,
                context.job_id,
                context.call_id,
                context.storage,
                context.payload,
                data,
                settings.get(name),
            )
            provided[name] = registered[name].provide(scoped)
        args, kwargs = place_injected(params, args, kwargs, provided)
        with _exits_as_errors(context):
            return func(*args, **kwargs)
    finally:
        for name, value in provided.items():
            release = registered[name].release
            if release is not None:
                try:
                    release(value)
                except Exception:  # noqa: BLE001 - releasing never fails the call
                    pass


@contextmanager
def _exits_as_errors(context: CallContext) -> Iterator[None]:
    try:
        yield
    except SystemExit as exc:
        raise FunctionExitError(
            f"call {context.call_id} of job {context.job_id} called sys.exit({exc.code!r}); a function must "
            "return a value or raise an exception, never exit the process"
        ) from None
    except KeyboardInterrupt:
        raise FunctionExitError(
            f"call {context.call_id} of job {context.job_id} was interrupted (KeyboardInterrupt)"
        ) from None
