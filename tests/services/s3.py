"""A local S3-compatible server (moto) over HTTP, standing in for IBM COS.

``ibm_boto3`` is a separate copy of boto, so moto's in-process ``mock_aws`` does not
intercept it: tests talk to a real moto server on 127.0.0.1 instead. The fixtures use
dummy HMAC keys, which moto accepts unless its authentication is switched on (see
``tests/storage``). IAM API keys cannot be checked here: IBM's token service is not
reachable, so ``tests/storage`` exercises the client side of IAM (token exchange,
bearer header) against a local token endpoint only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import ibm_boto3
import pytest
from ibm_botocore.config import Config

from tests.services.processes import free_port

ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key"
REGION = "us-east-1"


def s3_client(endpoint: str, access_key_id: str = ACCESS_KEY_ID, secret_access_key: str = SECRET_ACCESS_KEY) -> Any:
    """A plain ibm_boto3 S3 client for test setup (creating buckets, inspecting objects)."""
    return ibm_boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def new_bucket(endpoint: str, prefix: str = "pywren-test") -> str:
    """Create a bucket with a fresh name at ``endpoint`` and return its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def cos_section(endpoint: str, bucket: str) -> dict[str, Any]:
    """An ``ibm_cos`` config section with the dummy HMAC keys."""
    return {
        "endpoint": endpoint,
        "bucket": bucket,
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
    }


def start_s3_server() -> tuple[Any, str]:
    """Start a moto S3 server (in a thread) on 127.0.0.1; return it and its endpoint URL. Stop it with ``stop()``."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole session; yields its endpoint URL."""
    server, endpoint = start_s3_server()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def cos_config(s3_server: str) -> dict[str, Any]:
    """Config sections for COS storage on the moto server, with a fresh bucket per test."""
    return {"pywren": {"storage_backend": "ibm_cos"}, "ibm_cos": cos_section(s3_server, new_bucket(s3_server))}
