"""Serialization of functions (with the local modules they need) and of call data.

Functions are pickled with cloudpickle. Modules the runtime cannot import by name
(``__main__``, DAG files that Airflow imports under mangled names) are pickled by value;
local modules a function uses (code on ``sys.path`` that is not an installed package)
are shipped as source with the function, except those named in ``exclude_modules``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import io
import os
import pickle
import shutil
import site
import sys
import sysconfig
import types
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from airflow_pywren.executor.errors import PyWrenSubmitError
from airflow_pywren.executor.signing import Signer

if TYPE_CHECKING:
    from airflow_pywren.executor.storage.base import StorageBackend

# Packages every runtime has: never shipped.
RUNTIME_PACKAGES = frozenset({"airflow_pywren", "cloudpickle", "__main__", "builtins"})


@dataclass(frozen=True)
class ResultRef:
    """A pointer to a stored call output; the function side replaces it by the value."""

    key: str


def dumps(obj: Any) -> bytes:
    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def dumps_data(obj: Any) -> bytes:
    """Like :func:`dumps`; plain data (numbers, strings, flat lists and dicts of them) takes the
    standard pickler, which stores such values exactly as cloudpickle would, several times faster."""
    if is_plain(obj):
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return dumps(obj)


def _code_reduce_keeping_filename(code: types.CodeType) -> Any:
    """cloudpickle's code reducer, but keeping ``co_filename`` so remote tracebacks name the file."""
    rebuild, args = cloudpickle.cloudpickle._code_reduce(code)
    return rebuild, tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)


class _FunctionPickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table)


def _dumps_function(func: Callable) -> bytes:
    with io.BytesIO() as buffer:
        _FunctionPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(func)
        return buffer.getvalue()


def loads(data: bytes) -> Any:
    """Unpickle bytes that never left this process (or were verified by :func:`loads_signed`)."""
    return pickle.loads(data)


def dumps_signed(obj: Any, signer: Signer) -> bytes:
    """Pickle ``obj`` and sign it: the form of every pickle written to storage."""
    return signer.sign(dumps_data(obj))


def loads_signed(blob: bytes, signer: Signer, what: str) -> Any:
    """Unpickle a signed ``blob`` read from storage, after verifying its signature (SignatureError if it fails)."""
    return pickle.loads(signer.verify(blob, what))


def read_signed(
    storage: StorageBackend,
    key: str,
    signer: Signer,
    byte_range: tuple[int, int] | None = None,
    what: str | None = None,
) -> Any:
    """Read, verify and unpickle the object at ``key``: the one way pickles come back from storage."""
    return loads_signed(storage.get(key, byte_range), signer, what or f"the object at {key!r}")


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    paths.update({sys.base_prefix, sys.base_exec_prefix} if sys.prefix != sys.base_prefix else set())
    paths.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else "")
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def _is_local(module: types.ModuleType) -> bool:
    """True for user code: a module with a source file outside the interpreter and site-packages."""
    name = module.__name__
    if name.split(".")[0] in RUNTIME_PACKAGES or name in sys.builtin_module_names:
        return False
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return False
    return not os.path.realpath(file).startswith(_installed_roots())


def _importable_by_name(module: types.ModuleType) -> bool:
    """False for modules whose name does not lead back to their file (DAG files, ``__main__``)."""
    if module.__name__ == "__main__":
        return False
    parent_name, _, _ = module.__name__.rpartition(".")
    search_path = getattr(sys.modules.get(parent_name), "__path__", None) if parent_name else None
    if parent_name and search_path is None:
        return False
    try:  # search the path, not sys.modules: a module imported under a made-up name is found there too
        spec = importlib.machinery.PathFinder.find_spec(module.__name__, search_path)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None)
    file = getattr(module, "__file__", None)
    return bool(origin and file and os.path.realpath(origin) == os.path.realpath(file))


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _referenced_modules(root: Any) -> set[types.ModuleType]:
    """Modules reachable from ``root`` through globals, closures, defaults and attributes of local modules."""
    found: set[types.ModuleType] = set()
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if obj not in found:
                found.add(obj)
                if _is_local(obj):
                    pending.extend(vars(obj).values())
            continue
        if isinstance(obj, partial):
            pending.extend([obj.func, *obj.args, *obj.keywords.values()])
            continue
        if isinstance(obj, types.MethodType):
            pending.append(obj.__func__)
            continue
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        if module is not None and (isinstance(obj, (types.FunctionType, type))):
            pending.append(module)
        if isinstance(obj, types.FunctionType):
            names = set(_code_names(obj.__code__))
            pending.extend(value for name, value in obj.__globals__.items() if name in names)
            pending.extend(cell.cell_contents for cell in (obj.__closure__ or ()) if _cell_filled(cell))
            pending.extend(obj.__defaults__ or ())
        elif isinstance(obj, type) and module is not None and _is_local(module):
            pending.extend(
                v for v in vars(obj).values() if isinstance(v, (types.FunctionType, classmethod, staticmethod))
            )
        elif isinstance(obj, (classmethod, staticmethod)):
            pending.append(obj.__func__)
    return found


