"""The function-side handler: ``main(args)``, run by every compute backend.

OpenWhisk calls ``main`` with the activation payload; the localhost runner calls it in
its worker processes. It reads the function and this call's data range from storage,
writes its start status, runs the function, then writes the output and the final status.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from airflow_pywren.executor import call_context, calls, serialization, versions
from airflow_pywren.executor.call_env import call_environment
from airflow_pywren.executor.callstore import call_store_for
from airflow_pywren.executor.errors import (
    ActivationMemoryError,
    ActivationTimeoutError,
    PyWrenError,
    UnpicklableResultError,
)
from airflow_pywren.executor.jobref import CallStatus
from airflow_pywren.executor.private_dirs import user_temp_dir
from airflow_pywren.executor.signing import Signer
from airflow_pywren.executor.storage import StorageBackend, storage_from_spec
from airflow_pywren.executor.worker.notify import notifier_for
from airflow_pywren.executor.worker.retrying import DEFAULT_WRITE_RETRY_SECONDS, write_retrying

logger = logging.getLogger(__name__)

_modules_root: list[str] = []


def modules_root() -> str:
    """Where shipped modules are extracted: a private (0700) per-user directory, never a shared one."""
    if not _modules_root:
        _modules_root.append(str(user_temp_dir("modules")))
    return _modules_root[0]


_storages: dict[str, StorageBackend] = {}
_functions: OrderedDict[tuple[str, ...], tuple[Callable, str | None]] = OrderedDict()
_FUNCTION_CACHE_SIZE = 8


def main(args: dict[str, Any]) -> dict[str, Any]:
    """OpenWhisk entry point: run the call described by ``args``; return a small summary."""
    if "invoke_batch" in args:
        from airflow_pywren.executor.worker.remote_invoker import invoke_batch

        return invoke_batch(args)
    return run_call(args)


_last_spec: tuple[dict[str, Any], StorageBackend] | None = None


def storage_for(spec: dict[str, Any]) -> StorageBackend:
    """The storage of an activation, reused across warm calls."""
    global _last_spec
    if _last_spec is not None and _last_spec[0] is spec and _storages:
        return _last_spec[1]  # the same job's next call
    cache_key = json.dumps(spec, sort_keys=True)
    storage = _storages.get(cache_key)
    if storage is None:
        storage = _storages[cache_key] = storage_from_spec(spec)
    _last_spec = (spec, storage)
    return storage


def _function_for(storage: StorageBackend, func_key: str, signer: Signer) -> Callable:
    """The job's function (cached for warm calls), with only its own shipped modules importable."""
    cache_key = (storage.location(), func_key, signer.key_id)
    cached = _functions.get(cache_key)
    if cached is None:
        package = signer.verify(storage.get(func_key), f"the function object {func_key!r}")
        cached = _functions[cache_key] = serialization.load_function(package, modules_root())
        while len(_functions) > _FUNCTION_CACHE_SIZE:
            _functions.popitem(last=False)
    else:
        serialization.activate_modules(cached[1], modules_root())
    return cached[0]


def _call_environment(extra_env: dict[str, str] | None) -> AbstractContextManager[None]:
    """The call's environment: the documented allow-list of the host's variables plus ``extra_env``."""
    return call_environment(extra_env)


@contextmanager
def _soft_timeout(seconds: float, describe: str) -> Iterator[None]:
    """Raise ActivationTimeoutError in the call after ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ActivationTimeoutError(f"{describe} exceeded its timeout of {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_for_map_results(
    storage: StorageBackend, prefix: str, executor_id: str, reduce: dict[str, Any], signer: Signer
) -> list[Any]:
    """Wait (polling storage) until every map call has a status; return their results in input order."""
    map_job = reduce["job_id"]
    call_ids: list[str] = reduce["call_ids"]
    interval = reduce.get("poll_interval", 0.05)
    store = call_store_for(storage)
    view = store.job(executor_id, map_job)
    finals: dict[str, dict[str, Any]] = {}
    while True:
        finals.update(view.poll().finished)
        if len(finals) >= len(call_ids) and all(call_id in finals for call_id in call_ids):
            break
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)
    for call_id in call_ids:
        status = finals[call_id]
        if status["status"] != CallStatus.SUCCESS:
            error = status.get("error") or {}
            raise PyWrenError(
                f"map call {call_id} of job {map_job} failed, so the reducer cannot run: "
                f"{error.get('type')}: {error.get('message')}\n{error.get('traceback', '')}"
            )
    return [
        serialization.loads_signed(blob, signer, what=f"the output of map call {call_id} of job {map_job}")
        for call_id, blob in zip(call_ids, store.read_outputs([(executor_id, map_job, c) for c in call_ids], threads=1))
    ]


def _describe_error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def run_call(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one call and record its start, output and final status in storage."""
    storage = storage_for(payload["storage"])
    prefix, executor_id, job_id, call_id = (
        payload["prefix"],
        payload["executor_id"],
        payload["job_id"],
        payload["call_id"],
    )
    notifier = notifier_for(payload.get("rabbitmq"))
    signer = Signer.from_payload(payload["signing"])
    activation_id = payload.get("activation_id") or os.environ.get("__OW_ACTIVATION_ID")
    base = {
        "executor_id": executor_id,
        "job_id": job_id,
        "call_id": call_id,
        "activation_id": activation_id,
        "host_submit_time": payload.get("host_submit_time"),
        "start_time": time.time(),
        "worker_host": socket.gethostname(),
        "worker_pid": os.getpid(),
    }
    start = {**base, "status": CallStatus.RUNNING.value}
    store = call_store_for(storage)
    write_retrying(
        storage,
        lambda: store.record_start(executor_id, job_id, call_id, start),
        _retry_seconds(payload),
        f"the start status of call {call_id} of job {job_id}",
    )
    notifier.publish(start)

    describe = f"call {call_id} of job {job_id}"
    error: dict[str, Any] | None = None
    output: bytes | None = None
    try:
        with (
            _call_environment(payload.get("extra_env")),
            call_context.running(payload, signer),
            _soft_timeout(payload.get("timeout", 0), describe),
        ):
            versions.check_client_versions(payload.get("versions"))
            func = _function_for(storage, payload["func_key"], signer)
            if payload.get("reduce"):
                data = calls.CallData(
                    args=(wait_for_map_results(storage, prefix, executor_id, payload["reduce"], signer),)
                )
            else:
                start_byte, end_byte = payload["data_byte_range"]
                stored = serialization.read_signed(
                    storage, payload["data_key"], signer, (start_byte, end_byte), what=f"the data of {describe}"
                )
                data = calls.unstage(stored, bool(payload.get("data_bare")))
            context = calls.CallContext(executor_id, job_id, call_id, storage, payload, data)
            value = calls.call_function(func, data, context)
        output = _pickle_result(value, signer, describe)
    except MemoryError as exc:
        memory = payload.get("runtime_memory")
        wrapped = ActivationMemoryError(f"{describe} ran out of memory (runtime_memory={memory} MB): {exc}")
        wrapped.__cause__ = exc
        error = _describe_error(wrapped)
        error["traceback"] = _describe_error(exc)["traceback"]
        output = _pickle_exception(wrapped, signer)
    except BaseException as exc:  # the function's own errors, including SystemExit
        error = _describe_error(exc)
        output = _pickle_exception(exc, signer)
    status = finish_call(storage, payload, base, error, output)
    notifier.publish(
        {**base, "status": status["status"], "end_time": status["end_time"], "duration": status["duration"]}
    )
    return {"executor_id": executor_id, "job_id": job_id, "call_id": call_id, "status": _final(error)}


