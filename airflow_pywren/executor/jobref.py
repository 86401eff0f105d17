"""The job model: call and job statuses, and the job reference that travels between processes.

A :class:`JobRef` is what an Airflow operator pushes to XCom and what triggers, sensors and
downstream maps read: ids, where the job lives, and how to find its results (a key pattern
and a count, so it stays a few hundred bytes whatever the number of calls). It never holds
payloads or secrets.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor import keys, validation
from airflow_pywren.executor.errors import PyWrenError

if TYPE_CHECKING:
    from airflow_pywren.executor.future import ResponseFuture
    from airflow_pywren.executor.storage.base import StorageBackend


class _StatusEnum(str, Enum):
    """A status that is also its plain string: compares, formats and serializes as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)

    def is_terminal(self) -> bool:
        """True for a status that never changes again."""
        return self in _TERMINAL


class CallStatus(_StatusEnum):
    """Where one call is: ``pending`` → ``running`` → ``success`` | ``error``."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


class JobStatus(_StatusEnum):
    """Where a job is, as a job reference reports it: ``submitted`` → ``running`` → ``success`` | ``error``."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


_TERMINAL = frozenset({CallStatus.SUCCESS, CallStatus.ERROR, JobStatus.SUCCESS, JobStatus.ERROR})

KINDS = ("call_async", "map", "map_reduce")
"""Job kinds a reference names (the operator's, not the executor's per-job ``reduce``)."""
REQUIRED_KEYS = ("executor_id", "kind", "job_ids")
"""Keys every job reference has."""
CALL_ID_FIELD = "{call_id}"
"""The placeholder of ``result_key_pattern``."""


class JobRefError(PyWrenError, ValueError):
    """A value that is not a job reference; the message says what was expected."""


