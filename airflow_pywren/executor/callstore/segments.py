"""The localhost call layout: per-writer append-only segments of checksummed records.

::

    {job}/status/{writer}.seg        records appended by one process (a worker, the runner, a client)
    {job}/output/{call_id}.pickle    an output larger than INLINE_OUTPUT_LIMIT (written before its record)

A process that records calls of a job appends to its own segment of that job
(``{pid}-{random}.seg``), so writers never share a file and a no-op call costs two small
appends instead of three files. Each record is written with one ``write``::

    MAGIC (4 bytes) | body length | CRC-32 of body | JSON length   (big-endian u32 each)
    body = the record's JSON, then the call's pickled output when it is inline

A record is either a start (``"status": "running"``) or a final status carrying the
output inline (so status and output become visible together, atomically). A reader
keeps, per segment, the offset it has read up to, and accepts only whole records whose
checksum matches: a record cut short by a killed writer is never read, let alone as a
success. When two final records exist for one call (a lost-call check racing a late
worker), a success wins over an error; otherwise the first one read stands.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.callstore.base import CallStore, CallUpdates, JobCalls, missing_output
from airflow_pywren.executor.errors import StorageError, StorageKeyNotFound
from airflow_pywren.executor.jobref import CallStatus
from airflow_pywren.executor.storage.localhost import LocalhostStorage, make_private_dirs

MAGIC = b"PWR1"
HEADER = struct.Struct("!4sIII")
SEGMENT_SUFFIX = ".seg"
INLINE_OUTPUT_LIMIT = 16 * 1024
"""Outputs up to this size (bytes) travel inside the final record; larger ones get their own file."""
CACHED_OUTPUT_LIMIT = 512
"""Inline outputs up to this size are kept in memory by a reader until read once (no second file read)."""
READ_LIMIT = 1 << 20
"""Bytes read from one segment per poll at most, so that a poll's memory stays small (the rest is read next poll)."""
_OPEN_SEGMENTS = 16
_OUTPUT_INLINE, _OUTPUT_OBJECT = "inline", "object"
_IMPLIED = ("executor_id", "job_id")


def encode_record(record: dict[str, Any], output: bytes | None = None) -> bytes:
    """One framed record: header, JSON, inline output."""
    body_json = json.dumps(record, separators=(",", ":")).encode()
    body = body_json + (output or b"")
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body), len(body_json)) + body


def decode_records(data: bytes | memoryview, start: int = 0) -> tuple[list[tuple[int, dict[str, Any], bytes]], int]:
    """Whole, intact records of ``data`` from ``start``: ``([(offset, record, output)], end)``.

    Stops at the first record that is incomplete (still being written, or cut short by a
    killed writer) or whose checksum does not match; ``end`` is where reading resumes.
    """
    records = []
    position = start
    size = len(data)
    while position + HEADER.size <= size:
        magic, length, checksum, json_length = HEADER.unpack_from(data, position)
        end = position + HEADER.size + length
        if magic != MAGIC or end > size or json_length > length:
            break
        body = bytes(data[position + HEADER.size : end])
        if zlib.crc32(body) != checksum:
            break
        records.append((position, json.loads(body[:json_length]), body[json_length:]))
        position = end
    return records, position


