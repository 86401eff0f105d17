"""The storage interface every backend implements."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from airflow_pywren.executor import validation
from airflow_pywren.executor.config import Setting


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object: enough to plan chunks and detect a change."""

    key: str
    size: int
    etag: str
    modified: float | None = field(default=None, compare=False)
    """When the object was last written (epoch seconds), where the listing says."""


class StorageBackend(ABC):
    """Object storage: put, ranged get, list and delete of keys in one bucket.

    ``request_counts`` counts requests by kind (PUT, GET, LIST, DELETE) for benchmarks.
    """

    name: ClassVar[str]
    """The backend's name: the value of ``pywren.storage_backend`` and the name of its config section."""
    settings_schema: ClassVar[dict[str, Setting]] = {}
    """The keys of the backend's config section, with their types, defaults and bounds."""
    is_local: ClassVar[bool] = False
    """True when the storage is this machine's file system: reads cost no request, and only calls that run
    on this machine can reach it."""
    call_layout: ClassVar[str] = "objects"
    """How calls record their statuses here (see :mod:`airflow_pywren.executor.callstore`)."""

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """Raise PyWrenConfigError when ``settings`` (the section, checked for types and bounds) lack what the
        backend needs; called when the backend is the configured one, before anything is built."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = dict(settings)
        self.bucket: str = settings["bucket"]
        self.prefix: str = validation.check_prefix(settings["storage_prefix"], f"{self.name}.storage_prefix")
        self.request_counts: Counter[str] = Counter()

    key_root: str | None = None
    """Keys must start with ``{key_root}/`` (default: the storage prefix); ``""`` for a whole-bucket view."""

    def confine(self, key: str, is_prefix: bool = False) -> str:
        """``key`` if it lies under this storage's prefix (or bucket, for a whole-bucket view); else StorageError.

        Keys never contain ``.``, ``..`` or empty components, so no key leaves the bucket's root.
        """
        root = self.prefix if self.key_root is None else self.key_root
        return validation.confine_key(root, key, self.location(), is_prefix)

    def whole_bucket(self) -> StorageBackend:
        """A view of the same bucket whose keys need not lie under the job prefix (user objects: data to
        map over, objects a function reads or writes). Keys still cannot leave the bucket."""
        view = copy.copy(self)
        view.key_root = ""
        return view

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old object or the whole new one."""

    @abstractmethod
    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Read ``key`` (``byte_range`` is ``(start, end)``, end exclusive); raise StorageKeyNotFound."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix`` (all pages)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; return how many were deleted."""

    def delete(self, key: str) -> None:
        """Delete the object at ``key``; nothing happens when there is none."""
        raise NotImplementedError(f"storage backend {self.name} cannot delete single objects")

    @abstractmethod
    def check(self) -> None:
        """Raise a clear StorageError when the bucket cannot be used with these settings."""

    # Data of jobs (maps over objects): any bucket this storage reaches, not only the job bucket.
    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects of ``bucket`` under ``prefix``, in key order, page by page (one LIST per page).

        Raises StorageBucketNotFound when the bucket does not exist.
        """
        raise NotImplementedError(f"storage {self.name!r} cannot list data objects")

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """Size and ETag of one object without reading it; raise StorageKeyNotFound."""
        raise NotImplementedError(f"storage {self.name!r} cannot describe data objects")

    def open_range(self, bucket: str, key: str, start: int, end: int) -> tuple[BinaryIO, ObjectInfo]:
        """A stream of bytes ``[start, end)`` of an object (one ranged GET) and the object's current info."""
        raise NotImplementedError(f"storage {self.name!r} cannot read data objects")

    def bucket_settings(self, bucket: str) -> dict[str, Any]:
        """The settings of this backend for the user bucket ``bucket`` (what a function's storage handle names)."""
        return {**self.settings, "bucket": bucket}

    def function_settings(self) -> dict[str, Any]:
        """The settings the function side needs to reach this storage, and nothing more."""
        return dict(self.settings)

    def location(self) -> str:
        """A human-readable location of the job data, e.g. ``cos://bucket/prefix``."""
        return f"{self.name}://{self.bucket}/{self.prefix}"

    def same_location(self, location: str) -> bool:
        """True when ``location`` (another process's :meth:`location`) names this storage."""
        return location == self.location()

    def close(self) -> None:
        """Release connections."""
