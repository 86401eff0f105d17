"""``ResponseFuture``: the handle of one call, shaped like ``concurrent.futures.Future``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor import keys, serialization
from airflow_pywren.executor.errors import FunctionError, RemoteTraceback
from airflow_pywren.executor.jobref import CallStatus
from airflow_pywren.executor.signing import SignatureError

if TYPE_CHECKING:
    from airflow_pywren.executor.executor import FunctionExecutor

PENDING, RUNNING, SUCCESS, ERROR = CallStatus.PENDING, CallStatus.RUNNING, CallStatus.SUCCESS, CallStatus.ERROR
_STAT_FIELDS = ("activation_id", "host_submit_time", "start_time", "end_time", "duration", "worker_host", "worker_pid")
_ALL_STATS = (*_STAT_FIELDS, "invoker_id")
_WORKER_PIDS: dict[int, int] = {}


class ResponseFuture:
    """One call of a job. ``status`` moves pending → running → success | error."""

    # a map keeps one future per call in memory: slots keep each a few hundred bytes
    __slots__ = (
        "_executor",
        "executor_id",
        "job_id",
        "call_id",
        "kind",
        "produce_output",
        "status",
        "extra_meta",
        "error",
        "_activation_id",
        "_host_submit_time",
        "_start_time",
        "_end_time",
        "_duration",
        "_worker_host",
        "_worker_pid",
        "_invoker_id",
        "timeout",
        "read",
        "_has_value",
        "_value",
        "storage_location",
        "__weakref__",
    )

    def __init__(
        self,
        executor: FunctionExecutor,
        executor_id: str,
        job_id: str,
        call_id: str,
        kind: str,
        host_submit_time: float,
        extra_meta: dict[str, Any] | None = None,
        timeout: float | None = None,
        produce_output: bool = True,
    ) -> None:
        self._executor = executor
        self.executor_id = executor_id
        self.job_id = job_id
        self.call_id = call_id
        self.kind = kind
        self.produce_output = produce_output
        """False for the map calls of a map_reduce: their outputs go to the reducer, not to get_result()."""
        self.status: CallStatus = PENDING
        self.extra_meta = extra_meta if extra_meta is not None else {}  # the job's copy, shared by its calls
        self.error: dict[str, Any] | None = None
        self._host_submit_time: float | None = host_submit_time
        self._activation_id: str | None = None
        self._start_time: float | None = None
        self._end_time: float | None = None
        self._duration: float | None = None
        self._worker_host: str | None = None
        self._worker_pid: int | None = None
        self._invoker_id: str | None = None
        self.timeout = timeout
        """The call's timeout in seconds, as submitted (lost-call checks)."""
        self.read = False
        self._has_value = False
        self._value: Any = None
        self.storage_location: str | None = None
        """Where the call's records live, once the future travelled without its executor."""

    # --- travelling as a call's return value (composition) ----------------------
    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the executor; ``attach_executor`` gives it one on the other side."""
        skipped = ("_executor", "_value", "_has_value", "__weakref__")
        state = {k: getattr(self, k) for k in self.__slots__ if k not in skipped and hasattr(self, k)}
        state["storage_location"] = (
            self._executor.storage.location() if self._executor is not None else self.storage_location
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in {**state, "_executor": None, "_value": None, "_has_value": False}.items():
            setattr(self, name, value)

    def has_executor(self) -> bool:
        return self._executor is not None

    def attach_executor(self, executor: FunctionExecutor) -> None:
        """For executors; not for users: follow a future that was unpickled (returned by a call)."""
        self._executor = executor

    # --- state -----------------------------------------------------------------
    @property
    def output_key(self) -> str:
        """Where the call's result is stored."""
        return keys.call_key(
            self._executor.storage.prefix, self.executor_id, self.job_id, self.call_id, keys.OUTPUT_OBJECT
        )

    @property
    def finished(self) -> bool:
        """True once a final status is known, without asking storage."""
        return self.status.is_terminal()

    def done(self) -> bool:
        """True if the call has finished (asks storage once when not yet known)."""
        if not self.finished:
            self._executor.job_monitor.refresh([self])
        return self.finished

    def running(self) -> bool:
        return self.status == RUNNING

    def cancelled(self) -> bool:
        """True if the call was stopped by ``cancel()`` before it finished."""
        return self.status == ERROR and (self.error or {}).get("type") == "CallCancelledError"

    # --- state changes: for backends and monitors; not for users ---------------
    def set_running(self, start: dict[str, Any] | None = None) -> None:
        """For backends and monitors; not for users: the call started (``start``: its start status, if read).

        A future that is already running or finished does not move back.
        """
        if self.status == PENDING:
            self.status = RUNNING
            if start:
                self._take_stats(start)

    def set_final(self, status: dict[str, Any]) -> None:
        """For backends and monitors; not for users: the call's final status record (success or error)."""
        self._take_stats(status)
        self.extra_meta = status.get("extra_meta") or self.extra_meta
        self.error = status.get("error")
        self.status = CallStatus(status["status"])

    def take_start(self, start: dict[str, Any]) -> None:
        """For monitors and readers; not for users: the stats of the call's start record, read after it started."""
        if not self.finished:
            self._take_stats(start)

    def set_invocation(self, activation_id: str | None, invoker_id: str | None = None) -> None:
        """For executors; not for users: the compute backend's activation id of the call, and its remote invoker's."""
        self._activation_id = activation_id or self._activation_id
        self._invoker_id = invoker_id or self._invoker_id

    def _take_stats(self, record: dict[str, Any]) -> None:
        for name in _STAT_FIELDS:
            value = record.get(name)
            if value is None or (name == "activation_id" and value == self._activation_id):
                continue  # unknown, or the one string already held
            if name == "worker_host" and isinstance(value, str):
                value = sys.intern(value)  # one string for all calls of a host
            elif name == "worker_pid" and isinstance(value, int):
                if len(_WORKER_PIDS) > 4096:
                    _WORKER_PIDS.clear()
                value = _WORKER_PIDS.setdefault(value, value)  # one int per worker process
            setattr(self, f"_{name}", value)
        if self._duration is not None and self._start_time is not None and self._end_time is not None:
            if self._duration == self._end_time - self._start_time:
                self._duration = None  # the property computes it: one float less per call

    def set_failure(self, status: dict[str, Any], exception: BaseException) -> None:
        """For executors: the call failed without running (nothing stored); ``exception()`` returns ``exception``."""
        self.set_final(status)
        self._value = exception
        self._has_value = True

    # --- stats, as attributes (None until known) ---------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        """The call's known stats as a new dict (``host_submit_time`` and ``activation_id`` always present)."""
        known = {name: getattr(self, f"_{name}") for name in _ALL_STATS}
        known["duration"] = self.duration
        return {k: v for k, v in known.items() if v is not None or k in ("host_submit_time", "activation_id")}

    @property
    def activation_id(self) -> str | None:
        """The compute backend's id of the call's activation (OpenWhisk activation, pod slot, ...)."""
        return self._activation_id

    @property
    def invoker_id(self) -> str | None:
        """The activation of the remote invoker that invoked the call, if one did."""
        return self._invoker_id

    @property
    def host_submit_time(self) -> float | None:
        """When the client submitted the call (epoch seconds)."""
        return self._host_submit_time

    @property
    def start_time(self) -> float | None:
        """When the function side started the call (epoch seconds)."""
        return self._start_time

    @property
    def end_time(self) -> float | None:
        """When the function side finished the call (epoch seconds)."""
        return self._end_time

    @property
    def duration(self) -> float | None:
        """Seconds the call's function ran."""
        if self._duration is None and self._start_time is not None and self._end_time is not None:
            return self._end_time - self._start_time
        return self._duration

    @property
    def worker_host(self) -> str | None:
        """The host name where the call ran."""
        return self._worker_host

    @property
    def worker_pid(self) -> int | None:
        """The process id of the worker that ran the call."""
        return self._worker_pid

    # --- results ---------------------------------------------------------------
    def result(self, timeout: float | None = None, throw_except: bool = True, **legacy_kwargs: Any) -> Any:
        """The call's return value; re-raises its exception with the remote traceback chained.

        ``throw_except=False`` (PyWren) returns None for a failed call instead of raising.
        """
        from airflow_pywren.executor import legacy

        legacy.take("result", legacy_kwargs, ("internal_storage",))
        self._wait(timeout)
        if self.status == ERROR:
            self.read = True  # reported: a later get_result() of the executor's unread calls skips it
            if not throw_except:
                return None
            raise self._exception_object()
        if not self._has_value:
            self.set_output(self._executor.calls.read_output(self.executor_id, self.job_id, self.call_id))
        self.read = True
        from airflow_pywren.executor.composition import attach_returned

        attach_returned(self._executor, self._value)
        return self._value

    def has_output(self) -> bool:
        """True once the call's output is in memory (read by ``result()`` or ``wait(download_results=True)``)."""
        return self._has_value

    def set_output(self, blob: bytes) -> None:
        """For executors; not for users: the call's output as stored, checked with the executor's key, unpickled."""
        self._value = serialization.loads_signed(
            blob, self._executor.signer, what=f"the output of call {self.call_id} of job {self.job_id}"
        )
        self._has_value = True

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's exception, or None if it succeeded."""
        self._wait(timeout)
        return self._exception_object() if self.status == ERROR else None

    def _wait(self, timeout: float | None) -> None:
        if not self.finished:
            from airflow_pywren.executor.wait import ALL_COMPLETED

            self._executor.wait([self], return_when=ALL_COMPLETED, timeout=timeout)
        if not self.finished:
            raise TimeoutError(f"call {self.call_id} of job {self.job_id} did not finish within {timeout} s")

    def _exception_object(self) -> BaseException:
        if self._has_value and isinstance(self._value, BaseException):  # set_failure
            return self._value
        error = self.error or {}
        traceback_text = error.get("traceback", "")
        exc: BaseException | None = None
        try:
            exc = serialization.loads_signed(
                self._executor.calls.read_output(self.executor_id, self.job_id, self.call_id),
                self._executor.signer,
                what=f"the exception of call {self.call_id} of job {self.job_id}",
            )
        except SignatureError:
            raise
        except Exception:  # missing (StorageKeyNotFound) or not unpicklable here
            exc = None
        if not isinstance(exc, Exception):  # never re-raise SystemExit & co. in the client
            exc = FunctionError(error.get("type", "Exception"), error.get("message", ""), traceback_text)
        exc.__cause__ = RemoteTraceback(traceback_text)
        return exc

    def __repr__(self) -> str:
        return f"<ResponseFuture {self.executor_id}/{self.job_id}/{self.call_id} {self.status}>"