class _Appender:
    """This process's open segments (one per job), reopened after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.name = f"{self.pid}-{secrets.token_hex(3)}{SEGMENT_SUFFIX}"
        self.files: OrderedDict[Path, int] = OrderedDict()

    def append(self, status_dir: Path, data: bytes) -> None:
        descriptor = self._descriptor(status_dir)
        before = os.lseek(descriptor, 0, os.SEEK_END)
        try:
            written = os.write(descriptor, data)
            while written < len(data):  # a short write (disk full): finish it, or undo it below
                more = os.write(descriptor, data[written:])
                if more <= 0:
                    raise OSError(f"could not append {len(data)} bytes to {status_dir}")
                written += more
        except BaseException:
            try:
                os.ftruncate(descriptor, before)  # never leave a partial record before the next one
            except OSError:
                pass
            raise

    def _descriptor(self, status_dir: Path) -> int:
        descriptor = self.files.get(status_dir)
        if descriptor is not None:
            self.files.move_to_end(status_dir)
            return descriptor
        path = status_dir / self.name
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            descriptor = os.open(path, flags, 0o600)  # private, like every file of localhost storage
        except FileNotFoundError:
            make_private_dirs(status_dir)
            descriptor = os.open(path, flags, 0o600)
        self.files[status_dir] = descriptor
        while len(self.files) > _OPEN_SEGMENTS:
            os.close(self.files.popitem(last=False)[1])
        return descriptor

    def close(self) -> None:
        while self.files:
            os.close(self.files.popitem()[1])


_appender: _Appender | None = None


def _this_process_appender() -> _Appender:
    global _appender
    if _appender is None or _appender.pid != os.getpid():
        _appender = _Appender()  # a forked child never writes to its parent's segments
    return _appender


class SegmentCallStore(CallStore):
    """Calls recorded in per-writer append-only segments under each job's ``status/`` directory."""

    layout = "segments"

    storage: LocalhostStorage

    def __init__(self, storage: LocalhostStorage) -> None:
        super().__init__(storage)
        self._views: dict[tuple[str, str], SegmentJobCalls] = {}
        self._status_dirs: dict[tuple[str, str], Path] = {}
        self.outputs: dict[tuple[str, str, str], bytes] = {}
        """Small inline outputs read by polls and not yet read by a caller."""
        self.lookup_scans = 0
        """Directory scans made to find a call's records for a point read (an output, a status), not by a monitor's poll."""

    def status_dir(self, executor_id: str, job_id: str) -> Path:
        found = self._status_dirs.get((executor_id, job_id))
        if found is None:
            if len(self._status_dirs) > 64:
                self._status_dirs.clear()
            found = self._status_dirs[(executor_id, job_id)] = self.storage.local_path(
                keys.status_prefix(self.prefix, executor_id, job_id).rstrip("/")
            )
        return found

    # --- function side --------------------------------------------------------
    def record_start(self, executor_id: str, job_id: str, call_id: str, start: dict[str, Any]) -> None:
        record = {k: v for k, v in start.items() if k not in _IMPLIED}
        self._append(executor_id, job_id, encode_record(record))

    def record_end(
        self, executor_id: str, job_id: str, call_id: str, status: dict[str, Any], output: bytes | None
    ) -> None:
        record = {k: v for k, v in status.items() if k not in _IMPLIED and k != "output_key"}
        inline = None
        if output is not None and len(output) > INLINE_OUTPUT_LIMIT:
            self.storage.put(self.output_key(executor_id, job_id, call_id), output)  # before the record names it
            record["output"] = _OUTPUT_OBJECT
        elif output is not None:
            record["output"], inline = _OUTPUT_INLINE, output
        self._append(executor_id, job_id, encode_record(record, inline))

    def _append(self, executor_id: str, job_id: str, data: bytes) -> None:
        self.storage.request_counts["PUT"] += 1
        status_dir = self.status_dir(executor_id, job_id)
        try:
            _this_process_appender().append(status_dir, data)
        except OSError as exc:
            raise StorageError(f"could not record a call of job {job_id} in {status_dir}: {exc}") from exc

    # --- readers --------------------------------------------------------------
    def job(self, executor_id: str, job_id: str) -> SegmentJobCalls:
        return SegmentJobCalls(self, executor_id, job_id)

    def _view(self, executor_id: str, job_id: str) -> SegmentJobCalls:
        """The view this store keeps of a job for point reads (statuses, outputs), polled on each read."""
        view = self._views.get((executor_id, job_id))
        if view is None:
            view = self._views[(executor_id, job_id)] = SegmentJobCalls(self, executor_id, job_id, cache_outputs=False)
        return view

    def _lookup(self, view: SegmentJobCalls) -> None:
        self.lookup_scans += 1
        view.poll()

    def read_status(self, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
        view = self._view(executor_id, job_id)
        self._lookup(view)
        return view.final(call_id)

    def read_start(self, executor_id: str, job_id: str, call_id: str) -> dict[str, Any] | None:
        view = self._view(executor_id, job_id)
        if not view.is_final(call_id):
            self._lookup(view)
        return view.start(call_id)

    def read_output(self, executor_id: str, job_id: str, call_id: str, job_checked: bool = False) -> bytes:
        cached = self.outputs.pop((executor_id, job_id, call_id), None)
        if cached is not None and (job_checked or self.status_dir(executor_id, job_id).is_dir()):
            return cached  # read by a poll, and the job is still in storage (not cleaned since)
        view = self._view(executor_id, job_id)
        if not view.is_final(call_id):
            self._lookup(view)
        try:
            found = view.output(call_id)
        except FileNotFoundError:
            found = None
        if found is None:
            raise missing_output(self, executor_id, job_id, call_id)
        return found

    def read_outputs(self, calls: Sequence[tuple[str, str, str]], threads: int = 16) -> list[bytes]:
        present = {job: self.status_dir(*job).is_dir() for job in {(e, j) for e, j, _ in calls}}  # one check per job
        return [self.read_output(e, j, c, job_checked=present[(e, j)]) for e, j, c in calls]  # local files: no threads

    def forget(self, executor_id: str, job_id: str | None = None) -> None:
        for job in [k for k in self._views if k[0] == executor_id and job_id in (None, k[1])]:
            del self._views[job]
        for call in [k for k in self.outputs if k[0] == executor_id and job_id in (None, k[1])]:
            del self.outputs[call]


class SegmentJobCalls(JobCalls):
    """Reads each segment of a job from where the last poll stopped: one directory scan per poll."""

    store: SegmentCallStore

    def __init__(self, store: SegmentCallStore, executor_id: str, job_id: str, cache_outputs: bool = True) -> None:
        super().__init__(store, executor_id, job_id)
        self.directory = store.status_dir(executor_id, job_id)
        self.cache_outputs = cache_outputs
        self._read_up_to: dict[str, int] = {}
        self._starts: dict[str, dict[str, Any]] = {}  # calls started and not yet finished
        self._finals: dict[str, tuple[str, int, bool]] = {}  # call id -> (segment, offset, success)

    def poll(self) -> CallUpdates:
        self.store.storage.request_counts["LIST"] += 1
        updates = CallUpdates()
        try:
            entries = list(os.scandir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return updates
        for entry in entries:
            if not entry.name.endswith(SEGMENT_SUFFIX):
                continue
            start = self._read_up_to.get(entry.name, 0)
            try:
                if entry.stat().st_size <= start:
                    continue
                with open(entry.path, "rb") as segment:
                    segment.seek(start)
                    data = segment.read(READ_LIMIT)
            except FileNotFoundError:
                continue
            self.store.storage.request_counts["GET"] += 1
            records, end = decode_records(data)
            if not records and len(data) == READ_LIMIT:  # one record larger than the limit
                with open(entry.path, "rb") as segment:
                    segment.seek(start)
                    records, end = decode_records(segment.read())
            elif len(data) == READ_LIMIT:
                updates.truncated = True  # the rest of the segment comes with the next poll
            self._read_up_to[entry.name] = start + end
            for offset, record, output in records:
                self._apply(entry.name, start + offset, record, output, updates)
        return updates

    def _apply(self, segment: str, offset: int, record: dict[str, Any], output: bytes, updates: CallUpdates) -> None:
        call_id = record["call_id"]
        record["executor_id"], record["job_id"] = self.executor_id, self.job_id
        if record.get("status") == CallStatus.RUNNING:
            if call_id not in self._finals:
                self._starts[call_id] = updates.started[call_id] = record
            return
        success = record.get("status") == CallStatus.SUCCESS
        seen = self._finals.get(call_id)
        if seen is not None and (seen[2] or not success):
            return  # first final record stands, unless a success follows an error
        self._finals[call_id] = (segment, offset, success)
        start = self._starts.pop(call_id, None)
        updates.started.pop(call_id, None)
        if start is not None and call_id not in updates.finished:
            record.setdefault("worker_pid", start.get("worker_pid"))
        has_output = record.pop("output", None)
        record["output_key"] = self.store.output_key(self.executor_id, self.job_id, call_id) if has_output else None
        updates.finished[call_id] = record
        if self.cache_outputs and has_output == _OUTPUT_INLINE and len(output) <= CACHED_OUTPUT_LIMIT:
            self.store.outputs[(self.executor_id, self.job_id, call_id)] = output

    def _read_record(self, call_id: str) -> tuple[dict[str, Any], bytes] | None:
        """The final record of a call seen by the polls so far, read again from its segment."""
        found = self._finals.get(call_id)
        if found is None:
            return None
        segment, offset, _ = found
        with open(self.directory / segment, "rb") as file:
            file.seek(offset)
            header = file.read(HEADER.size)
            records, _ = decode_records(header + file.read(HEADER.unpack(header)[1]))
        _, record, output = records[0]
        record["executor_id"], record["job_id"] = self.executor_id, self.job_id
        return record, output

    def is_final(self, call_id: str) -> bool:
        return call_id in self._finals

    def is_started(self, call_id: str) -> bool:
        return call_id in self._starts or call_id in self._finals

    def final(self, call_id: str) -> dict[str, Any] | None:
        found = self._read_record(call_id)
        if found is None:
            return None
        record = found[0]
        has_output = record.pop("output", None)
        record["output_key"] = self.store.output_key(self.executor_id, self.job_id, call_id) if has_output else None
        return record

    def output(self, call_id: str) -> bytes | None:
        """The pickled output of a finished call seen so far, or None."""
        found = self._read_record(call_id)
        if found is None:
            return None
        record, output = found
        if record.get("output") == _OUTPUT_INLINE:
            return output
        if record.get("output") == _OUTPUT_OBJECT:
            try:
                return self.store.storage.get(self.store.output_key(self.executor_id, self.job_id, call_id))
            except StorageKeyNotFound:
                return None
        return None

    def start(self, call_id: str) -> dict[str, Any] | None:
        return self._starts.get(call_id)