def _pickle_result(value: Any, signer: Signer, describe: str) -> bytes:
    """The signed pickle of a call's return value; an error naming the call when it cannot be pickled."""
    try:
        return serialization.dumps_signed(value, signer)
    except Exception as exc:
        raise UnpicklableResultError(
            f"the return value of {describe} ({type(value).__name__}) cannot be pickled: {type(exc).__name__}: {exc}; "
            "return plain data (convert locks, connections, generators or open files before returning)"
        ) from exc


def _pickle_exception(exc: BaseException, signer: Signer | None) -> bytes | None:
    """The signed pickle of ``exc``; None when it cannot be pickled (or no key is known): the status describes it."""
    if signer is None:
        return None
    try:
        exc.__traceback__ = None
        data = serialization.dumps(exc)
        serialization.loads(data)
        return signer.sign(data)
    except Exception:
        return None


def finish_call(
    storage: StorageBackend,
    payload: dict[str, Any],
    base: dict[str, Any],
    error: dict[str, Any] | None,
    output: bytes | None,
    retry_seconds: float | None = None,
) -> dict[str, Any]:
    """Record the output (if any) and the final status, which become visible together (see :mod:`.callstore`).

    The write is retried for up to ``retry_seconds`` (default: the payload's ``write_retry_seconds``).
    """
    retry = _retry_seconds(payload) if retry_seconds is None else retry_seconds
    executor_id, job_id, call_id = payload["executor_id"], payload["job_id"], payload["call_id"]
    store = call_store_for(storage)
    output_key = store.output_key(executor_id, job_id, call_id)
    end_time = time.time()
    status = {
        **base,
        "status": _final(error),
        "end_time": end_time,
        "duration": end_time - base["start_time"],
        "output_key": output_key if output is not None else None,
        "extra_meta": payload.get("extra_meta") or {},
        "error": error,
    }
    write_retrying(
        storage,
        lambda: store.record_end(executor_id, job_id, call_id, status, output),
        retry,
        f"the final status of call {call_id} of job {job_id}",
    )
    return status


def _retry_seconds(payload: dict[str, Any]) -> float:
    return float(payload.get("write_retry_seconds", DEFAULT_WRITE_RETRY_SECONDS))


def record_failure(
    payload: dict[str, Any], exc: BaseException, start_time: float | None = None, **fields: Any
) -> dict[str, Any]:
    """Record a call that could not run or did not finish (killed, invocation refused) as failed."""
    storage = storage_for(payload["storage"])
    base = {
        "executor_id": payload["executor_id"],
        "job_id": payload["job_id"],
        "call_id": payload["call_id"],
        "activation_id": payload.get("activation_id"),
        "host_submit_time": payload.get("host_submit_time"),
        "start_time": start_time or time.time(),
        "worker_host": socket.gethostname(),
        "worker_pid": None,
        **fields,
    }
    error = _describe_error(exc)
    signer = Signer.from_payload(payload["signing"]) if payload.get("signing") else None
    status = finish_call(storage, payload, base, error, _pickle_exception(exc, signer), retry_seconds=0)
    notifier_for(payload.get("rabbitmq")).publish(
        {**base, "status": CallStatus.ERROR.value, "end_time": status["end_time"]}
    )
    return status


def failure_status(call_id: str, exc: BaseException) -> dict[str, Any]:
    """The final status of a call that failed without running, as a client tells it (nothing is stored)."""
    now = time.time()
    return {"call_id": call_id, "status": CallStatus.ERROR.value, "error": _describe_error(exc), "end_time": now}


def _final(error: Any) -> str:
    """The final status of a call that ended with ``error`` (None: it succeeded)."""
    return (CallStatus.ERROR if error else CallStatus.SUCCESS).value
