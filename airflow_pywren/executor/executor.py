"""The PyWren executor: stage jobs in storage, invoke them, and collect their results."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from airflow_pywren.executor import (
    call_context,
    composition,
    data,
    invocation,
    keys,
    legacy,
    serialization,
    signing,
    validation,
    versions,
)
from airflow_pywren.executor import calls as arguments
from airflow_pywren.executor.callstore import CallStore, call_store_for
from airflow_pywren.executor.compute import ComputeBackend, compute_class, create_compute
from airflow_pywren.executor.compute.base import CallList, Invocation
from airflow_pywren.executor.config import Config, load_config, storage_section
from airflow_pywren.executor.data.calls import wants_data
from airflow_pywren.executor.data.locations import looks_like_location
from airflow_pywren.executor.errors import (
    ComputeError,
    PyWrenConfigError,
    PyWrenError,
    PyWrenSubmitError,
    StorageError,
    StorageKeyNotFound,
)
from airflow_pywren.executor.future import ResponseFuture
from airflow_pywren.executor.invocation import InvocationProgress, InvocationRecorder, read_progress
from airflow_pywren.executor.jobref import CallStatus
from airflow_pywren.executor.jobs import JobProgress, ProgressLog
from airflow_pywren.executor.lost_calls import LostCalls
from airflow_pywren.executor.monitor import JobMonitor, create_monitor
from airflow_pywren.executor.storage import StorageBackend, create_storage, storage_spec
from airflow_pywren.executor.wait import ALL_COMPLETED, ALWAYS, ANY_COMPLETED
from airflow_pywren.executor.worker import blocking, handler

logger = logging.getLogger(__name__)

CALL_ASYNC, MAP, REDUCE = "call_async", "map", "reduce"
_JOB_LETTER = {CALL_ASYNC: "A", MAP: "M", REDUCE: "R"}
PROGRESS_LOG_SECONDS = 5.0


class FunctionExecutor:
    """Runs Python functions as activations on the configured compute and storage backends.

    ``executor_id`` names the executor's storage prefix; pass one to continue an executor
    started elsewhere (jobs are then numbered after those already in storage).
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        runtime: str | None = None,
        runtime_memory: int | None = None,
        log_level: str | None = None,
        rabbitmq_monitor: bool = False,
        executor_id: str | None = None,
    ) -> None:
        overrides: dict[str, dict[str, Any]] = {"pywren": {}}
        if runtime is not None:
            overrides["pywren"]["runtime"] = runtime
        if runtime_memory is not None:
            overrides["pywren"]["runtime_memory"] = runtime_memory
        if log_level is not None:
            overrides["pywren"]["log_level"] = log_level
        if rabbitmq_monitor:
            overrides["pywren"]["rabbitmq_monitor"] = True
        if config is not None and not isinstance(config, dict):
            raise PyWrenConfigError(f"config must be a dict of sections, got {type(config).__name__}")
        config = dict(config or {})
        config["pywren"] = {**(config.get("pywren") or {}), **overrides["pywren"]}
        inherited = call_context.inherited()
        try:
            self.config: Config = load_config(config, base=inherited.config if inherited else None)
        except PyWrenConfigError as exc:
            if inherited is None:
                raise
            raise PyWrenConfigError(
                f"{exc} (an executor created inside a call inherits the client's settings without their "
                "credentials: give it its compute credentials with config=... or PYWREN_CONFIG in extra_env)"
            ) from exc
        if self.config["pywren"]["log_level"]:
            logging.getLogger("airflow_pywren").setLevel(self.config["pywren"]["log_level"].upper())
        self.executor_id = uuid.uuid4().hex[:12] if executor_id is None else executor_id
        validation.check_executor_id(self.executor_id)
        self.storage: StorageBackend = create_storage(
            self.config["pywren"]["storage_backend"], storage_section(self.config)
        )
        self.storage.check()
        self.signer: signing.Signer = (
            inherited.signer
            if inherited is not None and not self.config["pywren"]["signing_key"]
            else signing.signer_from_config(self.config)
        )
        self.calls: CallStore = call_store_for(self.storage)
        if self.storage.is_local and not compute_class(self.config["pywren"]["compute_backend"]).is_local:
            logger.warning(
                "compute backend %s uses %s storage, files on this machine: its activations must share them; "
                "use a remote storage backend such as 'ibm_cos' for remote compute",
                self.config["pywren"]["compute_backend"],
                self.storage.name,
            )
        self.compute: ComputeBackend = create_compute(self.config)
        self.compute.check()
        logger.debug(
            "executor %s: %s compute, storage %s, pickles signed with %s",
            self.executor_id,
            self.compute.name,
            self.storage.location(),
            self.signer.describe(),
        )
        self.job_monitor: JobMonitor = create_monitor(self.config, self.storage, self.executor_id)
        self.lost_calls = LostCalls(
            self.storage,
            self.compute,
            self.config["pywren"]["lost_call_grace"],
            self.signer,
            self.config["pywren"]["invocation_grace"],
        )
        self.futures: list[ResponseFuture] = []
        self._job_counter = itertools.count(self._first_free_job_number() if executor_id else 0)
        self._progress_logs: dict[str, ProgressLog] = {}
        self.job_inputs: dict[str, dict[str, Any]] = {}
        """What each map over data read (see ``DataPlan.summary``), by job id."""
        self._next_progress_count = 0.0

    # ------------------------------------------------------------------ submit
    def call_async(
        self,
        func: Callable,
        data: Any,
        extra_env: dict[str, str] | None = None,
        extra_meta: dict[str, Any] | None = None,
        runtime_memory: int | None = None,
        timeout: float | None = None,
        exclude_modules: Sequence[str] | None = None,
        include_modules: Sequence[str] | None = (),
        extra_args: Any = None,
        **legacy: Any,
    ) -> ResponseFuture:
        """Run ``func`` once with ``data`` (the argument rule of :mod:`.calls`); return its future.

        When ``func`` declares ``obj`` or ``data_stream``, ``data`` names one object (``'cos://bucket/key'``,
        a URL, a file, or ``{'obj': ..., 'other': ...}``) and the call reads it whole, as ``map`` would.
        """
        options = self._submit_options("call_async", extra_args, include_modules, legacy)
        plan = self._data_plan(func, [data], None, None, options["extra_args"]) if wants_data(func) else None
        if plan is not None and len(plan.parts) != 1:
            raise PyWrenSubmitError(
                f"call_async runs one call, but {data!r:.80} names {len(plan.parts)} objects; "
                "use map() for one call per object"
            )
        items = plan.items(func) if plan is not None else [data]
        return self._submit(
            CALL_ASYNC,
            func,
            items,
            extra_env,
            extra_meta,
            runtime_memory,
            timeout,
            exclude_modules,
            **options,
            data_plan=plan,
        )[0]

    def map(
        self,
        func: Callable,
        iterdata: Iterable[Any],
        extra_env: dict[str, str] | None = None,
        extra_meta: dict[str, Any] | None = None,
        runtime_memory: int | None = None,
        timeout: float | None = None,
        exclude_modules: Sequence[str] | None = None,
        include_modules: Sequence[str] | None = (),
        extra_args: Any = None,
        chunk_size: int | None = None,
        chunk_n: int | None = None,
        **legacy: Any,
    ) -> list[ResponseFuture]:
        """Run ``func`` once per item of ``iterdata``; return the futures in input order.

        When ``func`` declares ``obj`` or ``data_stream`` (or ``chunk_size``/``chunk_n`` is
        given), ``iterdata`` names data (see :mod:`airflow_pywren.executor.data`): one call
        per object, or per chunk of ``chunk_size`` bytes / per ``chunk_n``-th of each object.
        """
        options = self._submit_options("map", extra_args, include_modules, legacy)
        plan = self._data_plan(func, iterdata, chunk_size, chunk_n, options["extra_args"])
        items = plan.items(func) if plan is not None else _as_list(iterdata, "iterdata")
        return self._submit(
            MAP, func, items, extra_env, extra_meta, runtime_memory, timeout, exclude_modules, **options, data_plan=plan
        )

    def _data_plan(
        self, func: Callable, iterdata: Any, chunk_size: Any, chunk_n: Any, extra_args: Any = None
    ) -> data.DataPlan | None:
        """The plan of a map over data, or None for a map over Python values."""
        if not wants_data(func) and chunk_size is None and chunk_n is None:
            if isinstance(iterdata, str) and looks_like_location(iterdata):
                raise PyWrenSubmitError(
                    f"iterdata {iterdata!r} names data, but {getattr(func, '__name__', 'the function')} declares "
                    "neither 'obj' nor 'data_stream'; add one of them to receive each object or chunk"
                )
            return None
        if extra_args is not None and not isinstance(extra_args, dict):
            raise PyWrenSubmitError(
                "a map over data passes its data by name: give extra_args as a dict of parameter names, "
                f"got {type(extra_args).__name__}"
            )
        return data.plan_data(
            func,
            iterdata,
            self.storage,
            chunk_size,
            chunk_n,
            local_compute=self.compute.is_local,
            max_workers=self.config["pywren"]["max_workers"],
            extra_args=extra_args,
        )

    def map_reduce(
        self,
        map_func: Callable,
        iterdata: Iterable[Any],
        reduce_func: Callable,
        reducer_wait_local: bool = False,
        extra_env: dict[str, str] | None = None,
        extra_meta: dict[str, Any] | None = None,
        map_runtime_memory: int | None = None,
        reduce_runtime_memory: int | None = None,
        timeout: float | None = None,
        exclude_modules: Sequence[str] | None = None,
        include_modules: Sequence[str] | None = (),
        extra_args: Any = None,
        chunk_size: int | None = None,
        chunk_n: int | None = None,
        reducer_one_per_object: bool = False,
        **legacy: Any,
    ) -> list[ResponseFuture]:
        """Map, then reduce the map results (a list in input order) with ``reduce_func``.

        The reducer is invoked at once and waits for the maps inside its activation; with
        ``reducer_wait_local=True`` the client waits for the maps and then invokes it.
        Returns the map futures followed by the reducer's future. Over data (see ``map``),
        ``reducer_one_per_object=True`` runs one reducer per object over its chunks' results,
        and the reducers' futures follow in object order. PyWren 1.0's positional form
        ``map_reduce(f, data, r, chunk_size)`` is read as such: a fourth argument that is an
        int above 1 is the chunk size.
        """
        options = self._submit_options("map_reduce", extra_args, include_modules, legacy)
        reducer_wait_local, chunk_size = _wait_local_or_chunk_size(reducer_wait_local, chunk_size)
        if not isinstance(reducer_one_per_object, bool):
            raise PyWrenSubmitError(f"reducer_one_per_object must be True or False, got {reducer_one_per_object!r}")
        plan = self._data_plan(map_func, iterdata, chunk_size, chunk_n, options["extra_args"])
        if plan is None and reducer_one_per_object:
            raise PyWrenSubmitError(
                "reducer_one_per_object=True needs a map over data (objects in storage, URLs or files): "
                "declare 'obj' or 'data_stream' in the map function"
            )
        items = plan.items(map_func) if plan is not None else _as_list(iterdata, "iterdata")
        arguments.check_reducer(reduce_func)
        reduce_bytes = serialization.serialize_function(reduce_func, exclude_modules, include_modules)
        _check_call_options(
            extra_env, extra_meta, *self._call_defaults(reduce_runtime_memory, timeout), exclude_modules
        )
        map_futures = self._submit(
            MAP,
            map_func,
            items,
            extra_env,
            extra_meta,
            map_runtime_memory,
            timeout,
            exclude_modules,
            **options,
            data_plan=plan,
            produce_output=False,
        )
        if reducer_wait_local:
            self.wait(map_futures, return_when=ALL_COMPLETED)
        groups = (
            plan.calls_per_object() if plan is not None and reducer_one_per_object else [list(range(len(map_futures)))]
        )
        reduces = [
            {
                "job_id": map_futures[0].job_id,
                "call_ids": [map_futures[i].call_id for i in group],
                "poll_interval": self.config["pywren"]["monitor_interval"],
            }
            for group in groups
        ]
        reduce_futures = self._submit(
            REDUCE,
            reduce_func,
            [None] * len(reduces),
            extra_env,
            extra_meta,
            reduce_runtime_memory,
            timeout,
            exclude_modules,
            reduce=reduces,
            func_bytes=reduce_bytes,
        )
        return [*map_futures, *reduce_futures]

    def _submit(
        self,
        kind: str,
        func: Callable,
        items: list[Any],
        extra_env: dict[str, str] | None,
        extra_meta: dict[str, Any] | None,
        runtime_memory: int | None,
        timeout: float | None,
        exclude_modules: Sequence[str] | None,
        reduce: list[dict[str, Any]] | None = None,
        func_bytes: bytes | None = None,
        extra_args: Any = None,
        include_modules: Sequence[str] | None = (),
        data_plan: data.DataPlan | None = None,
        produce_output: bool = True,
    ) -> list[ResponseFuture]:
        """Validate and serialize everything, stage it in storage (3 PUTs), invoke, record that it was invoked (1 PUT).

        ``produce_output=False``: the calls' outputs go to a reducer, not to :meth:`get_result`.
        """
        runtime_memory, timeout = self._call_defaults(runtime_memory, timeout)
        _check_call_options(extra_env, extra_meta, runtime_memory, timeout, exclude_modules)
        if not items:
            raise PyWrenSubmitError(f"{kind} got no data: iterdata is empty; pass at least one item")
        func_bytes = self.signer.sign(
            func_bytes or serialization.serialize_function(func, exclude_modules, include_modules)
        )
        if reduce is None:
            staged = arguments.stage_items(
                func, items, "data" if kind == CALL_ASYNC else "iterdata", extra_args, self.signer
            )
        else:
            staged = arguments.StagedData(b"", [], False)  # reducers read the map results, not a data object
        data_bytes = staged.blob
        job_id = f"{_JOB_LETTER[kind]}{next(self._job_counter):03d}"
        prefix = self.storage.prefix
        call_ids = [keys.call_id_of(i) for i in range(len(items))]
        submit_time = time.time()
        data_ends = staged.ends if reduce is None else None
        calls = CallList(call_ids, data_ends, reduce)
        invoke_batch = self.compute.invoke_batch(len(calls))
        manifest = {
            "executor_id": self.executor_id,
            "job_id": job_id,
            "kind": kind,
            "function": getattr(func, "__qualname__", repr(func)),
            "call_ids": call_ids,
            "host_submit_time": submit_time,
            "extra_meta": extra_meta or {},
            "location": self.storage.location(),
            "reduce_of": reduce and reduce[0]["job_id"],
            "timeout": timeout,
            # what invoking the calls again needs (FunctionExecutor.invoke_missing), secrets left out
            "invoke_batch": invoke_batch,
            "runtime_memory": runtime_memory,
            "injected": sorted(arguments.injected_names(func)),
            "versions": versions.client_versions(),
            "data_ends": data_ends,
            "data_bare": staged.bare,
            "reduce": reduce,
        }
        if data_plan is not None:
            manifest["inputs"] = self.job_inputs[job_id] = data_plan.summary()
        try:
            self.storage.put(keys.job_key(prefix, self.executor_id, job_id, keys.FUNC_OBJECT), func_bytes)
            if reduce is None:
                self.storage.put(keys.job_key(prefix, self.executor_id, job_id, keys.DATA_OBJECT), data_bytes)
            self.storage.put(
                keys.job_key(prefix, self.executor_id, job_id, keys.JOB_MANIFEST), json.dumps(manifest).encode()
            )
        except OSError as exc:
            raise StorageError(f"could not stage job {job_id} in {self.storage.location()}: {exc}") from exc
        logger.debug(
            "%s job %s staged in %s: function %d bytes, data %d bytes",
            kind,
            job_id,
            self.storage.location(),
            len(func_bytes),
            len(data_bytes) if reduce is None else 0,
        )
        job_payload = self._job_payload(
            manifest, extra_env, arguments.injected_settings(func, self.config, self.storage)
        )
        job_meta = dict(extra_meta or {})
        futures = [
            ResponseFuture(
                self, self.executor_id, job_id, call_id, kind, submit_time, job_meta, timeout, produce_output
            )
            for call_id in call_ids
        ]
        first = invoke_batch or len(calls)
        progress = InvocationProgress(len(calls), 0, min(first, len(calls)), False, submit_time)
        self._invoke(job_payload, calls, futures, progress, invoke_batch)
        self.futures.extend(futures)
        logger.info("%s job %s: %d call(s) submitted to %s", kind, job_id, len(futures), self.compute.name)
        return futures

    def _job_payload(
        self, manifest: dict[str, Any], extra_env: dict[str, str] | None, injected: dict[str, Any]
    ) -> dict[str, Any]:
        """The fields every activation of a job gets (its calls add ``call_id``, ``data_byte_range``, ``reduce``)."""
        prefix, executor_id, job_id = self.storage.prefix, manifest["executor_id"], manifest["job_id"]
        return {
            "storage": storage_spec(self.storage),
            "prefix": prefix,
            "executor_id": executor_id,
            "job_id": job_id,
            "func_key": keys.job_key(prefix, executor_id, job_id, keys.FUNC_OBJECT),
            "data_key": keys.job_key(prefix, executor_id, job_id, keys.DATA_OBJECT),
            "data_bare": bool(manifest.get("data_bare")),  # each range holds the one argument, not a CallData
            "extra_env": {k: str(v) for k, v in (extra_env or {}).items()},
            "nested": call_context.nested_settings(self.config),
            "extra_meta": manifest["extra_meta"] or {},
            "runtime_memory": manifest["runtime_memory"],
            "timeout": manifest["timeout"],
            "host_submit_time": manifest["host_submit_time"],
            "rabbitmq": self.job_monitor.notifier_settings(executor_id, job_id),
            "versions": manifest["versions"],  # checked by the function side before unpickling
            "injected": injected,
            "signing": self.signer.payload(),
            "write_retry_seconds": self.config["pywren"]["write_retry_seconds"],
        }

    def _invoke(
        self,
        job_payload: dict[str, Any],
        calls: CallList,
        futures: Sequence[ResponseFuture],
        progress: InvocationProgress,
        batch: int,
        resuming: bool = False,
    ) -> None:
        """Invoke ``calls`` (one future each) ``batch`` at a time (0: at once), recording the progress in
        storage (see :mod:`.invocation`): calls refused, or not invoked after a compute error, are
        recorded as failed; then the activation ids, then that the invocation is complete."""
        size = batch or len(calls) or 1
        batches: list[Sequence[Invocation]] = []
        failure: BaseException | None = None
        job_id = job_payload["job_id"]
        heartbeat = min(10.0, self.config["pywren"]["invocation_grace"] / 4)
        with InvocationRecorder(self.storage, self.executor_id, job_id, progress, heartbeat) as recorder:
            if resuming:  # news at once, so that attaching processes wait instead of failing these calls
                recorder.invoking(progress.invoked, progress.invoking)
            for start in range(0, len(calls), size):
                if start and not resuming:
                    recorder.invoking(progress.invoked + start, progress.invoked + min(start + size, len(calls)))
                try:
                    batches.append(self.compute.invoke(job_payload, calls[start : start + size]))
                except ComputeError as exc:
                    failure = exc
                    break
                except OSError as exc:
                    failure = ComputeError(f"could not invoke job {job_id} on {self.compute.name}: {exc}")
                    break
            invocations = itertools.chain.from_iterable(batches)  # in call order, made one at a time
            for index, future in enumerate(futures):
                invocation = next(invocations, None)
                if invocation is not None and invocation.error is None:
                    future.set_invocation(invocation.activation_id, invocation.invoker_id)
                    continue
                reason = failure if invocation is None else ComputeError(invocation.error)
                handler.record_failure(
                    {**job_payload, **calls[index]},
                    reason or ComputeError(f"{self.compute.name} returned no invocation for call {future.call_id}"),
                )
            activations = {f.call_id: f.activation_id for f in futures if f.activation_id}
            invoker_id = next((f.invoker_id for f in futures if f.invoker_id), None)
            if resuming:
                activations = {**progress.activations, **activations}
            recorder.complete(self.config["pywren"]["write_retry_seconds"], activations, invoker_id)

    # ------------------------------------------------------------------- wait
    def monitor(
        self,
        futures: ResponseFuture | Sequence[ResponseFuture] | None = None,
        throw_except: bool = True,
        return_when: str | int = ALL_COMPLETED,
        download_results: bool = False,
        timeout: float | None = None,
        **legacy_kwargs: Any,
    ) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """PyWren 1.0's name of :meth:`wait`, with its default ``throw_except=True``."""
        return self.wait(futures, return_when, timeout, throw_except, download_results, **legacy_kwargs)

    def wait(
        self,
        futures: ResponseFuture | Sequence[ResponseFuture] | None = None,
        return_when: str | int = ALL_COMPLETED,
        timeout: float | None = None,
        throw_except: bool = False,
        download_results: bool = False,
        **legacy_kwargs: Any,
    ) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """Wait for ``futures`` (default: all of this executor's); return ``(done, not_done)``.

        PyWren keywords: ``throw_except=True`` re-raises the first failed call's exception;
        ``download_results=True`` also reads the results of the calls that succeeded;
        ``fs`` names the futures, ``WAIT_DUR_SEC`` the seconds between storage checks and
        ``THREADPOOL_SIZE`` the threads reading results. ``return_when`` also takes the
        original integer constants (1, 2, 3).
        """
        options = legacy.take("wait", legacy_kwargs, legacy.WAIT)
        return_when = legacy.return_when(return_when)
        named = options.get("futures", futures)
        futures = self._future_list(named)
        done, not_done = self._wait(futures, return_when, timeout, legacy.wait_dur_sec(options, self.config))
        if throw_except:  # over all the executor's calls, a failure reported already is not raised again
            failed = [f for f in done if f.status == CallStatus.ERROR and (named is not None or not f.read)]
            if failed:
                failed[0].result()
        if download_results:
            self._download([f for f in done if f.status == CallStatus.SUCCESS], options.get("threadpool_size"))
        return done, not_done

    def _wait(
        self, futures: list[ResponseFuture], return_when: str, timeout: float | None, wait_dur_sec: float | None
    ) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """The wait loop: refresh, fail lost calls, log progress, pause (the monitor's pace, or ``wait_dur_sec``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = [f for f in futures if not f.finished]
        with blocking.waiting_for_calls():  # a call waiting here lends its localhost runner a worker
            while True:
                if pending:
                    self.job_monitor.refresh(pending)
                    self.fail_lost_calls(pending)
                    pending = [f for f in pending if not f.finished]
                    self._log_progress(futures, finished=not pending)
                done_count = len(futures) - len(pending)
                if return_when == ALWAYS or not pending or (return_when == ANY_COMPLETED and done_count):
                    break
                remaining = float("inf") if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    break
                if wait_dur_sec is None:
                    self.job_monitor.pause(remaining)
                else:
                    time.sleep(min(remaining, wait_dur_sec))
        return [f for f in futures if f.finished], pending

    def _download(self, futures: Sequence[ResponseFuture], threads: int | None = None) -> None:
        """Read the results of succeeded calls not read yet (in parallel threads on remote storage)."""
        missing = [f for f in futures if not f.has_output() and f.status == CallStatus.SUCCESS]
        blobs = self.calls.read_outputs(
            [(f.executor_id, f.job_id, f.call_id) for f in missing], threads or self.config["pywren"]["max_workers"]
        )
        for future, blob in zip(missing, blobs):
            future.set_output(blob)

    def get_result(
        self,
        futures: ResponseFuture | Sequence[ResponseFuture] | None = None,
        timeout: float | None = None,
        throw_except: bool = True,
        **legacy_kwargs: Any,
    ) -> Any:
        """Wait for and return results; a single value for one call_async or one reducer.

        With no ``futures``, the results not yet read of this executor's calls (map
        results of a map_reduce are consumed by its reducer and left out). A call that
        returned futures (an executor inside the call) gives their results, recursively.
        ``throw_except=False`` returns None for failed calls instead of raising; ``fs``,
        ``WAIT_DUR_SEC`` and ``THREADPOOL_SIZE`` are taken as in :meth:`wait`.
        """
        options = legacy.take("get_result", legacy_kwargs, legacy.WAIT)
        futures = options.get("futures", futures)
        single = isinstance(futures, ResponseFuture)
        if futures is None:
            candidates = [f for f in self.futures if f.produce_output and not f.read]
        else:
            candidates = self._future_list(futures)
        wanted = candidates if single else ([f for f in candidates if f.produce_output] or candidates)
        _, not_done = self._wait(wanted, ALL_COMPLETED, timeout, legacy.wait_dur_sec(options, self.config))
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} of {len(wanted)} call(s) did not finish within {timeout} s "
                f"(first pending: job {not_done[0].job_id} call {not_done[0].call_id})"
            )
        failed = [f for f in wanted if f.status == CallStatus.ERROR]
        for future in failed:
            future.read = True  # reported once: a later get_result() does not raise it again
        if failed and throw_except:
            if len(failed) > 1:
                logger.error(
                    "%d of %d call(s) failed; raising the first (job %s call %s)",
                    len(failed),
                    len(wanted),
                    failed[0].job_id,
                    failed[0].call_id,
                )
            failed[0].result()
        self._download(wanted, options.get("threadpool_size"))
        results = [
            composition.resolve(self, f.result(throw_except=throw_except), timeout, throw_except) for f in wanted
        ]
        if single or (len(wanted) == 1 and wanted[0].kind in (CALL_ASYNC, REDUCE)):
            return results[0]
        return results

    # ----------------------------------------------------------- other jobs
    def job_futures(
        self, job_id: str, executor_id: str | None = None, produce_output: bool = True
    ) -> list[ResponseFuture]:
        """Futures of a job submitted earlier, maybe by another process, read from its manifest.

        ``produce_output=False`` for the map job of a map_reduce (its outputs went to the reducer).

        If the process that submitted it stopped before invoking every call, waiting for the
        futures reports the calls it never invoked as failed (``CallNeverInvokedError``) once
        ``pywren.invocation_grace`` seconds have passed without news from it; see :meth:`invoke_missing`.
        """
        executor_id = validation.check_executor_id(self.executor_id if executor_id is None else executor_id)
        manifest = self._manifest(executor_id, job_id)
        futures = self._manifest_futures(manifest, manifest["call_ids"], produce_output)
        if manifest.get("inputs"):
            self.job_inputs[job_id] = manifest["inputs"]
        progress = read_progress(self.storage, executor_id, job_id, manifest)
        self.lost_calls.attach_ids(executor_id, job_id, futures, progress)
        if not progress.complete:
            self.lost_calls.follow_invocation(manifest, progress)
        return futures

    def job_submitted_at(self, job_id: str, executor_id: str | None = None) -> float:
        """When a stored job was submitted (epoch seconds, the submitter's clock), from its manifest."""
        executor_id = validation.check_executor_id(self.executor_id if executor_id is None else executor_id)
        return float(self._manifest(executor_id, job_id)["host_submit_time"])

    def invoke_missing(self, job_id: str, extra_env: dict[str, str] | None = None) -> int:
        """Invoke the calls of this executor's job ``job_id`` that the process submitting it never invoked
        (it stopped part-way); return how many. Each call runs once: a call is invoked here only if it
        has not started and was not invoked (see :mod:`.invocation`).

        While that process may still be invoking, this waits for it: at most ``pywren.invocation_grace``
        seconds past its last record, and twice that for calls it was invoking when it stopped that the
        compute backend cannot vouch for. Pass the ``extra_env`` the job was submitted with.
        """
        manifest = self._manifest(self.executor_id, job_id)
        grace = self.config["pywren"]["invocation_grace"]
        while True:
            progress = read_progress(self.storage, self.executor_id, job_id, manifest)
            if progress.complete:
                return 0
            if progress.stopped(grace):
                verdict = invocation.uninvoked_calls(self.calls, self.compute, manifest, progress, grace)
                if not verdict.undecided:
                    break
            time.sleep(min(1.0, grace / 4))
        missing = sorted(verdict.never_invoked, key=int)
        logger.warning(
            "job %s of executor %s: the process submitting it stopped after invoking %d of %d call(s); "
            "invoking the %d call(s) it never invoked",
            job_id,
            self.executor_id,
            progress.invoked,
            progress.calls,
            len(missing),
        )
        calls = CallList(missing, manifest.get("data_ends"), manifest.get("reduce"))
        job_payload = self._job_payload(
            manifest, extra_env, arguments.injected_settings_named(manifest["injected"], self.config, self.storage)
        )
        futures = self._manifest_futures(manifest, missing)
        resumed = InvocationProgress(progress.calls, progress.invoked, progress.calls, False, time.time())
        self._invoke(job_payload, calls, futures, resumed, self.compute.invoke_batch(len(calls)), resuming=True)
        return len(missing)

    def _manifest_futures(
        self, manifest: dict[str, Any], call_ids: Sequence[str], produce_output: bool = True
    ) -> list[ResponseFuture]:
        """Futures of these calls of a stored job, as its manifest describes them."""
        job_meta = dict(manifest["extra_meta"] or {})
        return [
            ResponseFuture(
                self,
                manifest["executor_id"],
                manifest["job_id"],
                call_id,
                manifest["kind"],
                manifest["host_submit_time"],
                job_meta,
                manifest.get("timeout"),
                produce_output,
            )
            for call_id in call_ids
        ]

    def _manifest(self, executor_id: str, job_id: str) -> dict[str, Any]:
        validation.check_job_id(job_id)
        try:
            return json.loads(
                self.storage.get(keys.job_key(self.storage.prefix, executor_id, job_id, keys.JOB_MANIFEST))
            )
        except StorageKeyNotFound:
            raise PyWrenError(
                f"no job {job_id} of executor {executor_id} in {self.storage.location()}; "
                "check the ids and that this executor uses the same storage configuration"
            ) from None

    def job_ids(self, executor_id: str | None = None) -> list[str]:
        """Ids of the jobs stored under an executor (default: this one), in submission order."""
        prefix = keys.executor_prefix(
            self.storage.prefix, validation.check_executor_id(self.executor_id if executor_id is None else executor_id)
        )
        found = {
            key[len(prefix) :].split("/")[0]
            for key in self.storage.list_keys(prefix)
            if key.endswith("/" + keys.JOB_MANIFEST)
        }
        return sorted(found, key=lambda job_id: int(job_id[1:]))

    def _first_free_job_number(self) -> int:
        return max((int(job_id[1:]) + 1 for job_id in self.job_ids()), default=0)

    def fail_lost_calls(self, futures: Sequence[ResponseFuture]) -> int:
        """Record as failed the calls whose activation was lost (see :mod:`.lost_calls`); how many."""
        return self.lost_calls.fail(futures)

    def cancel(self, futures: Sequence[ResponseFuture] | None = None) -> int:
        """Stop the activations of these futures' jobs that have not finished, where the backend can."""
        jobs = {(f.executor_id, f.job_id) for f in self._future_list(futures) if not f.finished}
        return sum(self.compute.cancel(executor_id, job_id) for executor_id, job_id in jobs)

    def clean(
        self,
        executor_id: str | None = None,
        fs: Sequence[ResponseFuture] | None = None,
        local_execution: bool = True,
        delete_all: bool = False,
    ) -> int:
        """Delete everything this executor (or ``executor_id``) stored; return the object count.

        PyWren keywords: ``fs`` deletes only those futures' jobs; ``delete_all=True`` deletes
        the data of every executor under the storage prefix; ``local_execution=False`` is
        accepted (cleaning always runs in this process).
        """
        if not local_execution:
            legacy.warn_once("clean", "local_execution", "cleaning runs in this process")
        if fs is not None:
            jobs = dict.fromkeys((f.executor_id, f.job_id) for f in self._future_list(fs))
            removed = 0
            for job_executor, job_id in jobs:
                self.job_monitor.forget(job_executor, job_id)
                removed += self.storage.delete_prefix(keys.job_prefix(self.storage.prefix, job_executor, job_id))
            return removed
        if delete_all:
            executors = {
                key[len(self.storage.prefix) + 1 :].split("/")[0]
                for key in self.storage.list_keys(self.storage.prefix + "/")
            }
            return sum(self.clean(executor_id=other) for other in sorted(executors) if other)
        executor_id = validation.check_executor_id(self.executor_id if executor_id is None else executor_id)
        self.job_monitor.forget(executor_id)  # first: it may look up the executor's jobs in storage
        self.compute.clean(executor_id)
        removed = self.storage.delete_prefix(keys.executor_prefix(self.storage.prefix, executor_id))
        logger.info("removed %d object(s) of executor %s from %s", removed, executor_id, self.storage.location())
        return removed

    def plot(
        self,
        futures: Sequence[ResponseFuture] | None = None,
        dst_dir: str | None = None,
        dst_file_prefix: str | None = None,
        dst: str | None = None,
        **legacy_kwargs: Any,
    ) -> list:
        """Write timeline plots (PNG) of finished calls; see :func:`plots.create_timeline_plots`.

        ``dst`` (PyWren 1.5) is a path and file prefix (``~/plots/test`` writes
        ``~/plots/test_timeline.png``, ...); with neither ``dst`` nor ``dst_dir`` the plots go
        to ``./plots`` with a timestamp prefix. ``fs`` names the futures.
        """
        from airflow_pywren.executor.plots import create_timeline_plots

        futures = self._future_list(legacy.take("plot", legacy_kwargs, ("fs",)).get("futures", futures))
        if dst is not None:
            dst_dir, dst_file_prefix = os.path.split(os.path.expanduser(dst))
        elif dst_dir is None:
            dst_dir, dst_file_prefix = "plots", dst_file_prefix or time.strftime("%Y%m%d_%H%M%S")
        return create_timeline_plots(futures, dst_dir or ".", dst_file_prefix or f"{self.executor_id}")

    def create_timeline_plots(self, dst: str, name: str, futures: Sequence[ResponseFuture] | None = None) -> list:
        """PyWren 1.0's name of :meth:`plot`: plots in directory ``dst`` with file prefix ``name``."""
        return self.plot(futures, dst_dir=os.path.expanduser(dst), dst_file_prefix=name)

    def create_execution_plots(
        self, dst_dir: str, dst_name: str, futures: Sequence[ResponseFuture] | None = None
    ) -> list:
        """PyWren 1.0's other name of :meth:`plot`."""
        return self.plot(futures, dst_dir=os.path.expanduser(dst_dir), dst_file_prefix=dst_name)

    def close(self) -> None:
        """Release the monitor, compute and storage connections."""
        self.job_monitor.close()
        self.compute.close()
        self.storage.close()

    def __enter__(self) -> FunctionExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers
    def _submit_options(
        self, method: str, extra_args: Any, include_modules: Any, given: dict[str, Any]
    ) -> dict[str, Any]:
        """The submit keywords, with those of the original API (``extra_params``, ...) taken in."""
        honoured = legacy.take(method, given, legacy.SUBMIT)
        return {"extra_args": legacy.extra_args_of(extra_args, honoured), "include_modules": include_modules}

    def _call_defaults(self, runtime_memory: int | None, timeout: float | None) -> tuple[Any, Any]:
        """Per-call memory and timeout, defaulting to ``pywren.runtime_memory`` / ``pywren.runtime_timeout``."""
        pw = self.config["pywren"]
        return (
            pw["runtime_memory"] if runtime_memory is None else runtime_memory,
            pw["runtime_timeout"] if timeout is None else timeout,
        )

    def _future_list(self, futures: ResponseFuture | Sequence[ResponseFuture] | None) -> list[ResponseFuture]:
        if futures is None:
            return list(self.futures)
        if isinstance(futures, ResponseFuture):
            return [futures]
        return list(futures)

    def _log_progress(self, futures: list[ResponseFuture], finished: bool) -> None:
        now = time.monotonic()
        if now < self._next_progress_count and not finished:
            return  # counting every future on every poll would cost more than the poll
        self._next_progress_count = now + 1.0
        jobs: dict[str, list[ResponseFuture]] = {}
        for future in futures:
            jobs.setdefault(future.job_id, []).append(future)
        for job_id, job_futures in jobs.items():
            progress = JobProgress(
                job_futures[0].kind,
                [job_id],
                len(job_futures),
                done=sum(f.finished for f in job_futures),
                failed=sum(f.status == CallStatus.ERROR for f in job_futures),
            )
            progress_log = self._progress_logs.setdefault(job_id, ProgressLog(PROGRESS_LOG_SECONDS, quiet=float("inf")))
            if progress_log.due(progress):
                logger.info("%s", progress.line())


def _wait_local_or_chunk_size(reducer_wait_local: Any, chunk_size: int | None) -> tuple[bool, int | None]:
    """``reducer_wait_local`` as a bool, and the chunk size PyWren 1.0 passed in its place."""
    if reducer_wait_local is None or (isinstance(reducer_wait_local, int) and reducer_wait_local in (0, 1)):
        return bool(reducer_wait_local), chunk_size  # bool is an int: True and False land here
    if isinstance(reducer_wait_local, int) and reducer_wait_local > 1:
        if chunk_size is not None:
            raise PyWrenSubmitError(
                f"map_reduce got chunk_size={chunk_size!r} and a fourth argument {reducer_wait_local!r}, which "
                "PyWren 1.0 code passes as the chunk size: give reducer_wait_local=True or False by keyword"
            )
        return False, reducer_wait_local
    raise PyWrenSubmitError(
        f"reducer_wait_local must be True or False, got {reducer_wait_local!r}: pass it by keyword, "
        "e.g. map_reduce(f, data, r, reducer_wait_local=True)"
    )


def _as_list(iterdata: Iterable[Any], name: str) -> list[Any]:
    if isinstance(iterdata, (str, bytes, dict)) or not isinstance(iterdata, Iterable):
        raise PyWrenSubmitError(
            f"{name} must be a list (or other iterable) of items, one per call; got {type(iterdata).__name__}. "
            "Wrap a single item in a list."
        )
    return list(iterdata)


def _check_call_options(
    extra_env: Any, extra_meta: Any, runtime_memory: Any, timeout: Any, exclude_modules: Any
) -> None:
    """Reject bad keyword values before anything is staged or invoked."""
    if extra_env is not None:
        if not isinstance(extra_env, dict) or not all(isinstance(k, str) and k for k in extra_env):
            raise PyWrenSubmitError(f"extra_env must be a dict of variable names to values, got {extra_env!r:.80}")
        bad = [k for k, v in extra_env.items() if not isinstance(v, (str, int, float, bool))]
        if bad:
            raise PyWrenSubmitError(
                f"extra_env values must be strings (or numbers); {bad[0]!r} is {type(extra_env[bad[0]]).__name__}"
            )
    if extra_meta is not None:
        if not isinstance(extra_meta, dict):
            raise PyWrenSubmitError(f"extra_meta must be a dict, got {type(extra_meta).__name__}")
        try:
            json.dumps(extra_meta)
        except (TypeError, ValueError) as exc:
            raise PyWrenSubmitError(
                f"extra_meta must be JSON-serializable (it is stored with each call's status): {exc}"
            ) from None
    if isinstance(runtime_memory, bool) or not isinstance(runtime_memory, (int, float)) or runtime_memory < 1:
        raise PyWrenSubmitError(f"runtime_memory must be a positive number of MB, got {runtime_memory!r}")
    validation.check_number(  # NaN, infinity and fractions of a MB are refused here, naming the bounds
        runtime_memory, "runtime_memory", 1, validation.MAX_RUNTIME_MEMORY, integer=True, unit=" MB"
    )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise PyWrenSubmitError(f"timeout must be a positive number of seconds, got {timeout!r}")
    validation.check_number(timeout, "timeout", 0.001, validation.MAX_TIMEOUT, unit=" seconds")
    if exclude_modules is not None and (
        isinstance(exclude_modules, str) or not all(isinstance(m, str) for m in exclude_modules)
    ):
        raise PyWrenSubmitError(f"exclude_modules must be a list of module names, got {exclude_modules!r}")


def ibm_cf_executor(
    config: dict[str, Any] | None = None,
    runtime: str | None = None,
    runtime_memory: int | None = None,
    log_level: str | None = None,
    rabbitmq_monitor: bool = False,
    storage_backend: str | None = None,
    remote_invoker: bool | None = None,
) -> FunctionExecutor:
    """An executor configured from the config file, ``PYWREN_CONFIG`` and ``config``.

    ``storage_backend`` and ``remote_invoker`` (PyWren 1.5) override ``pywren.storage_backend``
    and ``ibm_cf.remote_invoker``.

    ``runtime_memory`` (MB) and each call's ``timeout`` default to ``pywren.runtime_memory``
    (256) and ``pywren.runtime_timeout`` (600 s) of the configuration.

    With no configuration at all, calls run on this machine and data lives in
    ``~/.pywren/storage``.
    """
    return FunctionExecutor(
        config=legacy.backend_config(config, None, storage_backend, remote_invoker),
        runtime=runtime,
        runtime_memory=runtime_memory,
        log_level=log_level,
        rabbitmq_monitor=rabbitmq_monitor,
    )
