"""The function side of a map over data: each call streams its chunk with one ranged GET.

A chunk with nominal range ``[start, end)`` owns the lines that *start* in it: it skips
the partial line it begins in (the previous chunk finishes it) and reads past ``end`` to
the end of its last line. So no line is split, lost or read twice, whatever the chunk
size — also for CRLF (``\\r\\n`` ends in ``\\n``), a last line without a newline, and lines
longer than a chunk (the chunk they start in reads them whole; chunks inside it are empty).

The GET asks for ``[start - 1, end + READ_AHEAD)``; only when a line crosses ``end`` by more
than that is a further range requested. Bytes are handed out as the function reads, in
blocks: memory per call stays bounded whatever the chunk size. Every response is checked
against the size and ETag seen when the job was planned; an object changed since then
fails the call with :class:`DataChangedError`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

import requests

from airflow_pywren.executor.data.locations import FILE, HTTP
from airflow_pywren.executor.data.partitioner import DataObject, DataPart
from airflow_pywren.executor.errors import DataChangedError, StorageKeyNotFound
from airflow_pywren.executor.storage.base import ObjectInfo, StorageBackend
from airflow_pywren.executor.storage.localhost import RangeFile, file_etag

READ_AHEAD = 64 * 1024  # bytes past a chunk's end fetched in the same GET to finish its last line
BLOCK = 1024 * 1024  # bytes handed out at a time
STREAM_BUFFER = 256 * 1024
HTTP_TIMEOUT = 60.0

Opener = Callable[[int, int], IO[bytes]]


def aligned_blocks(
    open_range: Opener, start: int, end: int, size: int, read_ahead: int = READ_AHEAD, block: int = BLOCK
) -> Iterator[bytes]:
    """The bytes of the lines starting in ``[start, end)`` of an object of ``size`` bytes, block by block."""
    if start >= end:
        return
    position = start - 1 if start > 0 else 0
    stop = min(size, end + read_ahead)
    stream = open_range(position, stop)
    try:
        pending = b""
        if start > 0:  # skip to just past the first newline at index start-1 .. end-2
            while True:
                scan = end - 1 - position
                if scan <= 0:
                    return  # no line starts in this chunk
                data = stream.read(min(block, scan))
                if not data:
                    return
                newline = data.find(b"\n")
                if newline >= 0:
                    position += newline + 1
                    pending = data[newline + 1 :]
                    break
                position += len(data)
        while True:  # hand out bytes up to the first newline at index end-1 or later
            if pending:
                free = max(0, end - 1 - position)
                if free >= len(pending):
                    yield pending
                    position += len(pending)
                else:
                    if free:
                        yield pending[:free]
                        position += free
                    tail = pending[free:]
                    newline = tail.find(b"\n")
                    if newline >= 0:
                        yield tail[: newline + 1]
                        return
                    yield tail
                    position += len(tail)
            pending = stream.read(block)
            if pending:
                continue
            if position >= size:
                return  # the object's last line has no newline
            if position < stop:
                raise DataChangedError(
                    f"the object ended at byte {position}, before the {size} bytes it had when planned"
                )
            stream.close()
            read_ahead *= 4
            stop = min(size, position + read_ahead)
            stream = open_range(position, stop)
    finally:
        stream.close()


class _BlockStream(io.RawIOBase):
    """A readable raw stream over an iterator of byte blocks."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not len(self._current):
            try:
                self._current = memoryview(next(self._blocks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()  # a generator's ``finally`` closes the GET it has open
        super().close()


def _check(obj: DataObject, info_size: int, info_etag: str) -> None:
    if (obj.size >= 0 and info_size != obj.size) or (obj.etag and info_etag and info_etag != obj.etag):
        raise DataChangedError(
            f"{obj.name} changed after the job was planned (size {obj.size} -> {info_size}, "
            f"ETag {obj.etag!r} -> {info_etag!r}); its chunks no longer line up: run the job again"
        )


def opener_for(obj: DataObject, storage: StorageBackend) -> Opener:
    """How to open a byte range of ``obj``: one request, checked against the planned size and ETag."""
    if obj.kind == HTTP:
        return lambda start, end: _open_url(obj, start, end)
    if obj.kind == FILE:
        return lambda start, end: _open_file(obj, start, end)

    def open_storage(start: int, end: int) -> IO[bytes]:
        try:
            stream, info = storage.open_range(obj.bucket, obj.key, start, end)
        except StorageKeyNotFound:
            raise DataChangedError(f"{obj.name} was deleted after the job was planned; run the job again") from None
        _check_info(obj, info, stream)
        return stream

    return open_storage


def _check_info(obj: DataObject, info: ObjectInfo, stream: Any) -> None:
    try:
        _check(obj, info.size, info.etag)
    except DataChangedError:
        stream.close()
        raise


def _open_file(obj: DataObject, start: int, end: int) -> IO[bytes]:
    try:
        file = open(obj.key, "rb")  # noqa: SIM115 - closed with the stream
    except FileNotFoundError:
        raise DataChangedError(f"{obj.key} was deleted after the job was planned; run the job again") from None
    stat = os.fstat(file.fileno())
    try:
        _check(obj, stat.st_size, file_etag(stat))
    except DataChangedError:
        file.close()
        raise
    file.seek(start)
    return RangeFile(file, max(0, end - start))  # type: ignore[return-value]


class _ResponseStream(io.RawIOBase):
    def __init__(self, response: requests.Response) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._response.raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._response.close()
        super().close()


def _open_url(obj: DataObject, start: int, end: int) -> IO[bytes]:
    headers = {"Accept-Encoding": "identity"}
    ranged = obj.size >= 0 and not (start == 0 and end >= obj.size)
    if ranged:
        if end <= start:
            return io.BytesIO(b"")
        headers["Range"] = f"bytes={start}-{end - 1}"
    response = requests.get(obj.url, headers=headers, stream=True, timeout=HTTP_TIMEOUT)
    if response.status_code >= 400:
        response.close()
        raise DataChangedError(f"GET {obj.url} answered {response.status_code} {response.reason} during the job")
    if ranged and response.status_code != 206:
        response.close()
        raise DataChangedError(f"{obj.url} stopped answering Range requests (status {response.status_code})")
    etag = (response.headers.get("ETag") or response.headers.get("Last-Modified") or "").strip('"')
    total = obj.size
    content_range = response.headers.get("Content-Range", "")
    if ranged and "/" in content_range and not content_range.endswith("*"):
        total = int(content_range.rpartition("/")[2])
    elif not ranged and response.headers.get("Content-Length", "").isdigit():
        total = int(response.headers["Content-Length"])
    try:
        _check(obj, total if obj.size >= 0 else -1, etag)
    except DataChangedError:
        response.close()
        raise
    return _ResponseStream(response)  # type: ignore[return-value]


def open_part(part: DataPart, storage: StorageBackend) -> io.BufferedReader:
    """The call's data as a binary stream (``read``, ``readline``, iteration over lines)."""
    obj = part.obj
    start, end = part.byte_range
    opener = opener_for(obj, storage)
    if obj.size < 0:  # an HTTP object of unknown size: the whole body, as it comes
        return io.BufferedReader(_BlockStream(_whole(opener)), STREAM_BUFFER)
    if part.parts == 1:  # the whole object: nothing to align
        return io.BufferedReader(_BlockStream(_range(opener, 0, obj.size)), STREAM_BUFFER)
    return io.BufferedReader(_BlockStream(aligned_blocks(opener, start, end, obj.size)), STREAM_BUFFER)


def _range(opener: Opener, start: int, end: int) -> Iterator[bytes]:
    stream = opener(start, end)
    try:
        while True:
            data = stream.read(BLOCK)
            if not data:
                return
            yield data
    finally:
        stream.close()


def _whole(opener: Opener) -> Iterator[bytes]:
    yield from _range(opener, 0, 0)
