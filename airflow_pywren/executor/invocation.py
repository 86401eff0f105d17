"""Invocation progress: which calls of a job were invoked, so that a process attaching later can tell.

A job's manifest is stored before its calls are invoked; invoking them can take a while
(the whole invocation phase of a large or throttled map on OpenWhisk), and the submitting
process may die during it. The submitter therefore keeps ``invocation.json`` next to the
manifest (``keys.INVOCATION``)::

    {"calls": 1000, "invoked": 400, "invoking": 600, "complete": false, "updated": 1764000000.0}

and, once complete, the calls' activation ids (``"activations": {call_id: activation_id}``, with
consecutive ids packed into ``"activation_runs"``: :func:`pack_activations`)
or the remote invoker's (``"invoker_id"``, whose own activation stores the calls' ids in
``keys.ACTIVATIONS``), so that an attaching process can check for lost activations too.

``calls[:invoked]`` were accepted by the compute backend, ``calls[invoked:invoking]`` were
being invoked when the submitter last wrote, and the rest not yet. While it invokes, the
submitter rewrites the record at least every ``heartbeat`` seconds; once every call is
invoked (or refused, which records the call as failed) it writes ``complete``. A job with
a manifest and no record is still invoking its first batch.

A record that is not complete and was not rewritten for ``pywren.invocation_grace``
seconds means the submitter stopped: its calls past ``invoking`` were never invoked, and
those of the batch in flight may or may not have been (the compute backend may tell,
:meth:`ComputeBackend.invoked_calls`). :mod:`.lost_calls` reports never-invoked calls as
failed; :meth:`FunctionExecutor.invoke_missing` (an Airflow retry) invokes them instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.callstore.base import CallStore
from airflow_pywren.executor.compute.base import ComputeBackend
from airflow_pywren.executor.errors import StorageError, StorageKeyNotFound
from airflow_pywren.executor.storage import StorageBackend
from airflow_pywren.executor.worker.retrying import put_retrying

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvocationProgress:
    """How far the invocation of a job's calls got, as last recorded by the process invoking them."""

    calls: int
    invoked: int
    """``calls[:invoked]`` were accepted by the compute backend."""
    invoking: int
    """``calls[invoked:invoking]`` were being invoked when last recorded; the rest were not yet."""
    complete: bool
    updated: float
    """Wall-clock time of the last record (the manifest's submit time when there is none)."""
    activations: dict[str, str] = field(default_factory=dict)
    """Call id -> activation id, once complete (calls a remote invoker started have none)."""
    invoker_id: str | None = None
    """The activation id of the remote invoker that invoked the calls, if one did."""

    @classmethod
    def finished(
        cls, calls: int, activations: dict[str, str] | None = None, invoker_id: str | None = None
    ) -> InvocationProgress:
        return cls(calls, calls, calls, True, time.time(), activations or {}, invoker_id)

    def stopped(self, grace: float, now: float | None = None) -> bool:
        """True when the invocation is incomplete and was not recorded for ``grace`` seconds."""
        return not self.complete and (time.time() if now is None else now) - self.updated > grace

    def to_json(self) -> bytes:
        record: dict[str, Any] = {
            "calls": self.calls,
            "invoked": self.invoked,
            "invoking": self.invoking,
            "complete": self.complete,
            "updated": self.updated,
        }
        if self.complete:
            runs, others = pack_activations(self.activations)
            record.update(activation_runs=runs, activations=others, invoker_id=self.invoker_id)
        return json.dumps(record).encode()


def pack_activations(activations: dict[str, str]) -> tuple[list[list[Any]], dict[str, str]]:
    """``activations`` as runs ``[first call index, count, prefix, first number]`` of consecutive calls whose ids
    are one prefix and consecutive numbers (the localhost runner's ``local-<pid>-<n>``), and the other ids."""
    runs: list[list[Any]] = []
    others: dict[str, str] = {}
    last: list[Any] | None = None
    for call_id, activation_id in activations.items():
        head = activation_id.rstrip("0123456789")
        digits = activation_id[len(head) :]
        index = int(call_id) if call_id.isdigit() else -1
        if index < 0 or call_id != keys.call_id_of(index) or not digits or (digits[0] == "0" and len(digits) > 1):
            others[call_id] = activation_id
            continue
        number = int(digits)
        if last is not None and last[2] == head and index == last[0] + last[1] and number == last[3] + last[1]:
            last[1] += 1
        else:
            last = [index, 1, head, number, activation_id]
            runs.append(last)
    for run in runs:
        if run[1] == 1:  # a lone id (OpenWhisk's are random hex): as it is
            others[keys.call_id_of(run[0])] = run.pop()
    return [run[:4] for run in runs if run[1] > 1], others


def unpack_activations(runs: Sequence[Sequence[Any]], others: dict[str, str]) -> dict[str, str]:
    """The ``{call_id: activation_id}`` that :func:`pack_activations` packed."""
    activations = {
        keys.call_id_of(index + offset): f"{prefix}{number + offset}"
        for index, count, prefix, number in runs
        for offset in range(count)
    }
    activations.update(others)
    return activations


