"""PyWren operators: run call_async, map and map_reduce jobs as Airflow tasks.

Every operator pushes a *job reference* (:class:`~airflow_pywren.executor.jobref.JobRef`) to XCom
(``return_value``): ids, storage location and where the results are, never the results
themselves (unless ``return_results=True``). Downstream:

* another PyWren operator takes the reference as ``iterdata`` (one call per upstream result)
  or ``data``; values are read from storage inside the functions;
* a Python task reads the values with ``PyWrenHook().get_results(reference)``.

Retries are idempotent. Each task instance gets a deterministic executor id derived from
``(dag_id, run_id, task_id, map_index)``. Before submitting, the operator looks in storage
for jobs under that id (an earlier try of the same task instance;
:func:`~airflow_pywren.executor.reattach.find_earlier_job` decides):

* the earlier job is still running, or finished without failures while its task instance
  did not succeed (the worker died, the task was killed or timed out): the operator
  re-attaches to it (waits for it, or returns its reference) and invokes nothing again;
  if the earlier try stopped before it had invoked every call, the calls it never invoked
  are invoked now, once each (``FunctionExecutor.invoke_missing``);
* the earlier job finished with failed calls: every call runs again, as a new job of the
  same executor (failed and successful calls alike, so that the results always come from
  one complete job);
* the earlier try succeeded with the job (a task instance that succeeded writes
  ``task_done.json`` next to the job's manifest): the task was cleared, or run again on
  purpose, so a new job runs.

``reattach=False`` always submits a new job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from airflow_pywren.compat import AirflowException, BaseOperator, Context
from airflow_pywren.executor.errors import PyWrenError
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.future import ERROR, ResponseFuture
from airflow_pywren.executor.jobref import JobRef, JobStatus
from airflow_pywren.executor.jobs import (
    JobProgress,
    JobWatcher,
    ProgressLog,
    compact_reference,
    reference_of,
)
from airflow_pywren.executor.reattach import Verdict, find_earlier_job, mark_done
from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.links.pywren import PyWrenJobLink
from airflow_pywren.operators import lineage
from airflow_pywren.operators.inputs import resolve_data, resolve_iterdata

CALL_ASYNC, MAP, MAP_REDUCE = "call_async", "map", "map_reduce"
MAX_ERRORS_LOGGED = 5


class PyWrenJobTimeout(AirflowException):
    """The job did not finish within the trigger's timeout."""


