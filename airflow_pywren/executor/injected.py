"""The injected parameters of PyWren functions: ``id``, ``storage``, ``internal_storage``, ``ibm_cos``, ``rabbitmq``.

A function that declares one of these names gets it from the function side (see
:mod:`airflow_pywren.executor.calls` for the rule and for registering more).
"""

from __future__ import annotations

import builtins
import io
import re
from typing import Any

from airflow_pywren.executor.calls import CallContext, InjectedParameter
from airflow_pywren.executor.errors import PyWrenConfigError, StorageKeyNotFound
from airflow_pywren.executor.storage import create_storage
from airflow_pywren.executor.storage.base import StorageBackend


class StorageHandle:
    """Objects in the job's storage backend (localhost files or COS), from inside a function.

    Short names work on the job's bucket (``put``, ``get``, ``list``, ``delete``); the
    original PyWren names take a bucket first (``put_object(bucket, key, body)``,
    ``get_object``, ``head_object``, ``list_objects``, ``list_keys``, ``delete_object``,
    ``delete_objects``). On localhost storage a bucket is a directory of ``localhost.data_dir``
    (default ``storage_dir``), the same directory a map over ``'bucket/prefix/'`` reads.
    """

    def __init__(self, backend: StorageBackend) -> None:
        backend = backend.whole_bucket()  # user objects may lie anywhere in the bucket (never outside it)
        self.backend = backend
        self.bucket = backend.bucket
        self.backend_name = backend.name
        self._buckets: dict[str, StorageBackend] = {}
        if backend.bucket_settings(backend.bucket) == {**backend.settings, "bucket": backend.bucket}:
            self._buckets[backend.bucket] = backend  # the job's bucket is where named buckets are

    def _in(self, bucket: str | None) -> StorageBackend:
        if not bucket:
            return self.backend
        if bucket not in self._buckets:
            self._buckets[bucket] = create_storage(
                self.backend.name, self.backend.bucket_settings(bucket)
            ).whole_bucket()
        return self._buckets[bucket]

    # --- the job's bucket ------------------------------------------------------
    def put(self, key: str, data: bytes | str) -> None:
        """Store ``data`` (str is UTF-8 encoded) at ``key``."""
        self.backend.put(key, data.encode() if isinstance(data, str) else bytes(data))

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The object's bytes (``byte_range`` is ``(start, end)``, end exclusive); KeyError when missing."""
        return self.backend.get(key, byte_range)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``."""
        return self.backend.list_keys(prefix)

    def delete(self, key: str) -> None:
        """Delete one object (no error when it does not exist)."""
        self.backend.delete(key)

    # --- the original names ----------------------------------------------------
    def put_object(self, bucket_name: str, key: str, data: bytes | str) -> None:
        storage = self._in(bucket_name)
        storage.put(key, data.encode() if isinstance(data, str) else bytes(data))

    def get_object(
        self, bucket_name: str, key: str, stream: bool = False, extra_get_args: dict[str, Any] | None = None
    ) -> Any:
        """The object's bytes, or a file-like object with ``stream=True``; ``extra_get_args={'Range': 'bytes=0-9'}``."""
        byte_range = _parse_range((extra_get_args or {}).get("Range"))
        data = self._in(bucket_name).get(key, byte_range)
        return io.BytesIO(data) if stream else data

    def head_object(self, bucket_name: str, key: str) -> dict[str, Any]:
        """``{'content-length': ...}`` of an object; KeyError when missing."""
        storage = self._in(bucket_name)
        if key not in storage.list_keys(key):
            raise StorageKeyNotFound(f"no object at key {key!r} in bucket {bucket_name!r}")
        return {"content-length": str(len(storage.get(key)))}

    def list_keys(self, bucket_name: str, prefix: str | None = None) -> builtins.list[str]:
        return self._in(bucket_name).list_keys(prefix or "")

    def list_objects(self, bucket_name: str, prefix: str | None = None) -> builtins.list[dict[str, Any]]:
        """``[{'Key': ..., 'Size': ...}]`` under ``prefix``."""
        storage = self._in(bucket_name)
        return [{"Key": key, "Size": len(storage.get(key))} for key in storage.list_keys(prefix or "")]

    def delete_object(self, bucket_name: str, key: str) -> None:
        self._in(bucket_name).delete(key)

    def delete_objects(self, bucket_name: str, key_list: builtins.list[str]) -> None:
        storage = self._in(bucket_name)
        for key in key_list:
            storage.delete(key)

    def bucket_exists(self, bucket_name: str) -> bool:
        try:
            self._in(bucket_name).check()
        except Exception:  # noqa: BLE001 - any refusal means "not usable"
            return False
        return True

    def __repr__(self) -> str:
        return f"<StorageHandle {self.backend.location()}>"