def read_progress(
    storage: StorageBackend, executor_id: str, job_id: str, manifest: dict[str, Any]
) -> InvocationProgress:
    """The recorded progress of a job's invocation (a job stored before records existed counts as invoked)."""
    calls = len(manifest["call_ids"])
    if "invoke_batch" not in manifest:
        return InvocationProgress(calls, calls, calls, True, float(manifest["host_submit_time"]))
    try:
        record = json.loads(storage.get(keys.job_key(storage.prefix, executor_id, job_id, keys.INVOCATION)))
    except StorageKeyNotFound:
        first = min(calls, int(manifest["invoke_batch"]) or calls)
        return InvocationProgress(calls, 0, first, False, float(manifest["host_submit_time"]))
    return InvocationProgress(
        calls,
        int(record["invoked"]),
        int(record["invoking"]),
        bool(record["complete"]),
        float(record["updated"]),
        unpack_activations(record.get("activation_runs") or (), dict(record.get("activations") or {})),
        record.get("invoker_id"),
    )


class InvocationRecorder:
    """Records a job's invocation progress while its calls are invoked, batch by batch.

    Use as a context manager around the invocation: a background thread rewrites the record
    every ``heartbeat`` seconds (so a slow batch does not look like a dead submitter);
    :meth:`invoking` announces the next batch, :meth:`complete` ends it. Writes that fail are
    logged and retried by the next write: the calls run anyway.
    """

    def __init__(
        self, storage: StorageBackend, executor_id: str, job_id: str, progress: InvocationProgress, heartbeat: float
    ) -> None:
        self.storage = storage
        self.key = keys.job_key(storage.prefix, executor_id, job_id, keys.INVOCATION)
        self.progress = progress
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> InvocationRecorder:
        self._thread = threading.Thread(target=self._beat, name="pywren-invocation-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def invoking(self, invoked: int, invoking: int) -> None:
        """``calls[:invoked]`` are invoked; ``calls[invoked:invoking]`` are invoked next."""
        self._write(replace(self.progress, invoked=invoked, invoking=invoking))

    def complete(
        self, retry_seconds: float, activations: dict[str, str] | None = None, invoker_id: str | None = None
    ) -> None:
        """Every call was invoked (or refused and recorded as failed), with these activation ids; the write
        is retried for up to ``retry_seconds`` (``pywren.write_retry_seconds``), since an attaching process
        that reads an old record would take the calls of later batches for never invoked."""
        self._stop.set()
        with self._lock:
            progress = InvocationProgress.finished(self.progress.calls, activations, invoker_id)
            try:
                put_retrying(self.storage, self.key, progress.to_json(), retry_seconds, "the invocation record")
            except StorageError as exc:
                logger.error("%s; a process attaching to the job may report its calls as never invoked", exc)
            self.progress = progress

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self._write(self.progress)

    def _write(self, progress: InvocationProgress) -> None:
        with self._lock:
            if self.progress.complete:
                return
            progress = replace(progress, updated=time.time())
            try:
                self.storage.put(self.key, progress.to_json())
            except (OSError, StorageError) as exc:
                logger.warning("could not record the invocation progress (%s): %s", self.key, exc)
            self.progress = progress


@dataclass
class Uninvoked:
    """Which calls of a job whose submitter stopped were never invoked, and which cannot be told yet."""

    never_invoked: dict[str, str]
    """Call id -> why it was never invoked (a reason for the person reading the failure)."""
    undecided: list[str]
    """Calls of the batch in flight that have not started and the compute backend cannot vouch for."""


def uninvoked_calls(
    calls: CallStore,
    compute: ComputeBackend,
    manifest: dict[str, Any],
    progress: InvocationProgress,
    grace: float,
    candidates: Sequence[str] | None = None,
    now: float | None = None,
) -> Uninvoked:
    """Of a job's calls (or of ``candidates``) past ``progress.invoked``, those its stopped submitter never
    invoked: they have not started (nor have a final status) and are past ``progress.invoking``, or were
    in the batch in flight and are neither held by the compute backend nor started ``2 * grace`` seconds
    after the submitter's last record (one scan of the job's statuses).

    The verdict is not recorded in storage: every observer derives it from the same records, and a
    retry (:meth:`FunctionExecutor.invoke_missing`) may still invoke the calls."""
    now = time.time() if now is None else now
    executor_id, job_id = manifest["executor_id"], manifest["job_id"]
    call_ids = manifest["call_ids"] if candidates is None else candidates
    waiting = [call_id for call_id in call_ids if int(call_id) >= progress.invoked]
    if not waiting:
        return Uninvoked({}, [])
    view = calls.job(executor_id, job_id)
    view.poll()
    unstarted = [call_id for call_id in waiting if not view.is_started(call_id)]
    silent = f"{now - progress.updated:.0f} s"
    stopped = (
        f"the process invoking job {job_id} stopped after invoking {progress.invoked} of its {progress.calls} "
        f"call(s) (no news from it for {silent}, more than pywren.invocation_grace={grace:g} s)"
    )
    never: dict[str, str] = {}
    in_flight: list[str] = []
    for call_id in unstarted:
        if int(call_id) >= progress.invoking:
            never[call_id] = f"call {call_id} of job {job_id} was never invoked: {stopped}"
        else:
            in_flight.append(call_id)
    undecided: list[str] = []
    if in_flight:
        held = compute.invoked_calls(executor_id, job_id, in_flight)
        for call_id in in_flight:
            if held is not None and call_id in held:
                continue  # queued: it runs
            if held is None and now - progress.updated <= 2 * grace:
                undecided.append(call_id)
                continue
            how = "is not held by" if held is not None else f"did not start within {2 * grace:g} s on"
            never[call_id] = (
                f"call {call_id} of job {job_id} was never invoked: {stopped} while invoking it, and it {how} "
                f"{compute.name}"
            )
    return Uninvoked(never, undecided)
