"""Localhost storage: atomic writes, ranged reads, listing, deletion."""

from __future__ import annotations

import threading

import pytest

from airflow_pywren.executor.errors import StorageError, StorageKeyNotFound
from airflow_pywren.executor.storage.localhost import LocalhostStorage


@pytest.fixture
def storage(tmp_path):
    backend = LocalhostStorage({"storage_dir": str(tmp_path), "bucket": "b", "storage_prefix": "p"})
    backend.check()
    return backend


def test_readers_never_see_a_half_written_object(storage):
    size = 4 * 1024 * 1024
    versions = [b"a" * size, b"b" * size]
    storage.put("p/obj", versions[0])
    stop = threading.Event()
    seen = []

    def reader():
        while not stop.is_set():
            data = storage.get("p/obj")
            seen.append((len(data), data[:1], data[-1:]))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(40):
        storage.put("p/obj", versions[i % 2])
    stop.set()
    thread.join()
    assert seen and all(length == size and first == last for length, first, last in seen)
    assert not [k for k in storage.list_keys("p/") if k != "p/obj"]  # no temp files left or listed


def test_ranged_get_and_missing_key(storage):
    storage.put("p/x/data", b"0123456789")
    assert storage.get("p/x/data", (2, 5)) == b"234"
    assert storage.get("p/x/data", (4, 4)) == b""
    assert storage.get("p/x/data", (8, 20)) == b"89"  # a range past the end reads what there is, as S3 does
    with pytest.raises(StorageKeyNotFound, match="p/x/missing"):
        storage.get("p/x/missing")
    with pytest.raises(StorageKeyNotFound, match="p/x/missing"):
        storage.get("p/x/missing", (0, 3))


def test_list_by_prefix_and_delete_prefix(storage):
    for key in ("p/e1/j1/a", "p/e1/j1/status/00000.json", "p/e1/j2/a", "p/e10/j1/a"):
        storage.put(key, b"1")
    assert storage.list_keys("p/e1/") == ["p/e1/j1/a", "p/e1/j1/status/00000.json", "p/e1/j2/a"]
    assert storage.list_keys("p/e1") == ["p/e1/j1/a", "p/e1/j1/status/00000.json", "p/e1/j2/a", "p/e10/j1/a"]
    assert storage.delete_prefix("p/e1/") == 3
    assert storage.list_keys("p/") == ["p/e10/j1/a"]


def test_keys_cannot_escape_the_bucket(storage):
    with pytest.raises(StorageError, match="never contain '..'"):
        storage.put("p/../../etc/x", b"1")
