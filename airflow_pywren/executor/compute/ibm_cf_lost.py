"""Which pending OpenWhisk activations ended without their call writing a final status.

OpenWhisk stores an activation's record only once the activation has ended (a GET of a
running or queued one answers 404), with the platform's verdict in ``response``: ``status``
("success", "application error", "action developer error", "whisk internal error") and
``result.error`` (for instance "The action exceeded its time limits of 600000
milliseconds."). A crashed or killed activation therefore leaves a record but no status in
storage.

A check, at most once per ``ibm_cf.lost_check_interval`` seconds, finds which pending
activations have ended:

* by listing the ended activations of the job's action since its submission
  (``GET .../activations?name=&since=&limit=200&skip=``, newest first, summaries only),
  page by page until the pending activations are all found or the list ends: one request
  per 200 ended activations, however many calls are pending;
* or, when that takes fewer requests than the last listing did (a few calls left), by a
  GET of each pending activation's record.

Each activation found ended has its record read once (records never change), and its
``response`` becomes the reason given to the executor, which re-reads the call's status
before recording it as lost. Calls another process submitted are listed namespace-wide
since their submission; their activation ids come from their start status, read only for
started calls and only when an ended activation of unknown call ended abnormally. A remote
invoker's activation is checked like a call's: once it has ended, the executor reads the
activation ids it stored for its calls, and fails those it never invoked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor.compute.base import PendingCall
from airflow_pywren.executor.errors import ComputeError

if TYPE_CHECKING:
    from airflow_pywren.executor.compute.ibm_cf import OpenWhiskClient

logger = logging.getLogger(__name__)

PAGE_SIZE = 200  # OpenWhisk's largest list page
MAX_PAGES = 50  # per listing: 10,000 ended activations
SINCE_MARGIN = 60.0  # seconds of clock difference tolerated between this machine and OpenWhisk
SUCCESS_CODE = 0


class LostActivationFinder:
    """Rate-limited checks of pending activations against OpenWhisk's activation records."""

    def __init__(
        self, client: OpenWhiskClient, interval: float, job_actions: Mapping[tuple[str, str], tuple[str, int]]
    ) -> None:
        self.client = client
        self.interval = interval
        self.job_actions = job_actions  # (executor_id, job_id) -> (action, submit ms) of jobs invoked here
        self.checks = 0
        self._next_check = 0.0
        self._last_pages = 1
        self._reasons: dict[str, str] = {}

    def find(self, pending: Sequence[PendingCall]) -> dict[str, str]:
        """``{activation_id: reason}`` of the pending activations that ended; ``{}`` between checks."""
        checkable = [p for p in pending if p.activation_id or p.started]
        if not checkable or time.monotonic() < self._next_check:
            return {}
        self._next_check = time.monotonic() + self.interval
        self.checks += 1
        try:
            ended = self._ended(checkable)
            return {
                p.activation_id: self._reason(p.activation_id, ended[p.activation_id])
                for p in checkable
                if p.activation_id and p.activation_id in ended
            }
        except (ComputeError, ValueError, KeyError) as exc:
            logger.warning("could not check OpenWhisk for ended activations (next try in %g s): %s", self.interval, exc)
            return {}

    def _ended(self, pending: list[PendingCall]) -> dict[str, int | None]:
        """Ended activations (id -> statusCode) among or around the pending ones."""
        known = [p for p in pending if p.activation_id]
        unknown = [p for p in pending if not p.activation_id]
        if not unknown and len(known) <= self._last_pages:
            ended: dict[str, int | None] = {}
            for call in known:
                record = self.client.get_activation(str(call.activation_id))
                if record is not None:
                    self._reasons[str(call.activation_id)] = describe_end(record)
                    ended[str(call.activation_id)] = (record.get("response") or {}).get("statusCode")
            return ended
        ended = self._list_ended(pending, {str(p.activation_id) for p in known}, bool(unknown))
        known_ids = {p.activation_id for p in known}
        if unknown and any(code != SUCCESS_CODE and aid not in known_ids for aid, code in ended.items()):
            for call in unknown:  # an ended activation of a call this process did not invoke, maybe
                call.load_start()
        return ended

    def _list_ended(self, pending: list[PendingCall], wanted: set[str], unknown: bool) -> dict[str, int | None]:
        """List the ended activations of the pending calls' actions since their submission."""
        windows: dict[str | None, int] = {}
        for call in pending:
            action = self.job_actions.get((call.executor_id, call.job_id), (None, 0))[0]
            since = int(((call.submit_time or time.time()) - SINCE_MARGIN) * 1000)
            windows[action] = min(windows.get(action, since), since)
        if None in windows:  # a job invoked elsewhere: its action is not known here, list the namespace
            windows = {None: min(windows.values())}
        ended: dict[str, int | None] = {}
        pages = 0
        for action, since in windows.items():
            for page_number in range(MAX_PAGES):
                page = self.client.list_activations(
                    name=action, since=since, limit=PAGE_SIZE, skip=page_number * PAGE_SIZE
                )
                pages += 1
                ended.update({entry["activationId"]: entry.get("statusCode") for entry in page})
                if len(page) < PAGE_SIZE or (not unknown and wanted <= ended.keys()):
                    break
            else:
                logger.warning(
                    "more than %d ended activations of %s since %d: checked the newest only",
                    PAGE_SIZE * MAX_PAGES,
                    action or "the namespace",
                    since,
                )
        self._last_pages = max(1, pages)
        return ended

    def _reason(self, activation_id: str, status_code: int | None) -> str:
        """The platform's verdict on an ended activation, from its record (read once, and not
        for a success: that call's status is normally in storage, which the executor reads again)."""
        if activation_id not in self._reasons and status_code == SUCCESS_CODE:
            return describe_end({"response": {"status": "success", "statusCode": SUCCESS_CODE}})
        if activation_id not in self._reasons:
            record = self.client.get_activation(activation_id)
            if record is None:
                return "OpenWhisk listed it as ended but has no record of it; submit the call again"
            self._reasons[activation_id] = describe_end(record)
        return self._reasons[activation_id]


