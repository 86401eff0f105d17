"""Fixtures of the COS storage tests: the backend on moto, a fault proxy, IAM, and an auth-enforcing moto."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.executor.config import load_config
from airflow_pywren.executor.storage.ibm_cos import IBMCOSStorage
from tests.services.processes import free_port
from tests.services.s3 import REGION, new_bucket
from tests.storage.servers import FaultProxy, IAMTokenServer

GOOD_API_KEY = "good-iam-api-key"


def cos_settings(cos_config: dict[str, Any]) -> dict[str, Any]:
    """The full ``ibm_cos`` section (defaults filled in) as the executor builds it."""
    return load_config(cos_config)["ibm_cos"]


@pytest.fixture
def storage(cos_config: dict[str, Any]) -> IBMCOSStorage:
    """The COS backend on a fresh bucket of the moto server."""
    return IBMCOSStorage(cos_settings(cos_config))


@pytest.fixture
def fault_proxy(s3_server: str) -> Iterator[FaultProxy]:
    """A proxy in front of the moto server that fails the requests it is told to."""
    proxy = FaultProxy(s3_server)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def iam_server() -> Iterator[IAMTokenServer]:
    """A local IAM token endpoint that accepts only ``GOOD_API_KEY``."""
    server = IAMTokenServer(GOOD_API_KEY)
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class AuthS3:
    """A moto server that verifies HMAC signatures, with one bucket and two users."""

    endpoint: str
    bucket: str
    writer: tuple[str, str]  # access key with s3:* on everything
    no_access: tuple[str, str]  # valid access key without any policy


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"moto server did not listen on port {port}:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthS3]:
    """A separate moto process with request authentication switched on after setup.

    Moto skips authentication unless told otherwise; its ``/moto-api/reset-auth``
    switch is process-wide, so this server is its own process, not the shared one.
    Users and keys are created through moto's IAM API (with boto3, which moto ships with).
    """
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_port(port, process, log)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        keys = {}
        for user in ("writer", "no-access"):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        iam.put_user_policy(
            UserName="writer",
            PolicyName="s3-all",
            PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
        )
        bucket = new_bucket(endpoint)
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200
        yield AuthS3(endpoint, bucket, keys["writer"], keys["no-access"])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
