"""Localhost storage: one file per key under ``{storage_dir}/{bucket}``."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

from airflow_pywren.executor import validation
from airflow_pywren.executor.config import Setting
from airflow_pywren.executor.errors import PyWrenConfigError, StorageBucketNotFound, StorageError, StorageKeyNotFound
from airflow_pywren.executor.private_dirs import private_dir
from airflow_pywren.executor.storage.base import ObjectInfo, StorageBackend

_TEMP_MARK = ".tmp-"
_SCHEME = "file://"


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (whatever the umask)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file of mode 0600 (whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as file:
        file.write(data)


class LocalhostStorage(StorageBackend):
    """Files on this machine; writes are atomic (temp file, then rename)."""

    name = "localhost"
    call_layout = "segments"
    is_local = True
    settings_schema: ClassVar[dict[str, Setting]] = {
        "storage_dir": Setting((str,), "~/.pywren/storage", "directory holding localhost storage"),
        "bucket": Setting((str,), "pywren", "bucket (sub-directory) of localhost storage"),
        "storage_prefix": Setting((str,), "pywren.jobs", "key prefix of job data"),
        "data_dir": Setting(
            (str, type(None)),
            None,
            "directory whose sub-directories are the buckets that "
            "'bucket/prefix/' and 'cos://bucket/...' iterdata address (default: storage_dir)",
        ),
    }

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        if not validation.ID_PATTERN.fullmatch(str(self.bucket)):
            raise PyWrenConfigError(
                f"'localhost.bucket' is {self.bucket!r}: use a plain directory name such as 'pywren'"
            )
        self.root = Path(os.path.expanduser(settings["storage_dir"])) / self.bucket
        self.settings["storage_dir"] = str(Path(os.path.expanduser(settings["storage_dir"])).resolve())
        data_dir = settings.get("data_dir") or self.settings["storage_dir"]
        self.data_root = Path(os.path.expanduser(data_dir)).resolve()
        self.settings["data_dir"] = str(self.data_root)

    def bucket_settings(self, bucket: str) -> dict[str, Any]:
        """A user bucket is a directory of ``data_dir`` (the job's own bucket is in ``storage_dir``)."""
        return {**self.settings, "storage_dir": self.settings["data_dir"], "bucket": bucket}

    def _path(self, key: str, is_prefix: bool = False) -> Path:
        return self.root / self.confine(key, is_prefix)

    def local_path(self, key: str) -> Path:
        """The file (or directory) that holds ``key``."""
        return self._path(key)

    def put(self, key: str, data: bytes) -> None:
        self.request_counts["PUT"] += 1
        path = self._path(key)
        temp = path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}-{id(data):x}")
        try:
            try:
                _write_new(temp, data)
            except FileNotFoundError:
                make_private_dirs(path.parent)
                _write_new(temp, data)
            os.replace(temp, path)
        except OSError as exc:  # a full or read-only disk: no partial temp file is left behind
            temp.unlink(missing_ok=True)
            raise StorageError(f"could not write {key!r} to {self.location()}: {exc}") from exc

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        self.request_counts["GET"] += 1
        try:
            if byte_range is None:
                with open(self._path(key), "rb") as file:
                    return file.read()
            return _read_range(self._path(key), *byte_range)
        except (FileNotFoundError, NotADirectoryError):
            raise StorageKeyNotFound(f"no object at key {key!r} in {self.location()}") from None

    def list_keys(self, prefix: str) -> list[str]:
        self.request_counts["LIST"] += 1
        self.confine(prefix, is_prefix=True)
        keys = [key for key, _ in _walk(self.root, prefix, follow_symlinks=False)]
        keys.sort()
        return keys

    def delete_prefix(self, prefix: str) -> int:
        self.request_counts["DELETE"] += 1
        keys = self.list_keys(prefix)
        directory = self._path(prefix, is_prefix=True)
        if prefix.endswith("/") and directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for key in keys:
                self._path(key).unlink(missing_ok=True)
        return len(keys)

    def delete(self, key: str) -> None:
        self.request_counts["DELETE"] += 1
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        try:
            private_dir(self.root.parent, "'localhost.storage_dir'")
            private_dir(self.root, "the localhost storage bucket")
        except (OSError, PyWrenConfigError) as exc:
            raise StorageError(
                f"cannot create localhost storage at {self.root}: {exc}; set 'localhost.storage_dir' to a writable directory"
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"localhost storage {self.root} is not writable; set 'localhost.storage_dir'")

    def location(self) -> str:
        return f"file://{self.root}/{self.prefix}"

    def same_location(self, location: str) -> bool:
        """Paths are compared once resolved: the same directory reached through a symlink matches."""
        here = self.location()
        if location.startswith(_SCHEME) and here.startswith(_SCHEME):
            return os.path.realpath(location[len(_SCHEME) :]) == os.path.realpath(here[len(_SCHEME) :])
        return location == here

    # ------------------------------------------------------------ data of jobs
    def data_path(self, bucket: str, key: str = "") -> Path:
        """The file (or directory) of ``bucket/key`` under the data root."""
        parts = [bucket, *key.split("/")]
        if not bucket or "/" in bucket or any(part in (".", "..") for part in parts) or key.startswith("/"):
            raise StorageError(
                f"invalid data location {bucket!r}/{key!r}: buckets and keys never contain '.' or '..' parts"
            )
        return self.data_root.joinpath(bucket, key) if key else self.data_root / bucket

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        bucket_dir = self.data_path(bucket)
        if not bucket_dir.is_dir():
            raise StorageBucketNotFound(
                f"bucket '{bucket}' does not exist: no directory {bucket_dir} under the data root "
                f"{self.data_root} (localhost.data_dir)"
            )
        self.request_counts["LIST"] += 1
        found = [
            _info(key, entry.stat())
            for key, entry in _walk(bucket_dir, prefix, follow_symlinks=True)
            if entry.is_file()
        ]
        found.sort(key=lambda info: info.key)
        yield from found

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        self.request_counts["HEAD"] += 1
        path = self.data_path(bucket, key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            stat = None
        if stat is None or not path.is_file():
            if not self.data_path(bucket).is_dir():
                raise StorageBucketNotFound(f"bucket '{bucket}' does not exist under the data root {self.data_root}")
            raise StorageKeyNotFound(f"no object {bucket}/{key} (file {path})")
        return _info(key, stat)

    def open_range(self, bucket: str, key: str, start: int, end: int) -> tuple[BinaryIO, ObjectInfo]:
        self.request_counts["GET"] += 1
        path = self.data_path(bucket, key)
        try:
            file = open(path, "rb")  # noqa: SIM115 - the caller closes the stream
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise StorageKeyNotFound(f"no object {bucket}/{key} (file {path})") from None
        info = _info(key, os.fstat(file.fileno()))
        file.seek(start)
        return cast(BinaryIO, RangeFile(file, max(0, min(end, info.size) - start))), info


def file_etag(stat: os.stat_result) -> str:
    """A local file's stand-in for an ETag: it changes when the file is rewritten or replaced."""
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def _info(key: str, stat: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key=key, size=stat.st_size, etag=file_etag(stat), modified=stat.st_mtime)


class RangeFile(io.RawIOBase):
    """The next ``length`` bytes of an open binary file."""

    def __init__(self, file: BinaryIO, length: int) -> None:
        self._file = file
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        count = self._file.readinto(view)  # type: ignore[attr-defined]
        self._left -= count or 0
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def _walk(root: Path, prefix: str, follow_symlinks: bool) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """``(key, entry)`` of the files below ``root`` whose key (path relative to ``root``) starts with ``prefix``."""
    directory, _, name_start = prefix.rpartition("/")
    base = root / directory if directory else root
    stack = [(base, directory + "/" if directory else "")]
    while stack:
        path, key_prefix = stack.pop()
        try:
            entries = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if _TEMP_MARK in entry.name or (path == base and not entry.name.startswith(name_start)):
                    continue
                if entry.is_dir(follow_symlinks=follow_symlinks):
                    stack.append((Path(entry.path), key_prefix + entry.name + "/"))
                else:
                    yield key_prefix + entry.name, entry


def _read_range(path: Path, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` of a file (fewer at its end), read with ``pread``: one open, no buffering."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while start < end:
            chunk = os.pread(fd, end - start, start)
            if not chunk:
                break
            chunks.append(chunk)
            start += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