def _cell_filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _excluded(name: str, exclude: Iterable[str]) -> bool:
    return any(name == ex or name.startswith(ex + ".") for ex in exclude)


def _module_sources(module: types.ModuleType) -> dict[str, bytes]:
    """The source files of ``module``'s top-level package (or of the module itself), by relative path."""
    top_name = module.__name__.split(".")[0]
    top = sys.modules.get(top_name, module)
    top_file = getattr(top, "__file__", None)
    if hasattr(top, "__path__") and top_file:
        package_dir = Path(top_file).parent
        return {
            str(Path(top_name) / path.relative_to(package_dir)): path.read_bytes()
            for path in package_dir.rglob("*.py")
            if "__pycache__" not in path.parts
        }
    file = Path(str(module.__file__))  # a local module has a source file (_is_local)
    return {file.name: file.read_bytes()}


@contextmanager
def _by_value(modules: Iterable[types.ModuleType]) -> Iterator[None]:
    registered = []
    for module in modules:
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except ValueError:
            continue
    try:
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def serialize_function(
    func: Callable, exclude_modules: Sequence[str] | None = None, include_modules: Sequence[str] | None = ()
) -> bytes:
    """Pickle ``func`` with the local modules it needs; raise PyWrenSubmitError if it cannot be pickled.

    ``include_modules``: empty (default) ships every local module found, except ``exclude_modules``;
    a list ships only those modules (and ignores ``exclude_modules``); None ships none.
    """
    if not callable(func):
        raise PyWrenSubmitError(f"the function to run must be callable, got {type(func).__name__} {func!r:.80}")
    exclude = list(exclude_modules or ())
    local = [m for m in _referenced_modules(func) if _is_local(m) and not _excluded(m.__name__, exclude)]
    by_value = [m for m in local if not _importable_by_name(m)]
    if include_modules:
        local = [m for m in _referenced_modules(func) if _is_local(m) and _excluded(m.__name__, include_modules)]
    shipped: dict[str, bytes] = {}
    for module in local:
        if module not in by_value and include_modules is not None:
            shipped.update(_module_sources(module))
    try:
        with _by_value(by_value):
            func_bytes = _dumps_function(func)
    except Exception as exc:  # cloudpickle raises many types
        raise PyWrenSubmitError(
            f"function {getattr(func, '__qualname__', func)!r} cannot be pickled: {type(exc).__name__}: {exc}; "
            "move unpicklable objects (locks, connections, open files) inside the function"
        ) from exc
    return dumps({"function": func_bytes, "modules": shipped})


def install_modules(data: bytes, modules_root: str | os.PathLike[str]) -> tuple[dict[str, Any], str | None]:
    """Unpack a serialized function package and write its shipped modules under ``modules_root``.

    Returns the package and the directory holding its modules (None when none were shipped).
    Each distinct set of modules gets its own directory, named by a hash of its content.
    """
    package = loads(data)
    modules: dict[str, bytes] = package["modules"]
    if not modules:
        return package, None
    digest = hashlib.sha1(b"".join(k.encode() + v for k, v in sorted(modules.items()))).hexdigest()[:16]
    target = Path(modules_root) / digest
    if not target.exists():
        staging = target.with_name(f"{digest}.tmp-{os.getpid()}")
        for relative, source in modules.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source)
        try:
            os.replace(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process installed the same modules first
    return package, str(target)


def activate_modules(modules_dir: str | None, modules_root: str | os.PathLike[str]) -> None:
    """Make ``modules_dir`` the only shipped-modules directory on ``sys.path``.

    Warm workers run many jobs: modules shipped with one job must not be importable by the
    next (``exclude_modules`` would silently stop working), so other jobs' directories
    are taken off ``sys.path`` and their modules out of ``sys.modules``.
    """
    root = os.path.join(os.path.abspath(modules_root), "")
    stale = [p for p in sys.path if p.startswith(root) and p != modules_dir]
    if stale:
        sys.path[:] = [p for p in sys.path if p not in stale]
        stale_prefixes = tuple(os.path.join(p, "") for p in stale)
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(stale_prefixes):
                del sys.modules[name]
    if modules_dir is not None and modules_dir not in sys.path:
        sys.path.insert(0, modules_dir)
        importlib.invalidate_caches()


def load_function(data: bytes, modules_root: str | os.PathLike[str]) -> tuple[Callable, str | None]:
    """Unpack a function serialized by :func:`serialize_function`; return it and its modules directory."""
    package, modules_dir = install_modules(data, modules_root)
    activate_modules(modules_dir, modules_root)
    return loads(package["function"]), modules_dir


PLAIN_SCALARS = (int, float, str, bytes, bool, type(None))


def is_plain(item: Any) -> bool:
    """True for data that plain pickle stores exactly as cloudpickle would (no functions, classes, modules)."""
    kind = type(item)
    if kind in PLAIN_SCALARS:
        return True
    if kind in (list, tuple):
        return len(item) <= 64 and all(type(v) in PLAIN_SCALARS for v in item)
    if kind is dict:
        return len(item) <= 64 and all(type(k) in PLAIN_SCALARS and type(v) in PLAIN_SCALARS for k, v in item.items())
    return False
