"""After jobs on every backend, no configured secret is in storage, in the client's DEBUG logs or in errors.

The secrets travel to the function side in each activation's payload (OpenWhisk requires
it; on Kubernetes and Code Engine it is a Secret mounted into the pods or instances; the
localhost runner gets it over its private socket), never into objects in storage. The
compute credentials (OpenWhisk key, kubeconfig token, Code Engine API key) and the
RabbitMQ password are scanned for too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import airflow_pywren as pywren
from tests.conftest import BACKEND_PARAMS, CONTAINER_BACKEND_PARAMS, merge_config
from tests.services.s3 import s3_client

SIGNING_KEY = secrets.token_hex(16)  # made at run time: the shipped source of this module holds no key


def square(x):
    return x * x


def fail(x):
    raise ValueError(f"item {x} refused")


def secrets_of(config: dict[str, Any]) -> list[str]:
    found: list[str] = [SIGNING_KEY, SIGNING_KEY.encode().hex()]  # the key, and as it travels in payloads
    if "ibm_cos" in config and config["pywren"].get("storage_backend") == "ibm_cos":
        found.append(config["ibm_cos"]["secret_access_key"])
    compute = config["pywren"].get("compute_backend")
    if compute == "ibm_cf":
        found.append(config["ibm_cf"]["api_key"].partition(":")[2])
    if compute == "k8s":  # the bearer token of the kubeconfig given in the config
        found.append(config["k8s"]["kubeconfig_dict"]["users"][0]["user"]["token"])
    if compute == "code_engine":
        found.append(config["code_engine"]["iam_api_key"])
    if config["pywren"].get("rabbitmq_monitor"):
        found.append(urlsplit(config["rabbitmq"]["amqp_url"]).password or "")
    return found


def stored_blobs(config: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Every object the jobs left in storage (localhost files or the COS bucket)."""
    if config["pywren"].get("storage_backend") == "ibm_cos":
        cos = config["ibm_cos"]
        client = s3_client(cos["endpoint"])
        listed = client.list_objects_v2(Bucket=cos["bucket"]).get("Contents", [])
        return [(o["Key"], client.get_object(Bucket=cos["bucket"], Key=o["Key"])["Body"].read()) for o in listed]
    root = Path(config["localhost"]["storage_dir"])
    return [(str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def with_runtime_keys(executor_config: dict[str, Any]) -> dict[str, Any]:
    """The config with the signing key and COS keys made at run time: none is in shipped source code."""
    config = merge_config(executor_config, {"pywren": {"signing_key": SIGNING_KEY}})
    if "ibm_cos" in config:  # the S3 server takes any keys
        config["ibm_cos"].update(access_key_id=secrets.token_hex(10), secret_access_key=secrets.token_hex(20))
    return config


def scan_jobs_for_secrets(
    config: dict[str, Any], caplog: pytest.LogCaptureFixture, errors: Callable[[], list[str]] = list
) -> pywren.FunctionExecutor:
    """Run jobs that succeed and fail, then look for the config's secrets in storage, the DEBUG logs and errors.

    ``errors`` makes more error messages to scan (it runs while the jobs' executor is open); the
    executor is returned (closed) for what the caller wants to check about it.
    """
    configured = secrets_of(config)
    assert len(configured) >= 2 and all(configured)
    caplog.set_level(logging.DEBUG, logger="airflow_pywren")  # a log_level given earlier in the run may have raised it
    messages: list[str] = []
    with pywren.FunctionExecutor(config=config) as executor:
        assert executor.get_result(executor.map(square, [1, 2, 3])) == [1, 4, 9]
        assert executor.get_result(executor.map_reduce(square, [1, 2], sum)) == 5
        failed = executor.call_async(fail, 7)
        with pytest.raises(ValueError) as raised:
            failed.result()
        messages += [str(raised.value), repr(raised.value), repr(failed.error)]
        with pytest.raises(pywren.PyWrenConfigError) as bad:
            pywren.FunctionExecutor(config=merge_config(config, {"pywren": {"monitor_interval": -1}}))
        messages.append(str(bad.value))
        messages += errors()
        blobs = stored_blobs(config)
        assert len(blobs) >= 10  # the jobs' objects were scanned, not an empty place
        assert any(b"square" in blob for _, blob in blobs)  # the scan reads what is in them
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "DEBUG" in {record.levelname for record in caplog.records}
    for secret in configured:
        assert secret not in logs, f"a secret is in the client's logs: {secret[:4]}..."
        assert not [m for m in messages if secret in m], f"a secret is in an error message: {secret[:4]}..."
        leaked = [name for name, blob in blobs if secret.encode() in blob]
        assert not leaked, f"a secret ({secret[:4]}...) is in stored objects: {leaked[:5]}"
    return executor


@pytest.mark.parametrize("executor_config", [*BACKEND_PARAMS, *CONTAINER_BACKEND_PARAMS], indirect=True)
def test_no_secret_in_storage_logs_or_errors(executor_config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    scan_jobs_for_secrets(with_runtime_keys(executor_config), caplog)


@pytest.fixture
def broker_user(rabbitmq_broker) -> Iterator[tuple[str, str]]:
    """A RabbitMQ user with a password made at run time, allowed everything on the default virtual host."""
    user, password = f"scan-{secrets.token_hex(4)}", secrets.token_hex(16)
    rabbitmq_broker.start()
    rabbitmq_broker.ctl("add_user", user, password)
    rabbitmq_broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    yield user, password
    rabbitmq_broker.ctl("delete_user", user, check=False)


@pytest.mark.rabbitmq
@pytest.mark.parametrize("executor_config", ["localhost", "localhost+ibm_cos"], indirect=True)
def test_no_amqp_password_in_storage_logs_or_errors(
    executor_config: dict[str, Any], rabbitmq_broker, broker_user: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    user, password = broker_user
    port = urlsplit(rabbitmq_broker.amqp_url).port
    url = f"amqp://{user}:{password}@127.0.0.1:{port}/%2F"
    config = merge_config(
        with_runtime_keys(executor_config), {"pywren": {"rabbitmq_monitor": True}, "rabbitmq": {"amqp_url": url}}
    )
    wrong_password = secrets.token_hex(12)

    def broker_errors() -> list[str]:
        """Errors and warnings that name the broker: a URL that is not valid, a password it refuses."""
        with pytest.raises(pywren.PyWrenConfigError) as invalid:
            pywren.FunctionExecutor(
                config=merge_config(config, {"rabbitmq": {"amqp_url": f"amqp://{user}:{password}@127.0.0.1:x/"}})
            )
        assert "is not a valid AMQP URL" in str(invalid.value)  # naming the URL: the scan checks how
        refused = merge_config(config, {"rabbitmq": {"amqp_url": url.replace(password, wrong_password)}})
        with pywren.FunctionExecutor(config=refused) as unauthorized:
            assert not unauthorized.job_monitor.connected
        assert any(f"RabbitMQ at amqp://{user}:***@127.0.0.1:{port}/" in r.getMessage() for r in caplog.records)
        return [str(invalid.value)]

    executor = scan_jobs_for_secrets(config, caplog, broker_errors)
    assert password in secrets_of(config)
    assert executor.job_monitor.name == "rabbitmq"
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert wrong_password not in logs
    assert "connected to RabbitMQ at" in logs  # the jobs ran with notices through the broker
