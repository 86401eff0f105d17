"""Where data lives: the forms ``iterdata`` may take to name objects instead of Python values.

* ``'bucket'``, ``'bucket/'``, ``'bucket/prefix/'``, ``'cos://bucket/prefix/'`` (``s3://`` is a
  synonym): every object under the bucket or prefix, in the job's storage backend;
* ``'bucket/key'``, ``'cos://bucket/key'``: one object (a key that names no object but has
  objects under ``key/`` is read as that prefix);
* ``'http://...'``, ``'https://...'``: one object per URL, read with ranged GETs;
* ``'file:///path'`` (or a :class:`pathlib.Path`): a file, or every file under a directory,
  read by the workers from this machine's disk (localhost compute only).

On the embedded localhost storage a bucket is a directory under ``localhost.data_dir``, so
one DAG runs unchanged locally and against COS. Airflow's ``ObjectStoragePath`` (and any
object whose ``str()`` is one of these URLs) is accepted as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_pywren.executor.errors import DataSourceError

STORAGE, FILE, HTTP = "storage", "file", "http"
STORAGE_SCHEMES = ("cos", "s3")


@dataclass(frozen=True)
class Location:
    """One parsed item of ``iterdata`` that names data."""

    kind: str  # STORAGE, FILE or HTTP
    text: str  # as given, for messages and the job reference
    bucket: str = ""
    key: str = ""  # the key or prefix (STORAGE), the absolute path (FILE)
    url: str = ""  # HTTP and FILE
    is_prefix: bool = False  # STORAGE: every object under ``key``

    def describe(self) -> str:
        if self.kind == STORAGE:
            return f"{self.bucket}/{self.key}"
        return self.url


def location_text(value: Any) -> str | None:
    """The text of an iterdata item that may name data, or None for other Python values."""
    if isinstance(value, str):
        return value
    if hasattr(value, "protocol") and hasattr(value, "path"):  # Airflow's ObjectStoragePath, fsspec-style paths
        return _path_url(value)
    if isinstance(value, os.PathLike):
        return "file://" + os.path.abspath(os.fspath(value))
    return None


def _path_url(value: Any) -> str:
    """``s3://bucket/key`` of an ObjectStoragePath: its ``str()`` names the connection (``s3://conn@bucket/key``)."""
    protocol = value.protocol[0] if isinstance(value.protocol, (tuple, list)) else value.protocol
    path = str(value.path)
    if protocol in ("file", "local", ""):
        return "file://" + path
    return f"{protocol}://{path}"


def parse_location(value: Any) -> Location:
    """Parse one data location; raise DataSourceError naming the value and the accepted forms."""
    text = location_text(value)
    if text is None:
        raise DataSourceError(
            f"iterdata item {value!r:.80} does not name data: use 'bucket/prefix/', 'cos://bucket/key', "
            "'s3://...', 'http(s)://...' or 'file:///path'"
        )
    stripped = text.strip()
    if not stripped:
        raise DataSourceError("iterdata item '' names no data: give a bucket, a prefix, a key or a URL")
    scheme, sep, rest = stripped.partition("://")
    if not sep:
        scheme, rest = "", stripped
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        parts = urlsplit(stripped)
        if not parts.netloc:
            raise DataSourceError(f"URL {text!r} has no host; write it as http(s)://host/path")
        return Location(HTTP, text, url=stripped)
    if scheme == "file":
        path = unquote(urlsplit(stripped).path)
        if not path.startswith("/"):
            raise DataSourceError(f"{text!r} is not an absolute file URL; write file:///absolute/path")
        return Location(
            FILE, text, key=os.path.normpath(path) + ("/" if path.endswith("/") else ""), url="file://" + path
        )
    if scheme and scheme not in STORAGE_SCHEMES:
        raise DataSourceError(
            f"iterdata item {text!r} has scheme {scheme!r}; use cos:// or s3:// (the job's storage), "
            "http(s):// or file://"
        )
    if rest.startswith("/"):
        raise DataSourceError(
            f"iterdata item {text!r} starts with '/': write 'bucket/key' (storage) or 'file:///path' (a local file)"
        )
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise DataSourceError(f"iterdata item {text!r} names no bucket; write 'bucket/prefix/' or 'cos://bucket/key'")
    if any(part in (".", "..") for part in key.split("/")):
        raise DataSourceError(f"iterdata item {text!r}: keys may not contain '.' or '..' parts")
    return Location(STORAGE, text, bucket=bucket, key=key, is_prefix=key == "" or key.endswith("/"))


def looks_like_location(value: Any) -> bool:
    """True for strings with a data scheme (cos://, s3://, http(s)://, file://) and for path objects."""
    if isinstance(value, str):
        return value.strip().lower().startswith(("cos://", "s3://", "http://", "https://", "file://"))
    return location_text(value) is not None
