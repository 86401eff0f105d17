"""The IBM COS storage backend over HTTP against moto: objects, errors, retries, IAM, counts."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from airflow_pywren.executor.errors import PyWrenConfigError, StorageError, StorageKeyNotFound
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.storage import storage_spec
from airflow_pywren.executor.storage.ibm_cos import IBMCOSStorage, StorageConfigError
from tests.conftest import merge_config
from tests.services.processes import free_port
from tests.storage.conftest import GOOD_API_KEY, AuthS3, cos_settings
from tests.storage.servers import FaultProxy, IAMTokenServer

pytestmark = pytest.mark.s3


def double(x: int) -> int:
    return 2 * x


def _put_many(storage: IBMCOSStorage, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: storage.put(key, key.encode()), keys))


def _executor_config(localhost_config: dict[str, Any], cos_config: dict[str, Any], **cos: Any) -> dict[str, Any]:
    return merge_config(localhost_config, cos_config, {"ibm_cos": cos})


# ------------------------------------------------------------------ objects
def test_put_and_byte_range_gets(storage: IBMCOSStorage) -> None:
    data = bytes(range(256)) * 4
    storage.put("pywren.jobs/x/data.pickle", data)
    assert storage.get("pywren.jobs/x/data.pickle") == data
    assert storage.get("pywren.jobs/x/data.pickle", (10, 20)) == data[10:20]
    assert storage.get("pywren.jobs/x/data.pickle", (0, 1)) == data[:1]
    assert storage.get("pywren.jobs/x/data.pickle", (1023, 1024)) == data[1023:]
    assert storage.request_counts["GET"] == 4
    assert storage.get("pywren.jobs/x/data.pickle", (7, 7)) == b""
    assert storage.request_counts["GET"] == 4  # an empty range needs no request
    storage.put("pywren.jobs/x/data.pickle", b"new")
    assert storage.get("pywren.jobs/x/data.pickle") == b"new"
    assert storage.request_counts["PUT"] == 2


def test_missing_key_raises_storage_key_not_found(storage: IBMCOSStorage) -> None:
    with pytest.raises(StorageKeyNotFound, match=r"no object at key 'pywren.jobs/nope' in cos://") as info:
        storage.get("pywren.jobs/nope")
    assert isinstance(info.value, KeyError)
    with pytest.raises(StorageKeyNotFound):
        storage.get("pywren.jobs/nope", (0, 10))


def test_list_keys_returns_every_page_beyond_1000(storage: IBMCOSStorage) -> None:
    wanted = [f"pywren.jobs/big/{i:05d}" for i in range(1001)]
    _put_many(storage, [*wanted, "pywren.jobs/big-sibling/x", "pywren.jobs/other/a"])
    assert storage.request_counts["PUT"] == 1003  # counted exactly from 16 threads
    before = storage.request_counts["LIST"]
    assert storage.list_keys("pywren.jobs/big/") == wanted
    assert storage.request_counts["LIST"] - before == 2  # two pages: 1000 + 1
    assert len(storage.list_keys("pywren.jobs/big")) == 1002
    assert storage.list_keys("pywren.jobs/nothing/") == []


def test_delete_prefix_deletes_in_batches_of_1000(storage: IBMCOSStorage) -> None:
    doomed = [f"pywren.jobs/exec/J{i // 100:03d}/{i:05d}/status.json" for i in range(1001)]
    _put_many(storage, [*doomed, "pywren.jobs/exec-other/keep", "pywren.jobs/keep/a"])
    assert storage.delete_prefix("pywren.jobs/exec/") == 1001
    assert storage.request_counts["DELETE"] == 2  # 1000 + 1
    assert storage.list_keys("pywren.jobs/exec/") == []
    assert storage.list_keys("pywren.jobs/") == ["pywren.jobs/exec-other/keep", "pywren.jobs/keep/a"]
    assert storage.delete_prefix("pywren.jobs/exec/") == 0
    with pytest.raises(ValueError, match="non-empty prefix"):
        storage.delete_prefix("")


def test_forked_child_builds_its_own_client(storage: IBMCOSStorage) -> None:
    storage.put("pywren.jobs/parent", b"p")
    parent_client = storage._client
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            if storage._client is not parent_client:
                storage.put("pywren.jobs/child", b"c")
                code = 0 if storage.get("pywren.jobs/parent") == b"p" else 2
            else:
                code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage.get("pywren.jobs/child") == b"c"
    assert storage._client is parent_client


def test_function_settings_carry_only_the_bucket_access(
    cos_config: dict[str, Any], localhost_config: dict[str, Any], iam_server: IAMTokenServer
) -> None:
    config = _executor_config(localhost_config, cos_config, api_key=GOOD_API_KEY, iam_endpoint=iam_server.token_url)
    with FunctionExecutor(config=config) as fexec:
        spec = storage_spec(fexec.storage)
    section = cos_config["ibm_cos"]
    common = {
        "endpoint": section["endpoint"],
        "bucket": section["bucket"],
        "storage_prefix": "pywren.jobs",
        "region": "us-east-1",
        "max_attempts": 8,
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    assert spec == {
        "backend": "ibm_cos",
        "settings": {
            **common,
            "access_key_id": section["access_key_id"],
            "secret_access_key": section["secret_access_key"],
        },
    }
    iam_only = {**config, "ibm_cos": {**config["ibm_cos"], "access_key_id": None, "secret_access_key": None}}
    with FunctionExecutor(config=iam_only) as fexec:
        assert storage_spec(fexec.storage)["settings"] == {
            **common,
            "api_key": GOOD_API_KEY,
            "iam_endpoint": iam_server.token_url,
        }


# ------------------------------------------------ check() at executor creation
def test_missing_bucket_fails_executor_creation(cos_config: dict[str, Any], localhost_config: dict[str, Any]) -> None:
    config = _executor_config(localhost_config, cos_config, bucket="no-such-bucket-here")
    endpoint = cos_config["ibm_cos"]["endpoint"]
    with pytest.raises(StorageConfigError) as info:
        FunctionExecutor(config=config)
    assert str(info.value) == (
        f"bucket 'no-such-bucket-here' does not exist at endpoint {endpoint}; create it or fix ibm_cos.bucket"
    )
    assert isinstance(info.value, StorageError) and isinstance(info.value, PyWrenConfigError)


def test_unreachable_endpoint_fails_executor_creation(
    cos_config: dict[str, Any], localhost_config: dict[str, Any]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = _executor_config(localhost_config, cos_config, endpoint=endpoint)
    with pytest.raises(StorageError, match=rf"cannot reach the COS endpoint {endpoint}: .*check ibm_cos.endpoint"):
        FunctionExecutor(config=config)


def test_endpoint_without_scheme_means_https(cos_config: dict[str, Any]) -> None:
    settings = {**cos_settings(cos_config), "endpoint": "s3.us-south.cloud-object-storage.appdomain.cloud/"}
    assert IBMCOSStorage(settings).endpoint == "https://s3.us-south.cloud-object-storage.appdomain.cloud"


def _auth_config(localhost_config: dict[str, Any], auth: AuthS3, key: tuple[str, str]) -> dict[str, Any]:
    return merge_config(
        localhost_config,
        {
            "pywren": {"storage_backend": "ibm_cos"},
            "ibm_cos": {
                "endpoint": auth.endpoint,
                "bucket": auth.bucket,
                "access_key_id": key[0],
                "secret_access_key": key[1],
            },
        },
    )


def test_unknown_access_key_is_named(s3_auth_server: AuthS3, localhost_config: dict[str, Any]) -> None:
    config = _auth_config(localhost_config, s3_auth_server, ("AKIANOTAREALKEY00000", s3_auth_server.writer[1]))
    with pytest.raises(StorageConfigError, match=r"access key id 'AKIANOTAREALKEY00000'.*fix ibm_cos.access_key_id"):
        FunctionExecutor(config=config)


def test_wrong_secret_is_named(s3_auth_server: AuthS3, localhost_config: dict[str, Any]) -> None:
    config = _auth_config(localhost_config, s3_auth_server, (s3_auth_server.writer[0], "not-the-secret"))
    with pytest.raises(StorageConfigError, match=r"rejected the request signature.*fix ibm_cos.secret_access_key"):
        FunctionExecutor(config=config)


def test_key_without_permission_is_named(s3_auth_server: AuthS3, localhost_config: dict[str, Any]) -> None:
    config = _auth_config(localhost_config, s3_auth_server, s3_auth_server.no_access)
    with pytest.raises(
        StorageConfigError, match=r"access denied for list_objects_v2 in bucket .*Writer role.*ibm_cos.access_key_id"
    ):
        FunctionExecutor(config=config)


def test_signed_requests_run_jobs_on_a_verifying_server(
    s3_auth_server: AuthS3, localhost_config: dict[str, Any]
) -> None:
    """Client and function side both sign with the HMAC keys; the server checks every request."""
    with FunctionExecutor(config=_auth_config(localhost_config, s3_auth_server, s3_auth_server.writer)) as fexec:
        assert fexec.get_result(fexec.call_async(double, 21)) == 42
        assert fexec.get_result(fexec.map(double, range(5))) == [0, 2, 4, 6, 8]
        assert fexec.clean() > 0
        assert fexec.storage.list_keys(fexec.storage.prefix + "/" + fexec.executor_id + "/") == []


# ---------------------------------------------------------------------- IAM
def test_iam_api_key_is_exchanged_for_a_bearer_token(
    cos_config: dict[str, Any], localhost_config: dict[str, Any], iam_server: IAMTokenServer, fault_proxy: FaultProxy
) -> None:
    """The IAM path against a local token endpoint (IBM's own token check cannot run here)."""
    config = _executor_config(
        localhost_config,
        cos_config,
        endpoint=fault_proxy.url,
        access_key_id=None,
        secret_access_key=None,
        api_key=GOOD_API_KEY,
        iam_endpoint=iam_server.token_url,
    )
    with FunctionExecutor(config=config) as fexec:
        assert fexec.get_result(fexec.call_async(double, 4)) == 8
    assert iam_server.requests and all(r["apikey"] == [GOOD_API_KEY] for r in iam_server.requests)
    assert len(fault_proxy.authorizations) >= 6  # client LISTs/PUTs/GETs and the call's GETs/PUTs
    assert set(fault_proxy.authorizations) == {f"Bearer {iam_server.token}"}


def test_bad_iam_api_key_fails_executor_creation(
    cos_config: dict[str, Any], localhost_config: dict[str, Any], iam_server: IAMTokenServer
) -> None:
    config = _executor_config(
        localhost_config,
        cos_config,
        access_key_id=None,
        secret_access_key=None,
        api_key="revoked-key",
        iam_endpoint=iam_server.token_url,
    )
    with pytest.raises(StorageConfigError, match=r"could not get an IAM token from .*fix ibm_cos.api_key"):
        FunctionExecutor(config=config)


# ------------------------------------------------------------------ retries
def test_transient_failures_are_retried_by_the_sdk(cos_config: dict[str, Any], fault_proxy: FaultProxy) -> None:
    storage = IBMCOSStorage({**cos_settings(cos_config), "endpoint": fault_proxy.url})
    fault_proxy.fail_next(2, ("PUT",))
    storage.put("pywren.jobs/k", b"value")
    assert [(m, how) for m, _, how in fault_proxy.injected] == [("PUT", "503"), ("PUT", "503")]
    fault_proxy.fail_next(1, ("GET",), how="reset")
    assert storage.get("pywren.jobs/k", (1, 3)) == b"al"
    fault_proxy.fail_next(1, ("GET",))
    assert storage.list_keys("pywren.jobs/") == ["pywren.jobs/k"]
    assert len(fault_proxy.injected) == 4
    assert dict(storage.request_counts) == {"PUT": 1, "GET": 1, "LIST": 1, "RETRY": 4}


def test_a_body_cut_off_mid_read_is_read_again(cos_config: dict[str, Any], fault_proxy: FaultProxy) -> None:
    """The SDK retries requests but not the reading of a body; the backend reads it again."""
    storage = IBMCOSStorage({**cos_settings(cos_config), "endpoint": fault_proxy.url})
    data = bytes(range(256)) * 64
    storage.put("pywren.jobs/big", data)
    fault_proxy.fail_next(1, ("GET",), how="truncate")
    assert storage.get("pywren.jobs/big", (100, 9000)) == data[100:9000]
    assert [how for _, _, how in fault_proxy.injected] == ["truncate"]
    assert storage.request_counts["GET"] == 2


def test_exhausted_retries_raise_storage_error(cos_config: dict[str, Any], fault_proxy: FaultProxy) -> None:
    storage = IBMCOSStorage({**cos_settings(cos_config), "endpoint": fault_proxy.url, "max_attempts": 2})
    fault_proxy.fail_next(5, ("PUT",))
    with pytest.raises(
        StorageError, match=r"put_object of key 'pywren.jobs/k' in cos://.* failed at .*: SlowDown Please reduce"
    ):
        storage.put("pywren.jobs/k", b"value")
    assert len(fault_proxy.injected) == 2
    assert dict(storage.request_counts) == {"PUT": 1, "RETRY": 1}


def test_map_job_completes_through_transient_failures(
    cos_config: dict[str, Any], localhost_config: dict[str, Any], fault_proxy: FaultProxy
) -> None:
    config = _executor_config(localhost_config, cos_config, endpoint=fault_proxy.url)
    with FunctionExecutor(config=config) as fexec:
        fault_proxy.fail_next(2, ("PUT",))  # the client's staging of the job
        futures = fexec.map(double, range(10))
        assert fexec.storage.request_counts["RETRY"] == 2
        fault_proxy.fail_next(2, ("PUT",))  # then the calls' own writes (the client PUTs no more)
        assert fexec.get_result(futures) == [2 * x for x in range(10)]
        assert fexec.storage.request_counts["PUT"] == 4  # function, data, manifest, activation ids
    assert [m for m, _, _ in fault_proxy.injected] == ["PUT"] * 4


# ----------------------------------------------------------- request counts
def test_map_of_100_is_submitted_with_four_puts(cos_config: dict[str, Any], localhost_config: dict[str, Any]) -> None:
    with FunctionExecutor(config=merge_config(localhost_config, cos_config)) as fexec:
        assert dict(fexec.storage.request_counts) == {"LIST": 1}  # check()
        futures = fexec.map(double, range(100))
        assert dict(fexec.storage.request_counts) == {"LIST": 1, "PUT": 4}  # 3 to stage, 1 for activation ids
        assert fexec.get_result(futures) == [2 * x for x in range(100)]
        assert fexec.storage.request_counts["PUT"] == 4
        assert fexec.storage.request_counts["GET"] >= 100


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"read_timeout": 0}])
def test_bad_retry_settings_are_rejected(cos_config: dict[str, Any], bad: dict[str, Any]) -> None:
    with pytest.raises(PyWrenConfigError, match=r"'ibm_cos.max_attempts' must be 1 or more and the timeouts positive"):
        IBMCOSStorage({**cos_settings(cos_config), **bad})