def executor_id_for(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The executor id of a task instance: stable across its tries, short, without '/'."""
    digest = hashlib.sha256("\0".join((dag_id, run_id, task_id, str(map_index))).encode()).hexdigest()
    return f"af{digest[:14]}"


class BasePyWrenOperator(BaseOperator):
    """What every PyWren operator shares: connection, waiting, re-attaching, failure reports.

    :param extra_env: environment variables set in each call (templated).
    :param extra_meta: JSON metadata stored with each call's status (templated).
    :param runtime: runtime image (default: the connection's).
    :param timeout: seconds each call may run (default: ``pywren.runtime_timeout``).
    :param exclude_modules: local modules not to ship with the function.
    :param include_modules: ship only these local modules (None: none; default: all it uses).
    :param extra_args: added to every call's arguments: a tuple is appended, a dict passed as keywords.
    :param rabbitmq_monitor: follow calls through RabbitMQ (None: the connection's choice).
    :param pywren_conn_id: the ``pywren`` connection with the executor configuration.
    :param deferrable: wait in the triggerer (``PyWrenJobTrigger``), freeing the worker slot.
    :param wait_for_completion: False returns right after submitting (status ``submitted``).
    :param return_results: also put the results (JSON-serializable) in the XCom, under ``results``.
    :param reattach: re-attach to the job of an earlier try of this task instance (see the module docs).
    :param poll_interval: longest pause between status polls while waiting (worker or triggerer); polls start
        at ``pywren.monitor_interval`` and slow down to this while no call finishes.
    :param outputs: locations the functions write to (``'cos://bucket/results/{{ ds }}/'``; templated):
        reported to OpenLineage as output datasets when objects are found there after the job.
    """

    template_fields: Sequence[str] = ("extra_env", "extra_meta", "runtime", "pywren_conn_id", "outputs")
    template_fields_renderers = {"extra_env": "json", "extra_meta": "json"}
    operator_extra_links = (PyWrenJobLink(),)
    ui_color = "#cfe8f7"
    kind: str = ""
    progress_log_seconds = 5.0
    quiet_log_seconds = 60.0

    def __init__(
        self,
        *,
        extra_env: dict[str, str] | None = None,
        extra_meta: dict[str, Any] | None = None,
        runtime: str | None = None,
        timeout: float | None = None,
        exclude_modules: Sequence[str] | None = None,
        include_modules: Sequence[str] | None = (),
        extra_args: Any = None,
        rabbitmq_monitor: bool | None = None,
        pywren_conn_id: str = PyWrenHook.default_conn_name,
        deferrable: bool = False,
        wait_for_completion: bool = True,
        return_results: bool = False,
        reattach: bool = True,
        poll_interval: float = 1.0,
        outputs: Sequence[Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable and not wait_for_completion:
            raise ValueError(
                f"task {self.task_id}: deferrable=True waits in the triggerer, so it needs wait_for_completion=True; "
                "with wait_for_completion=False follow the job with PyWrenJobSensor instead"
            )
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            raise ValueError(
                f"task {self.task_id}: poll_interval must be a positive number of seconds, got {poll_interval!r}"
            )
        self.extra_env = extra_env
        self.extra_meta = extra_meta
        self.runtime = runtime
        self.timeout = timeout
        self.exclude_modules = exclude_modules
        self.include_modules = include_modules
        self.extra_args = extra_args
        self.rabbitmq_monitor = rabbitmq_monitor
        self.pywren_conn_id = pywren_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.return_results = return_results
        self.reattach = reattach
        self.poll_interval = poll_interval
        self.outputs = outputs
        self._job_ref: JobRef | None = None
        self._lineage: tuple[list[dict[str, str]], list[dict[str, str]]] | None = None

    # ----------------------------------------------------------- to override
    def submit(self, executor: FunctionExecutor, context: Context) -> list[ResponseFuture]:
        """Submit the job; return its futures."""
        raise NotImplementedError

    # --------------------------------------------------------------- execute
    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        executor_id = executor_id_for(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        hook = PyWrenHook(pywren_conn_id=self.pywren_conn_id)
        executor = hook.get_conn(executor_id=executor_id, rabbitmq_monitor=self.rabbitmq_monitor, runtime=self.runtime)
        self._job_ref = None
        try:
            ref, progress = self._reattach(executor) if self.reattach else (None, None)
            if ref is None:
                futures = self.submit(executor, context)
                ref = reference_of(executor, self.kind, futures)
                self.log.info(
                    "submitted %s job %s: %d call(s) on %s, executor %s, results in %s",
                    self.kind,
                    ref.name,
                    ref.total,
                    executor.compute.name,
                    executor_id,
                    ref.location,
                )
            ref = ref.with_conn_id(self.pywren_conn_id)
            self._job_ref = ref
            self._record(context, ref, progress)
            if not self.wait_for_completion:
                return self._mark_done(executor, ref, context, _with_progress(ref, progress))
            if self.deferrable and not (progress is not None and progress.finished):
                self._defer(context, executor, ref, progress)  # a finished job (re-attached) needs no trigger
            watcher = JobWatcher(executor, ref)
            progress = self.wait_for_job(watcher)
            self._record(context, ref, progress)
            return self._mark_done(executor, ref, context, self._complete(watcher, progress))
        finally:
            executor.close()

    def _defer(self, context: Context, executor: FunctionExecutor, ref: JobRef, progress: JobProgress | None) -> None:
        from airflow_pywren.triggers.pywren import PyWrenJobTrigger

        context["ti"].xcom_push(key="return_value", value=_with_progress(ref, progress))
        monitor = executor.job_monitor.name
        self.log.info("deferring: the triggerer follows %s job %s by %s", self.kind, ref.name, monitor)
        self.defer(
            trigger=PyWrenJobTrigger(
                job_ref=compact_reference(ref),
                pywren_conn_id=self.pywren_conn_id,
                monitor=monitor,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: fail with the calls' error, or return the job reference."""
        from airflow_pywren.triggers.pywren import TIMEOUT

        status = event.get("status")
        message = event.get("message", "")
        if status == TIMEOUT:
            raise PyWrenJobTimeout(message)
        self.log.info("trigger reported %s: %s", status, message)
        ref = JobRef.parse(event.get("job_ref") or self._job_ref, "the trigger event's job_ref")
        hook = PyWrenHook(pywren_conn_id=ref.pywren_conn_id or self.pywren_conn_id, resumed=True)
        watcher = hook.watch(ref)
        try:
            progress = watcher.poll()
            self._record(context, ref, progress)
            if progress.finished and (status == JobStatus.SUCCESS or progress.failed):
                return self._mark_done(watcher.executor, ref, context, self._complete(watcher, progress))
            raise AirflowException(f"{self.kind} job {ref.name} could not be followed: {message}")
        finally:
            watcher.executor.close()

    def _record(self, context: Context, ref: JobRef, progress: JobProgress | None) -> None:
        """Record the job and its state for the job view (and the task's link)."""
        status = JobStatus.SUBMITTED if progress is None or not progress.finished else progress.status
        done, failed = (0, 0) if progress is None else (progress.done, progress.failed)
        PyWrenJobLink.record(context, ref, self.pywren_conn_id, status, done, failed)

    def on_kill(self) -> None:
        """Cancel the activations of the job that have not finished (where the backend can)."""
        ref = self._job_ref
        if ref is None:
            return
        executor = PyWrenHook(pywren_conn_id=self.pywren_conn_id).get_conn(executor_id=ref.executor_id)
        try:
            cancelled = sum(executor.compute.cancel(ref.executor_id, job_id) for job_id in ref.job_ids)
        finally:
            executor.close()
        self.log.warning("task killed: cancelled %d pending activation(s) of %s job %s", cancelled, self.kind, ref.name)

    # ------------------------------------------------------------- re-attach
    def _reattach(self, executor: FunctionExecutor) -> tuple[JobRef | None, JobProgress | None]:
        """The reference and progress of an earlier try's job to continue with, or (None, None) to submit."""
        earlier = find_earlier_job(executor, self.kind, extra_env=self.extra_env)
        if earlier.verdict == Verdict.OTHER_KIND:
            self.log.warning(
                "executor %s holds jobs %s but no complete %s submission; submitting anew",
                executor.executor_id,
                ", ".join(earlier.job_ids),
                self.kind,
            )
        elif earlier.verdict == Verdict.SERVED:
            marker = earlier.done_marker or {}
            self.log.info(
                "%s job %s of executor %s already served a successful try (%s); this run submits a new job",
                self.kind,
                earlier.name,
                executor.executor_id,
                ", ".join(f"{k} {marker[k]}" for k in ("try_number", "finished_at") if k in marker),
            )
        if any(earlier.invoked):
            self.log.warning(
                "the earlier try stopped while invoking %s job %s: invoked the %s call(s) it never invoked",
                self.kind,
                earlier.name,
                " + ".join(str(count) for count in earlier.invoked),
            )
        progress = earlier.progress
        if earlier.verdict == Verdict.FAILED and progress is not None:
            self.log.warning(
                "an earlier try's %s job %s finished with %d failed call(s) of %d: running all %d call(s) again as a new job",
                self.kind,
                earlier.name,
                progress.failed,
                progress.total,
                progress.total,
            )
        if earlier.ref is None or progress is None:  # nothing to continue with: submit
            return None, None
        self.log.info(
            "re-attached to %s job %s of executor %s submitted by an earlier try (%s); %s",
            self.kind,
            earlier.name,
            executor.executor_id,
            progress.line(),
            "only the calls it never invoked were invoked" if any(earlier.invoked) else "nothing is invoked again",
        )
        return earlier.ref, progress

    def _mark_done(
        self, executor: FunctionExecutor, ref: JobRef, context: Context, result: dict[str, Any]
    ) -> dict[str, Any]:
        """Record next to the job that this try succeeded with it (a later run submits anew); return ``result``."""
        self._lineage = lineage.job_lineage(executor, ref, self.outputs)
        ti = context["ti"]
        identity = {name: getattr(ti, name) for name in ("dag_id", "run_id", "task_id", "map_index", "try_number")}
        mark_done(executor, ref, identity)
        return result

    # ------------------------------------------------------------------ wait
    def wait_for_job(self, watcher: JobWatcher) -> JobProgress:
        """Block until every call finished, logging a progress line every few seconds.

        The monitor paces the polls: from ``pywren.monitor_interval`` up to ``poll_interval`` while
        no call finishes, or until a RabbitMQ notice arrives.
        """
        self.log.info(
            "waiting for %s job %s, following it by %s",
            self.kind,
            watcher.job_ref.name,
            watcher.executor.job_monitor.name,
        )
        progress_log = ProgressLog(self.progress_log_seconds, self.quiet_log_seconds)

        def log_progress(progress: JobProgress) -> None:
            if progress_log.due(progress):
                self.log.info("%s", progress.line())

        return watcher.wait(longest=self.poll_interval, on_poll=log_progress)

    def _complete(self, watcher: JobWatcher, progress: JobProgress) -> dict[str, Any]:
        """The final reference, or the first failed call's exception (with the remote traceback)."""
        ref = watcher.job_ref
        if progress.failed:
            self._raise_failure(watcher, progress)
        result = ref.with_progress(JobStatus.SUCCESS, progress.done, 0).to_xcom()
        if self.return_results:
            values = watcher.results()
            try:
                json.dumps(values)
            except (TypeError, ValueError) as exc:
                raise PyWrenError(
                    f"return_results=True needs JSON-serializable results for XCom, but {exc}; "
                    "leave return_results off and read them with PyWrenHook().get_results(reference)"
                ) from None
            result["results"] = values
        self.log.info(
            "%s job %s succeeded: %d call(s); results under %s", self.kind, ref.name, progress.total, ref.location
        )
        return result

    def _raise_failure(self, watcher: JobWatcher, progress: JobProgress) -> None:
        failed = [f for f in watcher.futures if f.status == ERROR]
        ref = watcher.job_ref
        self.log.error("%d of %d call(s) of %s job %s failed", len(failed), progress.total, self.kind, ref.name)
        for future in failed[:MAX_ERRORS_LOGGED]:
            error = future.error or {}
            self.log.error(
                "job %s call %s failed: %s: %s",
                future.job_id,
                future.call_id,
                error.get("type", "Exception"),
                error.get("message", ""),
            )
        first = failed[0]
        traceback_text = (first.error or {}).get("traceback")
        if traceback_text:
            self.log.error(
                "remote traceback of job %s call %s:\n%s", first.job_id, first.call_id, traceback_text.rstrip()
            )
        raise first.exception() or PyWrenError(f"call {first.call_id} of job {first.job_id} failed")

    # ------------------------------------------------------------ lineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input datasets of a map over data and the declared outputs the job wrote (OpenLineage provider)."""
        inputs, outputs = self._lineage or ([], [])
        return lineage.operator_lineage(inputs, outputs)

    # --------------------------------------------------------------- helpers
    def _call_options(self, executor: FunctionExecutor) -> dict[str, Any]:
        pw = executor.config["pywren"]
        return {
            "extra_env": self.extra_env,
            "extra_meta": self.extra_meta,
            "timeout": pw["runtime_timeout"] if self.timeout is None else self.timeout,
            "exclude_modules": self.exclude_modules,
            "include_modules": self.include_modules,
            "extra_args": self.extra_args,
        }


def _with_progress(ref: JobRef, progress: JobProgress | None) -> dict[str, Any]:
    """The XCom of a job just submitted or re-attached to: ``submitted`` unless it already finished."""
    if progress is None:
        return ref.with_progress(JobStatus.SUBMITTED, 0, 0).to_xcom()
    status = progress.status if progress.finished else JobStatus.SUBMITTED
    return ref.with_progress(status, progress.done, progress.failed).to_xcom()


def _chunking(chunk_size: Any, chunk_n: Any, reducer_one_per_object: bool = False) -> dict[str, Any]:
    """The data keywords that were given (rendered templates of numbers become ints)."""
    options: dict[str, Any] = {}
    for name, value in (("chunk_size", chunk_size), ("chunk_n", chunk_n)):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if value is not None:
            options[name] = value
    if reducer_one_per_object:
        options["reducer_one_per_object"] = reducer_one_per_object
    return options


def _memory(value: int | None, executor: FunctionExecutor) -> int:
    return executor.config["pywren"]["runtime_memory"] if value is None else value


class PyWrenCallAsyncOperator(BasePyWrenOperator):
    """Run ``func(data)`` once as a PyWren call.

    ``data`` (templated) is the call's argument; a dict whose keys are all parameter names
    of ``func`` is passed as keyword arguments. The reference of an upstream single-result
    job (call_async, map_reduce), or such references among a dict's values, are replaced by
    the upstream values inside the call. XCom gets the job reference (one result).

    :param func: the function (module-level, or defined in the DAG file).
    :param data: its argument.
    :param runtime_memory: memory of the call in MB (default: the connection's).

    See :class:`BasePyWrenOperator` for the other parameters, and the module docs for retries.
    """

    template_fields: Sequence[str] = (*BasePyWrenOperator.template_fields, "data")
    kind = CALL_ASYNC

    def __init__(self, *, func: Callable, data: Any = None, runtime_memory: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.func = func
        self.data = data
        self.runtime_memory = runtime_memory

    def submit(self, executor: FunctionExecutor, context: Context) -> list[ResponseFuture]:
        future = executor.call_async(
            self.func,
            resolve_data(self.data),
            runtime_memory=_memory(self.runtime_memory, executor),
            **self._call_options(executor),
        )
        return [future]


class PyWrenMapOperator(BasePyWrenOperator):
    """Run ``map_function`` once per item of ``iterdata``, in parallel.

    ``iterdata`` (templated) is a list, an XComArg, or the job reference of an upstream
    PyWren task: then each call receives one upstream result, read from storage inside
    the call. XCom gets the job reference; its results follow ``iterdata``'s order.
    When ``map_function`` declares ``obj`` or ``data_stream``, ``iterdata`` names data
    instead: ``'cos://bucket/logs/{{ ds }}/'``, keys, URLs, ``ObjectStoragePath``s, or a list
    of keys from an upstream task; ``chunk_size``/``chunk_n`` split each object.

    :param map_function: the function (module-level, or defined in the DAG file).
    :param iterdata: one item per call.
    :param runtime_memory: memory per call in MB (default: the connection's).
    :param chunk_size: over data: bytes per call (chunks end at line ends).
    :param chunk_n: over data: calls per object.

    See :class:`BasePyWrenOperator` for the other parameters, and the module docs for retries.
    """

    template_fields: Sequence[str] = (*BasePyWrenOperator.template_fields, "iterdata", "chunk_size", "chunk_n")
    kind = MAP

    def __init__(
        self,
        *,
        map_function: Callable,
        iterdata: Any,
        runtime_memory: int | None = None,
        chunk_size: int | None = None,
        chunk_n: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.map_function = map_function
        self.iterdata = iterdata
        self.runtime_memory = runtime_memory
        self.chunk_size = chunk_size
        self.chunk_n = chunk_n

    def submit(self, executor: FunctionExecutor, context: Context) -> list[ResponseFuture]:
        return executor.map(
            self.map_function,
            resolve_iterdata(self.iterdata),
            runtime_memory=_memory(self.runtime_memory, executor),
            **self._call_options(executor),
            **_chunking(self.chunk_size, self.chunk_n),
        )


class PyWrenMapReduceOperator(BasePyWrenOperator):
    """Map ``map_function`` over ``iterdata``, then reduce the list of map results with ``reduce_function``.

    The reducer is invoked right away and waits for the maps inside its activation; with
    ``reducer_wait_local=True`` the task waits for the maps, then invokes it. XCom gets the
    job reference; its one result is the reducer's (``job_ids`` lists map and reducer).
    A retry interrupted between the map and the reducer submission runs both again.

    :param map_function: the map function.
    :param iterdata: one item per map call (a list, an XComArg or an upstream job reference; templated).
    :param reduce_function: called with the list of map results, in ``iterdata`` order.
    :param reducer_wait_local: wait for the maps in the task instead of in the reducer.
    :param map_runtime_memory: memory per map call in MB (default: the connection's).
    :param reduce_runtime_memory: memory of the reducer in MB (default: the connection's).
    :param chunk_size: over data (see :class:`PyWrenMapOperator`): bytes per map call.
    :param chunk_n: over data: map calls per object.
    :param reducer_one_per_object: over data: one reducer per object; ``result_keys`` in object order.

    See :class:`BasePyWrenOperator` for the other parameters, and the module docs for retries.
    """

    template_fields: Sequence[str] = (*BasePyWrenOperator.template_fields, "iterdata", "chunk_size", "chunk_n")
    kind = MAP_REDUCE

    def __init__(
        self,
        *,
        map_function: Callable,
        iterdata: Any,
        reduce_function: Callable,
        reducer_wait_local: bool = False,
        map_runtime_memory: int | None = None,
        reduce_runtime_memory: int | None = None,
        chunk_size: int | None = None,
        chunk_n: int | None = None,
        reducer_one_per_object: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.chunk_size = chunk_size
        self.chunk_n = chunk_n
        self.reducer_one_per_object = reducer_one_per_object
        self.map_function = map_function
        self.iterdata = iterdata
        self.reduce_function = reduce_function
        self.reducer_wait_local = reducer_wait_local
        self.map_runtime_memory = map_runtime_memory
        self.reduce_runtime_memory = reduce_runtime_memory

    def submit(self, executor: FunctionExecutor, context: Context) -> list[ResponseFuture]:
        return executor.map_reduce(
            self.map_function,
            resolve_iterdata(self.iterdata),
            self.reduce_function,
            reducer_wait_local=self.reducer_wait_local,
            map_runtime_memory=_memory(self.map_runtime_memory, executor),
            reduce_runtime_memory=_memory(self.reduce_runtime_memory, executor),
            **self._call_options(executor),
            **_chunking(self.chunk_size, self.chunk_n, self.reducer_one_per_object),
        )
