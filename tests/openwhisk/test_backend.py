"""The ibm_cf backend's REST client against the OpenWhisk-API test server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

import airflow_pywren as pywren
from airflow_pywren.executor.compute.ibm_cf import ACTION_CODE, OpenWhiskCompute, OpenWhiskError, action_name
from airflow_pywren.executor.config import load_config
from tests.conftest import merge_config
from tests.services.processes import free_port

pytestmark = pytest.mark.timeout(120)


def double(x):
    return 2 * x


def sleep_then(seconds):
    time.sleep(seconds)
    return seconds


def with_ibm_cf(config: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return merge_config(config, {"ibm_cf": settings})


# ------------------------------------------------------------------ auth and check
def test_calls_run_with_basic_auth_and_report_their_activation(server, namespace, ow_config, executors):
    pw = executors(ow_config)
    futures = pw.map(double, range(5))
    assert pw.get_result(futures) == [0, 2, 4, 6, 8]
    records = server.invocations_of(namespace)
    assert len(records) == 5 and {r["auth"] for r in records} == {"Basic"}
    assert {r["activation_id"] for r in records} == {f.activation_id for f in futures}
    assert all(r["user_agent"].startswith("airflow-pywren/") for r in records)


def test_requests_without_or_with_a_wrong_key_are_refused(server, namespace):
    url = f"{server.url}/api/v1/namespaces/{namespace}/actions"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=("someone", "wrong"), timeout=10).status_code == 401
    user, _, key = server.settings(namespace)["api_key"].partition(":")
    assert requests.get(url, auth=(user, key), timeout=10).status_code == 200


def test_bad_api_key_fails_at_executor_creation(ow_config):
    config = with_ibm_cf(ow_config, api_key="00000000-0000-0000-0000-000000000000:not-the-key")
    with pytest.raises(pywren.PyWrenConfigError, match=r"rejected 'ibm_cf.api_key' \(HTTP 401"):
        pywren.FunctionExecutor(config=config)


def test_unknown_namespace_fails_at_executor_creation(ow_config):
    with pytest.raises(
        pywren.PyWrenConfigError, match=r"namespace 'ibm_cf.namespace' = 'no-such-ns' not found.*HTTP 404"
    ):
        pywren.FunctionExecutor(config=with_ibm_cf(ow_config, namespace="no-such-ns"))


def test_namespace_of_another_key_fails_at_executor_creation(server, ow_config):
    with pytest.raises(pywren.PyWrenConfigError, match=r"not allowed to use namespace .*HTTP 403"):
        pywren.FunctionExecutor(config=with_ibm_cf(ow_config, namespace=server.default_namespace))


def test_default_namespace_underscore_is_the_keys_own(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, namespace="_"))
    assert pw.get_result(pw.call_async(double, 21)) == 42
    assert len(server.invocations_of(namespace)) == 1


def test_unreachable_endpoint_fails_at_executor_creation(ow_config):
    port = free_port()
    with pytest.raises(
        OpenWhiskError, match=rf"cannot reach the OpenWhisk endpoint 'ibm_cf.endpoint' = http://127.0.0.1:{port}"
    ):
        pywren.FunctionExecutor(config=with_ibm_cf(ow_config, endpoint=f"http://127.0.0.1:{port}"))


def test_missing_settings_are_config_errors(ow_config):
    with pytest.raises(pywren.PyWrenConfigError, match="needs 'ibm_cf.namespace'"):
        pywren.FunctionExecutor(config=with_ibm_cf(ow_config, namespace=None))
    with pytest.raises(pywren.PyWrenConfigError, match="uuid:key"):
        pywren.FunctionExecutor(config=with_ibm_cf(ow_config, api_key="no-colon"))


# ------------------------------------------------------------------ retries and failures
def test_429s_and_500s_are_retried_and_the_job_completes(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, invoke_retries=6))
    OpenWhiskCompute(pw.config).deploy(256)
    server.inject(429, 3, namespace)
    server.inject(500, 2, namespace)
    server.inject(503, 1, namespace)
    assert pw.get_result(pw.map(double, range(4))) == [0, 2, 4, 6]
    assert server.answers[429] == 3 and server.answers[500] == 2 and server.answers[503] == 1
    assert len(server.invocations_of(namespace)) == 4  # each call started exactly once


def test_exhausted_retries_fail_that_call_with_the_http_reason(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, invoke_retries=2, max_concurrency=1))
    OpenWhiskCompute(pw.config).deploy(256)
    server.inject(429, 3, namespace)  # all three attempts of the first call
    futures = pw.map(double, [1, 2, 3])
    done, not_done = pw.wait(futures, timeout=60)
    assert not not_done
    assert [f.status for f in futures] == ["error", "success", "success"]
    with pytest.raises(
        pywren.ComputeError,
        match=r"HTTP 429 Too Many Requests after 3 attempts invoking action .*\(ibm_cf.invoke_retries=2\): Too many",
    ):
        futures[0].result()
    assert [f.result() for f in futures[1:]] == [4, 6]
    assert server.attempts[action_name("pywren", server.settings()["runtime"], 256)] == 5


def test_401_on_invoke_is_not_retried(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, invoke_retries=5))
    server.namespaces[namespace].api_key = "rotated:key"  # the key stops working after the check
    future = pw.call_async(double, 1)
    with pytest.raises(
        pywren.ComputeError,
        match=r"HTTP 401 Unauthorized invoking action .* \(not retried\): The supplied authentication is invalid",
    ):
        pw.get_result(future, timeout=60)
    assert server.answers[401] == 1


def test_endpoint_lost_after_the_check_fails_the_calls_after_retries(ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, invoke_retries=1))
    pw.compute.client.endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    futures = pw.map(double, [1, 2])
    pw.wait(futures, timeout=60)
    assert [f.status for f in futures] == ["error", "error"]
    with pytest.raises(pywren.ComputeError, match=r"ConnectionError after 2 attempts invoking action .*: .*refused"):
        futures[1].result()


# ------------------------------------------------------------------ actions
def test_first_invocation_deploys_the_action_once(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, max_concurrency=8))
    assert pw.get_result(pw.map(double, range(16))) == [2 * i for i in range(16)]
    name = action_name("pywren", server.settings()["runtime"], 256)
    assert server.puts[name] == 1
    action = server.namespaces[namespace].actions[name]
    assert action["exec"] == {
        "kind": "blackbox",
        "image": server.settings()["runtime"],
        "code": ACTION_CODE,
        "main": "main",
        "binary": False,
    }
    assert action["limits"]["memory"] == 256 and action["limits"]["timeout"] == 600_000
    assert server.answers[404] >= 1 and len(server.invocations_of(namespace)) == 16


def test_runtime_memory_of_a_job_selects_the_action(server, namespace, ow_config, executors):
    pw = executors(ow_config)
    assert pw.get_result(pw.map(double, [1, 2], runtime_memory=512)) == [2, 4]
    name = action_name("pywren", server.settings()["runtime"], 512)
    assert server.namespaces[namespace].actions[name]["limits"]["memory"] == 512
    assert server.invocation_counts(namespace) == {name: 2}


def test_deploy_list_and_delete(namespace, ow_config):
    compute = OpenWhiskCompute(load_config(ow_config))
    first, second = compute.deploy(256), compute.deploy(1024, runtime="example/other:1")
    assert first.endswith("_256MB") and second == "pywren_example_other_1_1024MB"
    listed = compute.list_runtimes()
    assert [(a["name"], a["image"], a["memory"]) for a in listed] == [
        (first, compute.runtime, 256),
        (second, "example/other:1", 1024),
    ]
    assert compute.deploy(256) == first  # update in place
    assert compute.delete(second) is True and compute.delete(second) is False
    assert [a["name"] for a in compute.list_runtimes()] == [first]
    compute.close()


def test_bad_memory_fails_the_calls_with_the_deploy_error(ow_config, executors):
    pw = executors(ow_config)
    future = pw.call_async(double, 1, runtime_memory=64)
    with pytest.raises(
        pywren.ComputeError,
        match=r"HTTP 404 Not Found invoking action .*, and deploying it failed: OpenWhisk refused to deploy action .*HTTP 400",
    ):
        pw.get_result(future, timeout=60)


def test_action_timeout_caps_the_call_timeout_so_the_status_is_recorded(ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, timeout=3))
    future = pw.call_async(sleep_then, 30, timeout=30)
    with pytest.raises(pywren.ActivationTimeoutError, match="timeout of 2.7 s"):
        pw.get_result(future, timeout=60)


def test_cancel_is_not_supported_and_job_link_lists_the_activations(server, namespace, ow_config, executors):
    pw = executors(ow_config)
    futures = pw.map(double, [1, 2, 3])
    pw.wait(futures)
    assert pw.cancel(futures) == 0
    link = pw.compute.job_link(pw.executor_id, futures[0].job_id)
    user, _, key = server.settings(namespace)["api_key"].partition(":")
    server.wait_idle()
    listed = requests.get(link, auth=(user, key), timeout=10).json()
    assert sorted(a["activationId"] for a in listed) == sorted(f.activation_id for f in futures)


# ------------------------------------------------------------------ concurrency
def test_max_concurrency_bounds_invocations_in_flight_and_connections(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, max_concurrency=3))
    OpenWhiskCompute(pw.config).deploy(256)
    server.reset_stats()
    server.invoke_delay = 0.1
    assert pw.get_result(pw.map(double, range(15))) == [2 * i for i in range(15)]
    assert server.max_in_flight == 3
    assert len(server.connections) <= 3  # pooled keep-alive connections, not one per call


# ------------------------------------------------------------------ payloads and the remote invoker
def test_activation_payload_is_job_and_call_without_the_openwhisk_credential(server, namespace, ow_config, executors):
    pw = executors(ow_config)
    futures = pw.map(double, [1, 2])
    pw.wait(futures)
    key = server.settings(namespace)["api_key"]
    for record in server.invocations_of(namespace):
        payload = record["payload"]
        assert set(payload) == {
            "storage",
            "prefix",
            "executor_id",
            "job_id",
            "func_key",
            "data_key",
            "data_bare",
            "extra_env",
            "extra_meta",
            "runtime_memory",
            "timeout",
            "host_submit_time",
            "rabbitmq",
            "call_id",
            "data_byte_range",
            "injected",
            "signing",
            "write_retry_seconds",
            "versions",
            "nested",
        }
        assert set(payload["nested"]) == {"pywren", "localhost", "ibm_cf"}  # what executors inside calls inherit
        assert "api_key" not in payload["nested"]["ibm_cf"] and "signing_key" not in payload["nested"]["pywren"]
        assert set(payload["signing"]) == {"key", "previous", "source"}  # the pickle signing key travels, documented
        assert payload["storage"]["backend"] == "localhost"
        assert set(payload["storage"]["settings"]) <= set(pw.config["localhost"])
        assert key not in json.dumps(payload) and key.partition(":")[2] not in json.dumps(payload)


def test_remote_invoker_above_the_threshold(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, remote_invoker=True, remote_invoker_threshold=10))
    assert pw.get_result(pw.map(double, range(12))) == [2 * i for i in range(12)]
    server.wait_idle()
    records = server.invocations_of(namespace)
    from_client = [r for r in records if "remote-invoker" not in r["user_agent"]]
    from_invoker = [r for r in records if "remote-invoker" in r["user_agent"]]
    assert len(from_client) == 1 and "invoke_batch" in from_client[0]["payload"]
    assert len(from_invoker) == 12 and all("invoke_batch" not in r["payload"] for r in from_invoker)
    assert sorted(r["payload"]["call_id"] for r in from_invoker) == [f"{i:05d}" for i in range(12)]
    invoker_activation = from_client[0]["activation_id"]
    assert all(r["user_agent"].endswith(f"remote-invoker/{invoker_activation}") for r in from_invoker)
    # the credential travels only in the invoker's payload
    key = server.settings(namespace)["api_key"]
    assert from_client[0]["payload"]["invoke_batch"]["openwhisk"]["api_key"] == key
    assert not any(key in json.dumps(r["payload"]) for r in from_invoker)
    result = server.activation(invoker_activation).record()["response"]
    assert result["success"] and result["result"]["invoked"] == 12 and result["result"]["failed"] == 0

    below = pw.map(double, range(9))
    assert pw.get_result(below) == [2 * i for i in range(9)]
    assert len(server.invocations_of(namespace)) == 13 + 9  # below the threshold: invoked by the client


def test_remote_invoker_records_the_calls_it_cannot_invoke(server, namespace, ow_config, executors):
    pw = executors(
        with_ibm_cf(ow_config, remote_invoker=True, remote_invoker_threshold=4, max_concurrency=1, invoke_retries=1)
    )
    server.inject(429, 2, namespace, user_agent="remote-invoker")  # both attempts of the first call
    futures = pw.map(double, range(5))
    done, not_done = pw.wait(futures, timeout=60)
    assert not not_done
    assert [f.status for f in futures] == ["error"] + ["success"] * 4
    with pytest.raises(
        pywren.ComputeError,
        match=r"remote invoker could not invoke call 00000: HTTP 429 Too Many Requests after 2 attempts",
    ):
        futures[0].result()


def test_remote_invoker_that_cannot_start_fails_every_call(server, namespace, ow_config, executors):
    pw = executors(with_ibm_cf(ow_config, remote_invoker=True, remote_invoker_threshold=2, invoke_retries=0))
    OpenWhiskCompute(pw.config).deploy(256)
    server.inject(500, 1, namespace)
    futures = pw.map(double, range(3))
    pw.wait(futures, timeout=60)
    assert [f.status for f in futures] == ["error"] * 3
    assert "remote invoker could not be started: HTTP 500" in futures[2].error["message"]


# ------------------------------------------------------------------ IAM
def test_iam_token_is_fetched_once_and_refreshed_after_a_401(server, localhost_config, executors):
    namespace, _ = server.add_namespace(iam_api_key="iam-key-for-tests")
    config = merge_config(
        localhost_config, {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": server.settings(namespace)}
    )
    before = server.token_requests
    pw = executors(config)
    assert pw.get_result(pw.map(double, range(6))) == [2 * i for i in range(6)]
    assert server.token_requests - before == 1
    assert {r["auth"] for r in server.invocations_of(namespace)} == {"Bearer"}
    server.tokens.clear()  # every issued token is revoked
    assert pw.get_result(pw.call_async(double, 5)) == 10
    assert server.token_requests - before == 2


def test_wrong_iam_key_fails_at_executor_creation(server, localhost_config):
    namespace, _ = server.add_namespace(iam_api_key="the-real-one")
    settings = server.settings(namespace, iam_api_key="a-wrong-one")
    with pytest.raises(pywren.PyWrenConfigError, match="rejected 'ibm_cf.iam_api_key'"):
        pywren.FunctionExecutor(
            config=merge_config(localhost_config, {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": settings})
        )


# ------------------------------------------------------------------ other storage and monitor
@pytest.mark.s3
def test_remote_invoker_with_cos_storage(server, namespace, ow_config, cos_config, executors):
    config = merge_config(ow_config, cos_config, {"ibm_cf": {"remote_invoker": True, "remote_invoker_threshold": 5}})
    pw = executors(config)
    assert pw.get_result(pw.map(double, range(8))) == [2 * i for i in range(8)]
    records = server.invocations_of(namespace)
    assert sum("invoke_batch" in r["payload"] for r in records) == 1 and len(records) == 9
    key = server.settings(namespace)["api_key"]
    for record in records:
        storage = record["payload"]["storage"]
        assert storage["backend"] == "ibm_cos" and set(storage["settings"]) <= set(pw.config["ibm_cos"])
        assert ("invoke_batch" in record["payload"]) == (key in json.dumps(record["payload"]))


@pytest.mark.rabbitmq
def test_rabbitmq_monitor_with_openwhisk_compute(server, namespace, ow_config, rabbitmq_config, executors):
    pw = executors(merge_config(ow_config, rabbitmq_config, {"pywren": {"rabbitmq_monitor": True}}))
    futures = pw.map(double, range(6))
    assert pw.get_result(futures) == [2 * i for i in range(6)]
    payload = server.invocations_of(namespace)[0]["payload"]
    assert payload["rabbitmq"] and "amqp_url" in payload["rabbitmq"]
