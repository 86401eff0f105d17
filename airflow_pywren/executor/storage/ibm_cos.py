"""IBM Cloud Object Storage (or any S3-compatible store) through ``ibm-cos-sdk``.

Settings come from the ``ibm_cos`` config section: ``endpoint``, ``bucket``,
``storage_prefix``, ``region`` and the credentials, either HMAC keys
(``access_key_id`` + ``secret_access_key``, signed with SigV4) or an IAM ``api_key``
(exchanged for a bearer token at ``iam_endpoint``). HMAC keys win when both are set.

Retries with backoff on 5xx, throttling and connection errors are the SDK's own
("standard" retry mode, ``max_attempts`` attempts); timeouts are ``connect_timeout`` and
``read_timeout``. One client per process and connection settings is shared by every
instance and thread (SDK clients are thread-safe; the session that builds them is
not, so it is used under a lock). Nothing connects at import, and a forked child
builds its own client: the parent's sockets are never reused.

``request_counts`` counts logical requests: ``PUT``, ``GET`` (a ranged read is one
GET), ``LIST`` (one per page of up to 1000 keys), ``DELETE`` (one per batch of up to
1000 keys); ``RETRY`` counts the extra attempts the SDK made after transient failures.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO, ClassVar, cast

import ibm_boto3
import requests
from ibm_botocore.config import Config
from ibm_botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
)
from ibm_botocore.exceptions import ConnectionError as SDKConnectionError

from airflow_pywren.executor.config import Setting
from airflow_pywren.executor.errors import (
    PyWrenConfigError,
    StorageBucketNotFound,
    StorageError,
    StorageKeyNotFound,
)
from airflow_pywren.executor.storage.base import ObjectInfo, StorageBackend

logger = logging.getLogger(__name__)

MAX_POOL_CONNECTIONS = 64  # executor read threads (max_workers) and a margin
DELETE_BATCH = 1000  # the most keys one DeleteObjects request accepts
CHECK_MAX_ATTEMPTS = 2  # check() fails fast on an unreachable endpoint
BODY_READ_ATTEMPTS = 3  # the SDK retries requests, not a body cut off mid-read

_lock = threading.Lock()
_session: Any = None
_clients: dict[tuple[Any, ...], Any] = {}


def _forget_clients() -> None:
    """In a forked child: drop the parent's session and clients (and their sockets)."""
    global _lock, _session, _clients
    _lock, _session, _clients = threading.Lock(), None, {}


os.register_at_fork(after_in_child=_forget_clients)


class StorageConfigError(StorageError, PyWrenConfigError):
    """The bucket cannot be used because of a setting: the message names the key to fix."""


def _default(key: str) -> Any:
    return IBMCOSStorage.settings_schema[key].default


