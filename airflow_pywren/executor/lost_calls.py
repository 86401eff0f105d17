"""Lost calls: activations that ended, or will never run, without their call writing a final status.

The compute backend tells which activations ended (``ComputeBackend.lost_activations``);
this module turns that into failed calls recorded in storage, so that every observer
(another process, a rescheduled sensor, a trigger) reaches the same verdict. A process that
did not submit the job reads the activation ids from the job's invocation record
(:mod:`.invocation`), which also tells it the calls a stopped submitter never invoked.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.callstore import call_store_for
from airflow_pywren.executor.compute import ComputeBackend
from airflow_pywren.executor.compute.base import PendingCall
from airflow_pywren.executor.errors import (
    ActivationLostError,
    CallNeverInvokedError,
    StorageError,
    StorageKeyNotFound,
)
from airflow_pywren.executor.future import RUNNING, ResponseFuture
from airflow_pywren.executor.invocation import InvocationProgress, read_progress, uninvoked_calls
from airflow_pywren.executor.signing import Signer
from airflow_pywren.executor.storage import StorageBackend, storage_spec
from airflow_pywren.executor.worker import handler

logger = logging.getLogger(__name__)

CHECK_SHARE = 0.05
"""The share of the client's time lost-call checks may take."""


class LostCalls:
    """Records activation ids at submit, and fails the calls whose activation was lost."""

    def __init__(
        self,
        storage: StorageBackend,
        compute: ComputeBackend,
        grace: float,
        signer: Signer | None = None,
        invocation_grace: float = 60.0,
    ) -> None:
        self.storage = storage
        self.signer = signer
        self.compute = compute
        self.grace = grace
        """Seconds past its timeout after which a started call with no final status is lost."""
        self.invocation_grace = invocation_grace
        """Seconds without news from a job's invoking process after which it counts as stopped."""
        self._next_check = 0.0
        self._invocations: dict[tuple[str, str], dict[str, Any]] = {}  # jobs attached to while being invoked

    def follow_invocation(self, manifest: dict[str, Any], progress: InvocationProgress) -> None:
        """Check the calls of this job, attached to before its invocation was complete, for never-invoked ones."""
        if not progress.complete:
            self._invocations[(manifest["executor_id"], manifest["job_id"])] = manifest

    def read_job_object(self, executor_id: str, job_id: str, name: str) -> dict[str, Any] | None:
        """A small JSON object of a job (``keys.ACTIVATIONS``); None if there is none."""
        try:
            return json.loads(self.storage.get(keys.job_key(self.storage.prefix, executor_id, job_id, name)))
        except StorageKeyNotFound:
            return None

    def attach_ids(
        self, executor_id: str, job_id: str, futures: Sequence[ResponseFuture], progress: InvocationProgress
    ) -> None:
        """Give the futures of a job submitted elsewhere the activation ids its invocation record holds.

        The calls a remote invoker started have theirs in ``keys.ACTIVATIONS``, once it has
        invoked them all (as have jobs stored before invocation records existed).
        """
        activations = progress.activations
        if not activations and progress.complete:
            activations = self.read_job_object(executor_id, job_id, keys.ACTIVATIONS) or {}
        for future in futures:
            if activations.get(future.call_id):
                future.set_invocation(activations[future.call_id])
            elif progress.invoker_id:
                future.set_invocation(None, progress.invoker_id)

    def fail(self, futures: Sequence[ResponseFuture]) -> int:
        """Record as failed the calls whose activation vanished, so that waiting for them ends.

        A call is lost when the compute backend reports that its activation ended, or will
        never run, without the call writing a final status (OpenWhisk's activation record of
        a crash or a platform limit, a dead localhost runner), or when it started more than
        its timeout plus ``pywren.lost_call_grace`` seconds ago and has no final status.
        Calls a remote invoker started get their activation ids once its activation has
        ended (it stores them; its own activation is checked like a call's); a call it did not
        list, that has not started, was never invoked and is lost too, with the invoker's
        end as the reason.
        The status is read again first, and the failure is recorded in storage, so every
        observer (another process, a rescheduled sensor) reaches the same verdict.
        Checks take at most ``CHECK_SHARE`` of the client's time (a check of many pending calls
        runs less often; each compute backend also spaces its own requests by its
        ``lost_check_interval``); between them this returns 0.
        """
        started_at = time.monotonic()
        if started_at < self._next_check:
            return 0
        try:
            return self._fail(futures)
        finally:
            cost = time.monotonic() - started_at
            self._next_check = time.monotonic() + cost / CHECK_SHARE

    def _fail(self, futures: Sequence[ResponseFuture]) -> int:
        grace = self.grace
        now = time.time()
        pending = [f for f in futures if not f.finished]
        calls = [
            PendingCall(
                f.executor_id,
                f.job_id,
                f.call_id,
                f.activation_id,
                f.host_submit_time,
                f.status == RUNNING,
                f.worker_pid,
                read_start=functools.partial(self.read_start, f),
            )
            for f in pending
        ]
        invoked_by: dict[str, list[ResponseFuture]] = {}  # remote invoker activation -> its calls without an id
        for future in pending:
            if future.invoker_id and not future.activation_id:
                invoked_by.setdefault(future.invoker_id, []).append(future)
        invokers = [
            PendingCall(waiting[0].executor_id, waiting[0].job_id, "", invoker, waiting[0].host_submit_time, False)
            for invoker, waiting in invoked_by.items()
        ]
        reasons = self.compute.lost_activations(calls + invokers) if calls else {}
        lost: list[tuple[ResponseFuture, str]] = []
        never_invoked = self._uninvoked(pending)
        for future, call in zip(pending, calls):
            if future.call_id in never_invoked.get((future.executor_id, future.job_id), {}):
                continue
            reason = reasons.get(call.activation_id) if call.activation_id else None
            if reason is not None:
                future.set_invocation(call.activation_id)
                lost.append(
                    (
                        future,
                        f"call {future.call_id} of job {future.job_id} wrote no final status: its "
                        f"activation was lost. Activation {call.activation_id}: {reason}",
                    )
                )
            elif self._overdue(future, now, grace):
                lost.append(
                    (
                        future,
                        (
                            f"call {future.call_id} of job {future.job_id} wrote no final status within its timeout "
                            f"({future.timeout:g} s) plus {grace:g} s: its activation was lost (killed by the platform, "
                            "out of memory, or its runner died)"
                        ),
                    )
                )
        for invoker, waiting in invoked_by.items():
            if invoker in reasons:
                counted = {id(f) for f, _ in lost}
                uncounted = [f for f in waiting if id(f) not in counted]
                if uncounted:  # the rest may all be lost already, by their own activation's record
                    lost.extend(self._never_invoked(invoker, reasons[invoker], uncounted))
        failures: list[tuple[ResponseFuture, ActivationLostError]] = [(f, ActivationLostError(m)) for f, m in lost]
        uninvoked = 0
        for future in pending:
            reason = never_invoked.get((future.executor_id, future.job_id), {}).get(future.call_id)
            if reason is not None:  # not recorded: every observer derives it, and a retry may still invoke the call
                never = CallNeverInvokedError(reason)
                future.set_failure(handler.failure_status(future.call_id, never), never)
                uninvoked += 1
        if uninvoked:
            logger.error("%d call(s) never invoked: failed", uninvoked)
        for future, error in failures:
            if call_store_for(self.storage).read_status(future.executor_id, future.job_id, future.call_id) is not None:
                continue  # it finished after all: the next refresh reads its status
            payload = {
                "storage": storage_spec(self.storage),
                "prefix": self.storage.prefix,
                "executor_id": future.executor_id,
                "job_id": future.job_id,
                "call_id": future.call_id,
                "activation_id": future.activation_id,
                "host_submit_time": future.host_submit_time,
                "extra_meta": future.extra_meta,
                "signing": self.signer.payload() if self.signer else None,
            }
            try:
                future.set_final(handler.record_failure(payload, error, start_time=future.start_time))
            except (OSError, StorageError) as exc:  # storage is down: the next check records it
                logger.warning(
                    "could not record lost call %s of job %s yet (%s); will retry", future.call_id, future.job_id, exc
                )
        recorded = [f for f, _ in failures if f.finished]
        if recorded:
            logger.error("%d call(s) lost: recorded as failed", len(recorded))
        return len(recorded) + uninvoked

    def _uninvoked(self, pending: Sequence[ResponseFuture]) -> dict[tuple[str, str], dict[str, str]]:
        """Of the pending calls of jobs attached to while being invoked, those never invoked, by job, with why.

        The invocation record is read again at every check: the process invoking may have
        gone on, finished, or (an Airflow retry) taken over.
        """
        found: dict[tuple[str, str], dict[str, str]] = {}
        if not self._invocations:
            return found
        by_job: dict[tuple[str, str], list[str]] = {}
        for future in pending:
            if (future.executor_id, future.job_id) in self._invocations:
                by_job.setdefault((future.executor_id, future.job_id), []).append(future.call_id)
        for job, waiting in by_job.items():
            manifest = self._invocations[job]
            try:
                progress = read_progress(self.storage, *job, manifest)
                if progress.complete:
                    del self._invocations[job]
                    continue
                if progress.stopped(self.invocation_grace):
                    verdict = uninvoked_calls(
                        call_store_for(self.storage), self.compute, manifest, progress, self.invocation_grace, waiting
                    )
                    found[job] = verdict.never_invoked
            except (OSError, StorageError, ValueError) as exc:
                logger.warning("could not check the invocation of job %s (next check tries again): %s", job[1], exc)
        return found

    def _never_invoked(
        self, invoker: str, reason: str, waiting: list[ResponseFuture]
    ) -> list[tuple[ResponseFuture, str]]:
        """Once the remote invoker's activation has ended: give its calls the activation ids it
        stored, and return those it never invoked (not listed, not started) with why."""
        executor_id, job_id = waiting[0].executor_id, waiting[0].job_id
        try:
            listed = self.read_job_object(executor_id, job_id, keys.ACTIVATIONS)
        except (OSError, StorageError, ValueError) as exc:
            logger.warning("could not read the activation ids of job %s (next check tries again): %s", job_id, exc)
            return []
        never: list[tuple[ResponseFuture, str]] = []
        for future in waiting:
            if future.finished or future.activation_id:
                continue
            listed_id = (listed or {}).get(future.call_id)
            if listed_id:
                future.set_invocation(listed_id)
                continue
            if self.read_start(future) is not None:
                continue  # it started, so it was invoked: its start status gave its activation id
            how = (
                "did not list it among the calls it invoked"
                if listed is not None
                else "ended without recording the calls it invoked, and this call has not started"
            )
            never.append(
                (
                    future,
                    f"call {future.call_id} of job {job_id} was never invoked: the remote invoker "
                    f"activation {invoker} {how}. Activation {invoker}: {reason}",
                )
            )
        return never

    def _overdue(self, future: ResponseFuture, now: float, grace: float) -> bool:
        """True when a running call started more than its timeout plus ``grace`` seconds ago."""
        if (
            future.status != RUNNING
            or not future.timeout
            or now - (future.host_submit_time or now) <= future.timeout + grace
        ):
            return False
        start_time = (self.read_start(future) or {}).get("start_time")
        return start_time is not None and now - start_time > future.timeout + grace

    def read_start(self, future: ResponseFuture) -> dict[str, Any] | None:
        """The call's start status (read from storage once, then kept in its stats), or None."""
        if future.start_time is None:
            start = call_store_for(self.storage).read_start(future.executor_id, future.job_id, future.call_id)
            if start is None:
                return None
            future.set_running(start)
            future.take_start(start)
        return future.stats
