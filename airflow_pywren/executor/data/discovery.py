"""Discovery: from data locations to objects with sizes and ETags, without reading any object.

Prefixes are listed page by page (one LIST per 1,000 keys on COS); single keys are
described with HEAD requests, or, when many keys share a directory, with one listing of
it; URLs with one HEAD each; local files with ``stat``. Whatever cannot be found fails
here, at submit, with the location and the fix in the message.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from airflow_pywren.executor.data.locations import FILE, HTTP, STORAGE, Location
from airflow_pywren.executor.data.partitioner import DataObject
from airflow_pywren.executor.errors import DataSourceError, StorageBucketNotFound, StorageKeyNotFound
from airflow_pywren.executor.storage.base import ObjectInfo, StorageBackend
from airflow_pywren.executor.storage.localhost import file_etag

logger = logging.getLogger(__name__)

LIST_INSTEAD_OF_HEAD = 16  # this many keys in one directory: one listing costs less than a HEAD each
HTTP_TIMEOUT = 15.0


def discover(locations: list[Location], storage: StorageBackend, max_workers: int = 16) -> list[list[DataObject]]:
    """The objects behind each location, in order (each prefix's objects in key order)."""
    found: list[list[DataObject] | None] = [None] * len(locations)
    single_keys: list[int] = []
    for index, location in enumerate(locations):
        if location.kind == STORAGE and location.is_prefix:
            found[index] = _list_prefix(storage, location)
        elif location.kind == STORAGE:
            single_keys.append(index)
    _describe_keys(storage, locations, single_keys, found, max_workers)
    others = [i for i, loc in enumerate(locations) if loc.kind in (FILE, HTTP)]
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(others) or 1))) as pool:
        for index, objects in zip(others, pool.map(lambda i: _describe_other(locations[i]), others)):
            found[index] = objects
    return [objects or [] for objects in found]


def _storage_object(bucket: str, info: ObjectInfo) -> DataObject:
    return DataObject(STORAGE, bucket, info.key, "", info.size, info.etag)


def _bucket_missing(storage: StorageBackend, location: Location, exc: Exception) -> DataSourceError:
    where = (
        f"the data root {getattr(storage, 'data_root', '')} (localhost.data_dir)"
        if storage.is_local
        else storage.location().split("://")[0] + " storage"
    )
    return DataSourceError(
        f"{location.text!r}: {exc}; check the bucket name, or create bucket '{location.bucket}' in {where}"
    )


def _list_prefix(storage: StorageBackend, location: Location) -> list[DataObject]:
    try:
        objects = [
            _storage_object(location.bucket, info)
            for info in storage.list_objects(location.bucket, location.key)
            if not (info.key.endswith("/") and info.size == 0)
        ]  # "directory" markers hold no data
    except StorageBucketNotFound as exc:
        raise _bucket_missing(storage, location, exc) from None
    if not objects:
        raise DataSourceError(
            f"{location.text!r} names no objects: nothing under prefix {location.key!r} of bucket "
            f"'{location.bucket}'; check the prefix (keys are case-sensitive) or that the upstream step wrote its data"
        )
    return objects


def _describe_keys(
    storage: StorageBackend, locations: list[Location], indexes: list[int], found: list[Any], max_workers: int
) -> None:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index in indexes:
        location = locations[index]
        groups[(location.bucket, location.key.rpartition("/")[0])].append(index)
    remaining: list[int] = []
    for (bucket, directory), members in groups.items():
        if len(members) < LIST_INSTEAD_OF_HEAD:
            remaining.extend(members)
            continue
        try:
            listing = {info.key: info for info in storage.list_objects(bucket, f"{directory}/" if directory else "")}
        except StorageBucketNotFound as exc:
            raise _bucket_missing(storage, locations[members[0]], exc) from None
        for index in members:
            info = listing.get(locations[index].key)
            if info is None:
                remaining.append(index)
            else:
                found[index] = [_storage_object(bucket, info)]
    if remaining:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(remaining)))) as pool:
            for index, objects in zip(remaining, pool.map(lambda i: _describe_key(storage, locations[i]), remaining)):
                found[index] = objects


def _describe_key(storage: StorageBackend, location: Location) -> list[DataObject]:
    try:
        return [_storage_object(location.bucket, storage.head_object(location.bucket, location.key))]
    except StorageBucketNotFound as exc:
        raise _bucket_missing(storage, location, exc) from None
    except StorageKeyNotFound:
        pass
    try:  # 'bucket/logs' for the directory 'logs/'
        objects = [
            _storage_object(location.bucket, info)
            for info in storage.list_objects(location.bucket, location.key + "/")
            if info.size or not info.key.endswith("/")
        ]
    except StorageBucketNotFound as exc:
        raise _bucket_missing(storage, location, exc) from None
    if not objects:
        raise DataSourceError(
            f"{location.text!r}: no object {location.key!r} in bucket '{location.bucket}' and nothing under "
            f"'{location.key}/'; check the key, or end a prefix with '/'"
        )
    return objects


def _describe_other(location: Location) -> list[DataObject]:
    return _describe_url(location) if location.kind == HTTP else _describe_files(location)


def _describe_files(location: Location) -> list[DataObject]:
    path = location.key.rstrip("/") or "/"
    if os.path.isfile(path):
        return [_file_object(path)]
    if not os.path.isdir(path):
        raise DataSourceError(f"{location.text!r}: no file or directory {path} on this machine")
    files = sorted(
        os.path.join(root, name) for root, dirs, names in os.walk(path) for name in names if not name.startswith(".")
    )
    if not files:
        raise DataSourceError(f"{location.text!r}: directory {path} holds no files")
    return [_file_object(file) for file in files]


def _file_object(path: str) -> DataObject:
    stat = os.stat(path)
    return DataObject(FILE, "", path, "file://" + path, stat.st_size, file_etag(stat))


def _describe_url(location: Location) -> list[DataObject]:
    url = location.url
    headers = {"Accept-Encoding": "identity"}
    try:
        response = requests.head(url, allow_redirects=True, timeout=HTTP_TIMEOUT, headers=headers)
        if response.status_code in (405, 501):  # no HEAD: ask for the first byte instead
            response = requests.get(url, headers={**headers, "Range": "bytes=0-0"}, stream=True, timeout=HTTP_TIMEOUT)
            response.close()
    except requests.RequestException as exc:
        raise DataSourceError(
            f"cannot reach URL {url}: {type(exc).__name__}: {exc}; check the URL and that the server is up"
        ) from None
    if response.status_code >= 400:
        raise DataSourceError(f"URL {url} answered {response.status_code} {response.reason}; check the URL")
    size = _url_size(response)
    ranges = response.headers.get("Accept-Ranges", "").lower() == "bytes" or response.status_code == 206
    etag = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
    return [DataObject(HTTP, "", "", response.url or url, size, etag.strip('"'), ranges)]


def _url_size(response: requests.Response) -> int:
    content_range = response.headers.get("Content-Range", "")
    if response.status_code == 206 and "/" in content_range and not content_range.endswith("*"):
        return int(content_range.rpartition("/")[2])
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() and response.status_code != 206 else -1