def describe_end(record: dict[str, Any]) -> str:
    """What OpenWhisk recorded about an ended activation, and how to avoid it."""
    response = record.get("response") or {}
    status = str(response.get("status") or f"status code {response.get('statusCode')}")
    result = response.get("result")
    error = str(result.get("error") or "").strip() if isinstance(result, dict) else ""
    limits = _annotation(record, "limits") or {}
    memory, timeout_ms = limits.get("memory"), limits.get("timeout")
    said = f"OpenWhisk ended it with status '{status}'" + (f": {error}" if error else ".")
    if not said.endswith("."):
        said += "."
    lowered = error.lower()
    if "time limit" in lowered:
        limit = f" of {timeout_ms / 1000:g} s" if isinstance(timeout_ms, (int, float)) else ""
        fix = (
            f"The call ran past the action's time limit{limit} ('ibm_cf.timeout') without stopping itself at its "
            "own timeout; raise 'ibm_cf.timeout', or split the work into shorter calls."
        )
    elif "memory" in lowered:
        fix = (
            f"The call needed more memory than the action's {memory} MB; raise runtime_memory (the job's "
            "runtime_memory argument or 'pywren.runtime_memory')."
        )
    elif status == "action developer error":
        fix = (
            "The function's process exited or was killed before the call could record its end (os._exit, a fatal "
            f"signal, or memory beyond the action's {memory} MB); if it needs more memory, raise runtime_memory."
        )
    elif status == "whisk internal error":
        fix = "The platform failed to run it; submit the call again, and check the OpenWhisk service if it persists."
    elif status == "application error":
        fix = (
            "The function-side handler failed before recording a final status; check that activations can reach "
            "the storage backend with the settings they are given."
        )
    else:
        fix = (
            "It ended but no final status is in storage; check that activations write to the same storage "
            "(bucket and prefix) that this client reads."
        )
    return f"{said} {fix}"


def _annotation(record: dict[str, Any], key: str) -> Any:
    for annotation in record.get("annotations") or []:
        if isinstance(annotation, dict) and annotation.get("key") == key:
            return annotation.get("value")
    return None
