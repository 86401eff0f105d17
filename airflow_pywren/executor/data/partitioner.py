"""Planning a map over data: objects (with sizes from listings) split into byte ranges, one per call.

Planning happens on the client from what discovery found (size and ETag of each object):
no object is read. The byte ranges are nominal; the function side aligns them to lines
(see :mod:`.reader`), so that every line is read by exactly one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_pywren.executor.data.locations import FILE, HTTP
from airflow_pywren.executor.errors import DataSourceError, PyWrenSubmitError


@dataclass(frozen=True)
class DataObject:
    """One object found by discovery."""

    kind: str  # locations.STORAGE, FILE or HTTP
    bucket: str  # STORAGE: the bucket; "" otherwise
    key: str  # STORAGE: the key; FILE: the absolute path; HTTP: ""
    url: str  # HTTP and FILE: the URL; "" for STORAGE
    size: int  # bytes; -1 when an HTTP server does not say
    etag: str  # "" when unknown
    ranges: bool = True  # HTTP: the server answers Range requests

    @property
    def name(self) -> str:
        """How messages name the object: ``bucket/key`` or the URL."""
        return f"{self.bucket}/{self.key}" if self.bucket else self.url


@dataclass(frozen=True)
class DataPart:
    """One call's share of an object: the nominal byte range ``[start, end)`` and its place."""

    obj: DataObject
    object_index: int  # the object's position in the job (reducers per object follow it)
    part: int  # 0-based index of the chunk within its object
    parts: int  # how many chunks the object has
    byte_range: tuple[int, int]
    chunk_size: int | None  # None: the whole object in one call
    extra: dict = field(default_factory=dict, compare=False)  # other keyword arguments of the call


def check_chunking(chunk_size: object, chunk_n: object) -> None:
    """Reject bad ``chunk_size`` / ``chunk_n`` values at submit, naming the value and the fix."""
    if chunk_size is not None and chunk_n is not None:
        raise PyWrenSubmitError(
            f"give chunk_size or chunk_n, not both (got chunk_size={chunk_size!r}, chunk_n={chunk_n!r}): "
            "chunk_size is bytes per call, chunk_n the number of calls per object"
        )
    for name, value in (("chunk_size", chunk_size), ("chunk_n", chunk_n)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise PyWrenSubmitError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
        if value <= 0:
            unit = "bytes per call, e.g. 64 * 1024**2" if name == "chunk_size" else "calls per object, e.g. 4"
            raise PyWrenSubmitError(f"{name} must be a positive int ({unit}), got {value}")


def split_object(size: int, chunk_size: int | None, chunk_n: int | None) -> list[tuple[int, int]]:
    """Nominal byte ranges of an object of ``size`` bytes; one range for the whole object by default."""
    if size < 0 or (chunk_size is None and chunk_n is None) or size == 0:
        return [(0, max(size, 0))]
    if chunk_n is not None:
        chunk_size = -(-size // min(chunk_n, size))
    assert chunk_size is not None
    return [(start, min(start + chunk_size, size)) for start in range(0, size, chunk_size)]


def plan_parts(
    objects: list[DataObject],
    chunk_size: int | None = None,
    chunk_n: int | None = None,
    extras: list[dict] | None = None,
) -> list[DataPart]:
    """One DataPart per call: every object split by ``chunk_size`` bytes or into ``chunk_n`` parts."""
    check_chunking(chunk_size, chunk_n)
    parts: list[DataPart] = []
    for index, obj in enumerate(objects):
        chunked = chunk_size is not None or chunk_n is not None
        if chunked and obj.kind == HTTP and (obj.size < 0 or not obj.ranges):
            why = (
                "does not say its size"
                if obj.size < 0
                else "does not answer Range requests (no 'Accept-Ranges: bytes')"
            )
            raise DataSourceError(
                f"cannot split {obj.url} into chunks: the server {why}; drop chunk_size/chunk_n to read it in one call"
            )
        ranges = split_object(obj.size, chunk_size, chunk_n)
        size_per_call = (ranges[0][1] - ranges[0][0]) if chunked and obj.size > 0 else None
        extra = extras[index] if extras else {}
        parts.extend(
            DataPart(obj, index, number, len(ranges), byte_range, size_per_call, extra)
            for number, byte_range in enumerate(ranges)
        )
    return parts


def describe_kind(obj: DataObject) -> str:
    return {FILE: "file", HTTP: "URL"}.get(obj.kind, "object")
