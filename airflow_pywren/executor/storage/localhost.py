"""Localhost storage: one file per key under ``{storage_dir}/{bucket}``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from airflow_pywren.executor.errors import StorageError, StorageKeyNotFound
from airflow_pywren.executor.storage.base import StorageBackend

_TEMP_MARK = ".tmp-"


class LocalhostStorage(StorageBackend):
    """Files on this machine; writes are atomic (temp file, then rename)."""

    name = "localhost"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.root = Path(os.path.expanduser(settings["storage_dir"])) / self.bucket
        self.settings["storage_dir"] = str(Path(os.path.expanduser(settings["storage_dir"])).resolve())

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise StorageError(f"invalid storage key {key!r}: keys are relative and never contain '..'")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        self.request_counts["PUT"] += 1
        path = self._path(key)
        temp = path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}-{id(data):x}")
        try:
            temp.write_bytes(data)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(data)
        os.replace(temp, path)

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        self.request_counts["GET"] += 1
        try:
            with open(self._path(key), "rb") as file:
                if byte_range is None:
                    return file.read()
                start, end = byte_range
                file.seek(start)
                return file.read(end - start)
        except (FileNotFoundError, NotADirectoryError):
            raise StorageKeyNotFound(f"no object at key {key!r} in {self.location()}") from None

    def list_keys(self, prefix: str) -> list[str]:
        self.request_counts["LIST"] += 1
        directory, _, name_start = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        keys: list[str] = []
        stack = [(base, directory + "/" if directory else "")]
        while stack:
            path, key_prefix = stack.pop()
            try:
                entries = os.scandir(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                for entry in entries:
                    if _TEMP_MARK in entry.name:
                        continue
                    key = key_prefix + entry.name
                    if path == base and not entry.name.startswith(name_start):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((Path(entry.path), key + "/"))
                    else:
                        keys.append(key)
        keys.sort()
        return keys

    def delete_prefix(self, prefix: str) -> int:
        self.request_counts["DELETE"] += 1
        keys = self.list_keys(prefix)
        directory = self._path(prefix.rstrip("/"))
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
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create localhost storage at {self.root}: {exc}; set 'localhost.storage_dir' to a writable directory"
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"localhost storage {self.root} is not writable; set 'localhost.storage_dir'")

    def location(self) -> str:
        return f"file://{self.root}/{self.prefix}"