@dataclass(frozen=True)
class JobRef:
    """A submitted job (call_async, map, or map + reduce), as it travels through XCom.

    The results are calls ``0 .. result_count - 1`` of ``result_job_id``; their keys follow
    ``result_key_pattern`` (``{call_id}`` replaced). References written by earlier versions
    list every key instead (``legacy_result_keys``); they still parse and work. ``status``,
    ``done`` and ``failed`` are the progress an operator or sensor saw last.
    """

    executor_id: str
    kind: str
    job_ids: tuple[str, ...]
    result_job_id: str
    total: int | None = None
    result_count: int | None = None
    result_key_pattern: str | None = None
    storage_backend: str | None = None
    bucket: str | None = None
    storage_prefix: str | None = None
    location: str | None = None
    pywren_conn_id: str | None = None
    status: JobStatus | None = None
    done: int | None = None
    failed: int | None = None
    legacy_result_keys: tuple[str, ...] | None = None
    inputs: Mapping[str, Any] | None = None
    """What a map over data read: locations, dataset names, object/byte/chunk counts (small)."""

    # ----------------------------------------------------------------- build
    @classmethod
    def from_futures(
        cls, kind: str, futures: Sequence[ResponseFuture], storage: StorageBackend, executor_id: str
    ) -> JobRef:
        """The reference of a submission given its futures (results: the calls that produce output)."""
        if not futures:
            raise JobRefError(f"a {kind} job reference needs the job's futures; got none")
        job_ids = tuple(dict.fromkeys(f.job_id for f in futures))
        producing = [f for f in futures if f.produce_output] or list(futures)
        result_job_id = producing[0].job_id
        return cls(
            executor_id=executor_id,
            kind=kind,
            job_ids=job_ids,
            result_job_id=result_job_id,
            total=len(futures),
            result_count=len(producing),
            result_key_pattern=keys.output_key_pattern(storage.prefix, executor_id, result_job_id),
            storage_backend=storage.name,
            bucket=storage.bucket,
            storage_prefix=storage.prefix,
            location=storage.location(),
        )

    # ----------------------------------------------------------------- parse
    @classmethod
    def parse(cls, value: Any, what: str = "job_ref") -> JobRef:
        """A reference from what a PyWren operator pushed to XCom: the dict, its JSON text, or the
        Python-literal text a template renders it to. Raises :class:`JobRefError` naming the problem."""
        if isinstance(value, JobRef):
            return value
        if isinstance(value, str):
            value = _parse_text(value, what)
        if not isinstance(value, Mapping):
            raise JobRefError(
                f"{what} must be the job reference dict a PyWren operator pushes to XCom, got "
                f"{type(value).__name__}: {value!r:.120}"
            )
        missing = [key for key in REQUIRED_KEYS if not value.get(key)]
        if missing:
            raise JobRefError(
                f"{what} lacks {', '.join(missing)}: pass the XCom return_value of a PyWren operator "
                f"(e.g. upstream_task.output), got keys {sorted(value)}"
            )
        job_ids = value["job_ids"]
        if (
            isinstance(job_ids, str)
            or not isinstance(job_ids, Sequence)
            or not all(isinstance(j, str) for j in job_ids)
        ):
            raise JobRefError(f"{what}['job_ids'] must be a list of job ids such as ['M000'], got {job_ids!r:.120}")
        validation.check_executor_id(value["executor_id"], f"{what}['executor_id']")  # ids become storage keys
        for job_id in (*job_ids, *([value["result_job_id"]] if value.get("result_job_id") else [])):
            validation.check_job_id(job_id, f"a job id of {what}")
        legacy = value.get("result_keys")
        if legacy is not None and (isinstance(legacy, str) or not all(isinstance(k, str) for k in legacy)):
            raise JobRefError(f"{what}['result_keys'] must be a list of storage keys, got {legacy!r:.120}")
        status = value.get("status")
        try:
            return cls(
                executor_id=str(value["executor_id"]),
                kind=str(value["kind"]),
                job_ids=tuple(job_ids),
                result_job_id=str(value.get("result_job_id") or job_ids[-1]),
                total=_optional_int(value, "total", what),
                result_count=_optional_int(value, "result_count", what),
                result_key_pattern=value.get("result_key_pattern"),
                storage_backend=value.get("storage_backend"),
                bucket=value.get("bucket"),
                storage_prefix=value.get("storage_prefix"),
                location=value.get("location"),
                pywren_conn_id=value.get("pywren_conn_id"),
                status=None if status is None else JobStatus(status),
                done=_optional_int(value, "done", what),
                failed=_optional_int(value, "failed", what),
                legacy_result_keys=None if legacy is None else tuple(legacy),
                inputs=value.get("inputs") if isinstance(value.get("inputs"), Mapping) else None,
            )
        except ValueError as exc:  # an unknown status
            raise JobRefError(
                f"{what} has status {status!r}; expected one of {', '.join(s.value for s in JobStatus)} ({exc})"
            ) from None

    @classmethod
    def is_ref(cls, value: Any) -> bool:
        """True for a job reference (a JobRef, or its XCom dict)."""
        if isinstance(value, JobRef):
            return True
        return isinstance(value, Mapping) and all(value.get(key) for key in REQUIRED_KEYS)

    # ------------------------------------------------------------------ read
    @property
    def knows_results(self) -> bool:
        """True when the result keys follow from the reference alone (no manifest read needed)."""
        return self.legacy_result_keys is not None or (
            self.result_key_pattern is not None and self.result_count is not None
        )

    def result_key(self, index: int) -> str:
        """The storage key of the ``index``-th result."""
        if self.legacy_result_keys is not None:
            return self.legacy_result_keys[index]
        if self.result_key_pattern is None or self.result_count is None:
            raise JobRefError(
                f"the reference of {self.describe()} does not say where its results are; "
                "follow it with a JobWatcher, which reads them from the job's manifest"
            )
        if not 0 <= index < self.result_count:
            raise IndexError(f"{self.describe()} has {self.result_count} result(s); no result {index}")
        return self.result_key_pattern.replace(CALL_ID_FIELD, keys.call_id_of(index))

    @property
    def result_keys(self) -> list[str]:
        """Every result key, in call order (built from the pattern; O(N), so only on demand)."""
        if self.legacy_result_keys is not None:
            return list(self.legacy_result_keys)
        return [self.result_key(index) for index in range(self.result_count or 0)]

    @property
    def results_total(self) -> int:
        """How many results the job has."""
        if self.legacy_result_keys is not None:
            return len(self.legacy_result_keys)
        if self.result_count is None:
            raise JobRefError(f"the reference of {self.describe()} does not say how many results it has")
        return self.result_count

    @property
    def name(self) -> str:
        """``M000`` or ``M000+R001``: the job ids as progress lines show them."""
        return "+".join(self.job_ids)

    def describe(self) -> str:
        """``map job M000 of executor e1``."""
        return f"{self.kind} job {self.name} of executor {self.executor_id}"

    # ----------------------------------------------------------------- write
    def with_progress(self, status: JobStatus, done: int, failed: int) -> JobRef:
        """The reference with the progress an operator or sensor reports."""
        return self._replace(status=JobStatus(status), done=done, failed=failed)

    def with_results(self, result_job_id: str, result_keys: Sequence[str]) -> JobRef:
        """The reference with its results found elsewhere (the job's manifest)."""
        prefix = keys.output_key_pattern(self.storage_prefix or "", self.executor_id, result_job_id)
        pattern_fits = self.storage_prefix is not None and all(
            key == prefix.replace(CALL_ID_FIELD, keys.call_id_of(i)) for i, key in enumerate(result_keys)
        )
        if pattern_fits:
            return self._replace(
                result_job_id=result_job_id,
                result_count=len(result_keys),
                result_key_pattern=prefix,
                legacy_result_keys=None,
            )
        return self._replace(result_job_id=result_job_id, legacy_result_keys=tuple(result_keys))

    def with_conn_id(self, pywren_conn_id: str | None) -> JobRef:
        return self._replace(pywren_conn_id=pywren_conn_id)

    def _replace(self, **changes: Any) -> JobRef:
        from dataclasses import replace

        return replace(self, **changes)

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-serializable dict pushed to XCom (plain types only; unset fields left out)."""
        data: dict[str, Any] = {
            "executor_id": self.executor_id,
            "kind": self.kind,
            "job_ids": list(self.job_ids),
            "result_job_id": self.result_job_id,
        }
        optional = {
            "storage_backend": self.storage_backend,
            "bucket": self.bucket,
            "storage_prefix": self.storage_prefix,
            "location": self.location,
            "total": self.total,
            "result_count": self.result_count,
            "result_key_pattern": self.result_key_pattern,
            "pywren_conn_id": self.pywren_conn_id,
            "status": None if self.status is None else self.status.value,
            "done": self.done,
            "failed": self.failed,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        if self.legacy_result_keys is not None:
            data["result_keys"] = list(self.legacy_result_keys)
        if self.inputs is not None:
            data["inputs"] = dict(self.inputs)
        return data


def _parse_text(text: str, what: str) -> Any:
    """The dict in a rendered template: JSON first, then a Python literal (how Airflow renders dicts)."""
    stripped = text.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    raise JobRefError(
        f"{what} must be the job reference dict a PyWren operator pushes to XCom; {what} rendered to text that is "
        f"not a job reference: {stripped!r:.120}. Pull the upstream "
        "task's return_value, e.g. job_ref=submit_task.output or \"{{ ti.xcom_pull(task_ids='submit') }}\""
    )


def _optional_int(value: Mapping[str, Any], key: str, what: str) -> int | None:
    item = value.get(key)
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, int):
        raise JobRefError(f"{what}[{key!r}] must be a whole number, got {item!r:.60}")
    return item


__all__ = ["CallStatus", "JobRef", "JobRefError", "JobStatus"]