def normalize_endpoint(endpoint: str) -> str:
    """``s3.us-south.cloud-object-storage.appdomain.cloud`` -> ``https://...`` (no trailing slash)."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def _shared_client(key: tuple[Any, ...]) -> Any:
    """The process-wide client for ``key`` (see ``IBMCOSStorage._client_key``), built once."""
    global _session
    with _lock:
        client = _clients.get(key)
        if client is not None:
            return client
        endpoint, region, auth, max_attempts, connect_timeout, read_timeout = key
        if _session is None:
            _session = ibm_boto3.session.Session()
        config = Config(
            region_name=region,
            signature_version="oauth" if auth[0] == "iam" else "s3v4",
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        if auth[0] == "iam":
            credentials = {"ibm_api_key_id": auth[1], "ibm_auth_endpoint": auth[2]}
        else:
            credentials = {"aws_access_key_id": auth[1], "aws_secret_access_key": auth[2]}
        client = _session.client("s3", endpoint_url=endpoint, config=config, **credentials)
        _clients[key] = client
        logger.debug("built COS client for %s (%s auth, %d attempts)", endpoint, auth[0], max_attempts)
        return client


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


class _EmptyStream:
    """A stream with nothing to read (closing the body of a request made only for its headers)."""

    def __init__(self, body: Any = None) -> None:
        self._body = body

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        if self._body is not None:
            self._body.close()


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class IBMCOSStorage(StorageBackend):
    """Objects in one COS bucket under ``storage_prefix``; every PUT is atomic."""

    name = "ibm_cos"
    settings_schema: ClassVar[dict[str, Setting]] = {
        "endpoint": Setting((str, type(None)), None, "COS or S3-compatible endpoint URL"),
        "bucket": Setting((str, type(None)), None, "bucket holding job data"),
        "storage_prefix": Setting((str,), "pywren.jobs", "key prefix of job data"),
        "region": Setting((str,), "us-east-1", "region name used to sign requests"),
        "api_key": Setting((str, type(None)), None, "IAM API key"),
        "iam_endpoint": Setting((str,), "https://iam.cloud.ibm.com/identity/token", "IAM token endpoint"),
        "access_key_id": Setting((str, type(None)), None, "HMAC access key id"),
        "secret_access_key": Setting((str, type(None)), None, "HMAC secret access key"),
        "max_attempts": Setting((int,), 8, "attempts per request, with backoff", minimum=1),
        "connect_timeout": Setting((int, float), 10, "seconds to connect", minimum=0.001),
        "read_timeout": Setting((int, float), 60, "seconds to read", minimum=0.001),
    }

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        for key in ("endpoint", "bucket"):
            if not settings[key]:
                raise PyWrenConfigError(f"storage_backend 'ibm_cos' needs 'ibm_cos.{key}'; set it in the config")
        has_hmac = settings["access_key_id"] and settings["secret_access_key"]
        if not (has_hmac or settings["api_key"]):
            raise PyWrenConfigError(
                "storage_backend 'ibm_cos' needs credentials: 'ibm_cos.api_key' (IAM) or both "
                "'ibm_cos.access_key_id' and 'ibm_cos.secret_access_key' (HMAC)"
            )

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        if not settings.get("endpoint") or not settings.get("bucket"):
            raise PyWrenConfigError(
                "storage 'ibm_cos' needs 'ibm_cos.endpoint' and 'ibm_cos.bucket'; set them in the config"
            )
        self.endpoint = normalize_endpoint(settings["endpoint"])
        self.region: str = settings.get("region") or _default("region")
        self.max_attempts: int = settings.get("max_attempts", _default("max_attempts"))
        self.connect_timeout: float = settings.get("connect_timeout", _default("connect_timeout"))
        self.read_timeout: float = settings.get("read_timeout", _default("read_timeout"))
        if self.max_attempts < 1 or self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise PyWrenConfigError(
                f"'ibm_cos.max_attempts' must be 1 or more and the timeouts positive; got max_attempts={self.max_attempts}, "
                f"connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout}"
            )
        if settings.get("access_key_id") and settings.get("secret_access_key"):
            self.auth: tuple[str, str, str] = ("hmac", settings["access_key_id"], settings["secret_access_key"])
        elif settings.get("api_key"):
            self.auth = ("iam", settings["api_key"], settings.get("iam_endpoint") or _default("iam_endpoint"))
        else:
            raise PyWrenConfigError(
                "storage 'ibm_cos' needs credentials: 'ibm_cos.api_key' (IAM) or both "
                "'ibm_cos.access_key_id' and 'ibm_cos.secret_access_key' (HMAC)"
            )
        self._client_obj: Any = None
        self._client_pid = -1
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------ client
    def _client_key(self, max_attempts: int) -> tuple[Any, ...]:
        return (self.endpoint, self.region, self.auth, max_attempts, self.connect_timeout, self.read_timeout)

    @property
    def _client(self) -> Any:
        if self._client_pid != os.getpid():
            self._client_obj = _shared_client(self._client_key(self.max_attempts))
            self._client_pid = os.getpid()
        return self._client_obj

    def _count(self, kind: str, response: dict[str, Any] | None = None) -> None:
        retries = ((response or {}).get("ResponseMetadata") or {}).get("RetryAttempts") or 0
        with self._count_lock:
            self.request_counts[kind] += 1
            if retries:
                self.request_counts["RETRY"] += retries

    @contextmanager
    def _errors(self, kind: str, operation: str, key: str | None = None) -> Iterator[None]:
        """Count a failed request and turn the SDK's error into ours."""
        try:
            yield
        except ClientError as exc:
            self._count(kind, exc.response)
            raise self._client_error(exc, operation, key) from exc
        except (BotoCoreError, requests.RequestException, OSError) as exc:
            self._count(kind)
            raise self._transport_error(exc, operation) from exc

    def _request(self, kind: str, operation: str, key: str | None = None, client: Any = None, **kwargs: Any) -> Any:
        """Call ``operation`` on the client and count it."""
        with self._errors(kind, operation, key):
            response = getattr(client or self._client, operation)(**kwargs)
        self._count(kind, response)
        return response

    # ------------------------------------------------------------ errors
    def _client_error(self, exc: Any, operation: str, key: str | None) -> StorageError | StorageKeyNotFound:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        message = error.get("Message") or str(exc)
        if code in ("NoSuchKey", "404") and key is not None:
            return StorageKeyNotFound(f"no object at key {key!r} in {self.location()}")
        if code == "NoSuchBucket":
            return StorageConfigError(
                f"bucket '{self.bucket}' does not exist at endpoint {self.endpoint}; create it or fix ibm_cos.bucket"
            )
        if code == "InvalidAccessKeyId":
            return StorageConfigError(
                f"COS at {self.endpoint} does not know the HMAC access key id {self.auth[1]!r}: {message}; "
                "fix ibm_cos.access_key_id (and its ibm_cos.secret_access_key)"
            )
        if code == "SignatureDoesNotMatch":
            return StorageConfigError(
                f"COS at {self.endpoint} rejected the request signature of access key {self.auth[1]!r}: {message}; "
                "fix ibm_cos.secret_access_key (it does not belong to ibm_cos.access_key_id)"
            )
        if code in ("AccessDenied", "Forbidden", "403") or status == 403:
            which = "ibm_cos.api_key" if self.auth[0] == "iam" else "ibm_cos.access_key_id"
            return StorageConfigError(
                f"access denied for {operation} in bucket '{self.bucket}' at {self.endpoint} ({code}: {message}); "
                f"give the credentials of {which} the Writer role on the bucket, or fix {which}"
            )
        where = f"key {key!r} in {self.location()}" if key else f"bucket '{self.bucket}'"
        return StorageError(f"{operation} of {where} failed at {self.endpoint}: {code or status} {message}")

    def _transport_error(self, exc: BaseException, operation: str) -> StorageError:
        if isinstance(exc, CredentialRetrievalError) or (
            self.auth[0] == "iam" and isinstance(exc, requests.RequestException)
        ):
            return StorageConfigError(
                f"could not get an IAM token from {self.auth[2]} for ibm_cos.api_key: {exc}; "
                "fix ibm_cos.api_key (or ibm_cos.iam_endpoint)"
            )
        if isinstance(exc, SDKConnectionError):
            return StorageError(
                f"cannot reach the COS endpoint {self.endpoint}: {exc}; check ibm_cos.endpoint and the network"
            )
        return StorageError(f"{operation} at {self.endpoint} failed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ interface
    def put(self, key: str, data: bytes) -> None:
        self.confine(key)
        self._request("PUT", "put_object", key, Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.confine(key)}
        if byte_range is not None:
            start, end = byte_range
            if start < 0 or end < start:
                raise ValueError(f"invalid byte range {byte_range!r} for key {key!r}: need 0 <= start <= end")
            if start == end:
                return b""
            kwargs["Range"] = f"bytes={start}-{end - 1}"
        for attempt in range(1, BODY_READ_ATTEMPTS + 1):
            body = self._request("GET", "get_object", key, **kwargs)["Body"]
            try:
                return body.read()
            except (HTTPClientError, IncompleteReadError) as exc:
                if attempt == BODY_READ_ATTEMPTS:
                    raise StorageError(f"reading {key!r} from {self.location()} failed {attempt} times: {exc}") from exc
                logger.debug("reading %s was cut off (%s); reading it again", key, exc)
            finally:
                body.close()
        raise AssertionError("unreachable")

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``: one LIST request (counted) per page of up to 1000 keys."""
        self.confine(prefix, is_prefix=True)
        pages = iter(self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix))
        found: list[str] = []
        while True:
            with self._errors("LIST", "list_objects_v2"):
                page = next(pages, None)
            if page is None:
                return found
            self._count("LIST", page)
            found.extend(obj["Key"] for obj in page.get("Contents", ()))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``: LISTs, then one DeleteObjects per 1000 keys."""
        if not prefix:
            raise ValueError("delete_prefix needs a non-empty prefix; it would empty the whole bucket")
        self.confine(prefix, is_prefix=True)
        found = self.list_keys(prefix)
        for batch in _batches(found, DELETE_BATCH):
            response = self._request(
                "DELETE",
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"could not delete {len(errors)} object(s) under {prefix!r} in {self.location()}; "
                    f"first: {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )
        return len(found)

    def delete(self, key: str) -> None:
        self._request("DELETE", "delete_object", key, Bucket=self.bucket, Key=self.confine(key))

    @property
    def client(self) -> Any:
        """The ``ibm_boto3`` S3 client of this storage (for functions that want the full COS API)."""
        return self._client

    def check(self) -> None:
        """One LIST of the prefix (at most 1 key) with a small retry budget, so a bad setting fails fast.

        Raises StorageConfigError (a StorageError and a PyWrenConfigError) naming the key to
        fix for a missing bucket or rejected credentials, StorageError when unreachable.
        """
        client = _shared_client(self._client_key(min(CHECK_MAX_ATTEMPTS, self.max_attempts)))
        self._request("LIST", "list_objects_v2", client=client, Bucket=self.bucket, Prefix=f"{self.prefix}/", MaxKeys=1)

    # ------------------------------------------------------------ data of jobs
    @contextmanager
    def _data_errors(self, kind: str, operation: str, bucket: str, key: str | None = None) -> Iterator[None]:
        """Like ``_errors``, but a missing bucket is the data's, not the job bucket's."""
        try:
            with self._errors(kind, operation, key):
                yield
        except StorageConfigError as exc:
            code = str(((getattr(exc.__cause__, "response", None) or {}).get("Error") or {}).get("Code") or "")
            if code == "NoSuchBucket":
                raise StorageBucketNotFound(f"bucket '{bucket}' does not exist at endpoint {self.endpoint}") from exc
            raise

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """One LIST (counted) per page of up to 1000 keys; each page is yielded before the next is asked for."""
        pages = iter(self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
        while True:
            with self._data_errors("LIST", "list_objects_v2", bucket):
                page = next(pages, None)
            if page is None:
                return
            self._count("LIST", page)
            for obj in page.get("Contents", ()):
                modified = obj.get("LastModified")
                yield ObjectInfo(
                    key=obj["Key"],
                    size=int(obj["Size"]),
                    etag=_etag(obj.get("ETag")),
                    modified=modified.timestamp() if modified is not None else None,
                )

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        with self._data_errors("HEAD", "head_object", bucket, key):
            response = self._client.head_object(Bucket=bucket, Key=key)
        self._count("HEAD", response)
        return ObjectInfo(key=key, size=int(response["ContentLength"]), etag=_etag(response.get("ETag")))

    def open_range(self, bucket: str, key: str, start: int, end: int) -> tuple[BinaryIO, ObjectInfo]:
        """One ranged GET; the body is read as the caller reads the stream (never held whole)."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if end <= start:
            kwargs["Range"] = "bytes=0-0"  # still one request: it tells the object's current size and ETag
        else:
            kwargs["Range"] = f"bytes={start}-{end - 1}"
        with self._data_errors("GET", "get_object", bucket, key):
            try:
                response = self._client.get_object(**kwargs)
            except ClientError as exc:
                if (exc.response.get("Error") or {}).get("Code") != "InvalidRange":
                    raise
                response = None  # an empty object has no byte 0
        if response is None:
            self._count("GET")
            info = self.head_object(bucket, key)
            return cast(BinaryIO, _EmptyStream()), info
        self._count("GET", response)
        content_range = str(response.get("ContentRange") or "")
        size = int(content_range.rpartition("/")[2]) if "/" in content_range else int(response["ContentLength"])
        info = ObjectInfo(key=key, size=size, etag=_etag(response.get("ETag")))
        body = response["Body"]
        return (cast(BinaryIO, _EmptyStream(body)) if end <= start else body), info

    def function_settings(self) -> dict[str, Any]:
        """What travels with each activation so the function side reaches the same bucket.

        ``endpoint``, ``bucket``, ``storage_prefix``, ``region``, the retry and timeout
        settings, and the one set of credentials in use: ``access_key_id`` and
        ``secret_access_key`` (HMAC) or ``api_key`` and ``iam_endpoint`` (IAM). Nothing
        from other config sections.
        """
        settings: dict[str, Any] = {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "storage_prefix": self.prefix,
            "region": self.region,
            "max_attempts": self.max_attempts,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.auth[0] == "hmac":
            settings.update(access_key_id=self.auth[1], secret_access_key=self.auth[2])
        else:
            settings.update(api_key=self.auth[1], iam_endpoint=self.auth[2])
        return settings

    def location(self) -> str:
        return f"cos://{self.bucket}/{self.prefix}"

    def close(self) -> None:
        """Nothing to release: the process-wide client (and its pool) is kept for reuse."""
        self._client_obj, self._client_pid = None, -1
