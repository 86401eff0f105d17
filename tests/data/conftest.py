"""Fixtures of the data-map tests: an executor on each storage and a way to put data objects in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from tests.conftest import merge_config
from tests.services.s3 import new_bucket, s3_client


class DataStore:
    """Puts test objects where a map over data finds them: a bucket of the storage under test."""

    def __init__(self, kind: str, bucket: str, root: Path | None = None, endpoint: str | None = None) -> None:
        self.kind = kind
        self.bucket = bucket
        self.root = root
        self.endpoint = endpoint

    def put(self, key: str, data: bytes, bucket: str | None = None) -> None:
        bucket = bucket or self.bucket
        if self.kind == "localhost":
            path = self.root / bucket / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            s3_client(self.endpoint).put_object(Bucket=bucket, Key=key, Body=data)

    def new_bucket(self) -> str:
        if self.kind == "localhost":
            name = f"data-{uuid.uuid4().hex[:10]}"
            (self.root / name).mkdir(parents=True)
            return name
        return new_bucket(self.endpoint, "data")


@pytest.fixture(params=["localhost", "ibm_cos"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def data_config(storage_kind: str, localhost_config: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    if storage_kind == "localhost":
        return localhost_config
    return merge_config(localhost_config, request.getfixturevalue("cos_config"))


@pytest.fixture
def store(storage_kind: str, data_config: dict[str, Any], request: pytest.FixtureRequest) -> DataStore:
    if storage_kind == "localhost":
        root = Path(data_config["localhost"]["storage_dir"])
        store = DataStore("localhost", "", root=root)
    else:
        store = DataStore("ibm_cos", "", endpoint=request.getfixturevalue("s3_server"))
    store.bucket = store.new_bucket()
    return store


@pytest.fixture
def pw(data_config: dict[str, Any]) -> Iterator[Any]:
    executor = pywren.ibm_cf_executor(config=data_config)
    try:
        yield executor
    finally:
        executor.clean()
        executor.close()


@pytest.fixture
def local_pw(localhost_config: dict[str, Any]) -> Iterator[Any]:
    """An executor on the embedded default backends (for data that does not live in its storage)."""
    executor = pywren.ibm_cf_executor(config=localhost_config)
    try:
        yield executor
    finally:
        executor.clean()
        executor.close()
