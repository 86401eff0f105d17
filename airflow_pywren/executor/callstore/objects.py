"""One object per call event: ``status/{call_id}.start.json``, ``status/{call_id}.json``, ``output/{call_id}.pickle``.

The layout of object stores (IBM COS, S3): every write is one PUT, atomic by the store's
own semantics; the final status is always the last object a call writes, so a reader
that sees it sees the output too. A poll is one LIST of the job's ``status/`` prefix and a
GET of each final status not seen before.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.callstore.base import CallStore, CallUpdates, JobCalls
from airflow_pywren.executor.errors import StorageKeyNotFound

READ_THREADS = 16


def _get_all(storage: Any, object_keys: list[str]) -> list[bytes]:
    """GET many objects in parallel threads, or one by one where threads cannot start (a memory-limited call)."""
    if len(object_keys) >= 4:
        try:
            with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(object_keys))) as pool:
                return list(pool.map(storage.get, object_keys))
        except RuntimeError:  # "can't start new thread" under an address-space limit
            pass
    return [storage.get(key) for key in object_keys]


class ObjectCallStore(CallStore):
    """Calls recorded as separate objects (the layout every object store uses)."""

    layout = "objects"

    def record_start(self, executor_id: str, job_id: str, call_id: str, start: dict[str, Any]) -> None:
        self.storage.put(
            keys.call_key(self.prefix, executor_id, job_id, call_id, keys.START_OBJECT), json.dumps(start).encode()
        )

    def record_end(
        self, executor_id: str, job_id: str, call_id: str, status: dict[str, Any], output: bytes | None
    ) -> None:
        if output is not None:
            self.storage.put(self.output_key(executor_id, job_id, call_id), output)
        self.storage.put(
            keys.call_key(self.prefix, executor_id, job_id, call_id, keys.STATUS_OBJECT), json.dumps(status).encode()
        )

    def job(self, executor_id: str, job_id: str) -> JobCalls:
        return ObjectJobCalls(self, executor_id, job_id)

    def read_status(self, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(
                self.storage.get(keys.call_key(self.prefix, executor_id, job_id, call_id, keys.STATUS_OBJECT))
            )
        except StorageKeyNotFound:
            return None

    def read_start(self, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(
                self.storage.get(keys.call_key(self.prefix, executor_id, job_id, call_id, keys.START_OBJECT))
            )
        except StorageKeyNotFound:
            return None


class ObjectJobCalls(JobCalls):
    """One LIST of ``status/`` per poll; GETs (in parallel threads) of final statuses not seen before."""

    store: ObjectCallStore

    def __init__(self, store: ObjectCallStore, executor_id: str, job_id: str) -> None:
        super().__init__(store, executor_id, job_id)
        self._started: set[str] = set()
        self._ended: set[str] = set()
        self._starts: dict[str, dict[str, Any]] = {}

    def poll(self) -> CallUpdates:
        storage = self.store.storage
        prefix = keys.status_prefix(self.store.prefix, self.executor_id, self.job_id)
        updates = CallUpdates()
        ended: list[str] = []
        for key in storage.list_keys(prefix):
            parts = keys.parse_status_key(key, prefix)
            if parts is None:
                continue
            call_id, kind = parts
            if kind == keys.STATUS_OBJECT and call_id not in self._ended:
                ended.append(call_id)
            elif kind == keys.START_OBJECT and call_id not in self._started:
                self._started.add(call_id)
                updates.started[call_id] = {}
        status_keys = [
            keys.call_key(self.store.prefix, self.executor_id, self.job_id, c, keys.STATUS_OBJECT) for c in ended
        ]
        blobs = _get_all(storage, status_keys)
        for call_id, blob in zip(ended, blobs):
            self._ended.add(call_id)
            updates.finished[call_id] = json.loads(blob)
        return updates

    def is_final(self, call_id: str) -> bool:
        return call_id in self._ended

    def is_started(self, call_id: str) -> bool:
        return call_id in self._started or call_id in self._ended

    def final(self, call_id: str) -> dict[str, Any] | None:
        return self.store.read_status(self.executor_id, self.job_id, call_id) if call_id in self._ended else None

    def start(self, call_id: str) -> dict[str, Any] | None:
        if call_id not in self._starts:
            start = self.store.read_start(self.executor_id, self.job_id, call_id)
            if start is None:
                return None
            self._starts[call_id] = start
        return self._starts[call_id]