class InternalStorage(StorageHandle):
    """The original ``internal_storage``: the job's storage, with ``storage_handler``, ``bucket`` and ``prefix``."""

    def __init__(self, backend: StorageBackend) -> None:
        super().__init__(backend)
        self.storage_handler = StorageHandle(backend)
        self.prefix = backend.prefix

    def put_data(self, key: str, data: bytes | str) -> None:
        self.put(key, data)

    def get_data(self, key: str) -> bytes:
        return self.get(key)


class Unconfigured:
    """Stands in for a service that is not configured: any use raises a clear PyWrenConfigError."""

    def __init__(self, name: str, fix: str) -> None:
        object.__setattr__(self, "_message", f"the injected parameter '{name}' is not available: {fix}")

    def __getattr__(self, attribute: str) -> Any:
        raise PyWrenConfigError(object.__getattribute__(self, "_message"))

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<Unconfigured: {object.__getattribute__(self, '_message')}>"


def _parse_range(header: str | None) -> tuple[int, int] | None:
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    if not match:
        raise ValueError(f"Range {header!r} is not of the form 'bytes=start-end'")
    start = int(match.group(1))
    end = int(match.group(2)) + 1 if match.group(2) else 1 << 62
    return start, end


# ---------------------------------------------------------------------------- ibm_cos
_COS_KEYS = (
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "api_key",
    "iam_endpoint",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "bucket",
    "storage_prefix",
)


def _cos_settings(config: dict[str, Any], storage: StorageBackend) -> dict[str, Any] | None:
    if storage.name == "ibm_cos":
        return {"job_storage": True}
    cos = config.get("ibm_cos") or {}
    has_credentials = (cos.get("access_key_id") and cos.get("secret_access_key")) or cos.get("api_key")
    if not (cos.get("endpoint") and has_credentials):
        return None
    return {key: cos.get(key) for key in _COS_KEYS if cos.get(key) is not None}


def _cos_client(context: CallContext) -> Any:
    from airflow_pywren.executor.storage.ibm_cos import IBMCOSStorage

    settings = context.settings
    if settings is None:
        return Unconfigured(
            "ibm_cos",
            "no IBM COS is configured; set 'ibm_cos.endpoint' and credentials "
            "('access_key_id'/'secret_access_key' or 'api_key') in the config, or use "
            "storage_backend 'ibm_cos'",
        )
    if settings.get("job_storage"):
        settings = context.payload["storage"]["settings"]
    settings = {"bucket": "unused", "storage_prefix": "pywren.jobs", **settings}
    return IBMCOSStorage(settings).client


# --------------------------------------------------------------------------- rabbitmq
def _rabbitmq_settings(config: dict[str, Any], storage: StorageBackend) -> str | None:
    return (config.get("rabbitmq") or {}).get("amqp_url")


def _rabbitmq_connection(context: CallContext) -> Any:
    if not context.settings:
        return Unconfigured("rabbitmq", "no RabbitMQ is configured; set 'rabbitmq.amqp_url' in the config")
    import pika

    return pika.BlockingConnection(pika.URLParameters(context.settings))


def _close(value: Any) -> None:
    if not isinstance(value, Unconfigured):
        value.close()


INJECTED_PARAMETERS = [
    InjectedParameter("id", "the call's index in its job (0, 1, ...)", provide=lambda context: context.index),
    InjectedParameter(
        "storage",
        "a StorageHandle on the job's storage backend (get/put/list/delete)",
        provide=lambda context: StorageHandle(context.storage),
    ),
    InjectedParameter(
        "internal_storage",
        "the job's storage as the original internal_storage object",
        provide=lambda context: InternalStorage(context.storage),
    ),
    InjectedParameter(
        "ibm_cos",
        "an ibm_boto3 S3 client for the configured COS endpoint and credentials",
        provide=_cos_client,
        settings=_cos_settings,
    ),
    InjectedParameter(
        "rabbitmq",
        "a pika BlockingConnection to rabbitmq.amqp_url",
        provide=_rabbitmq_connection,
        settings=_rabbitmq_settings,
        release=_close,
    ),
]
