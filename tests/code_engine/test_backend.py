"""The code_engine backend against the Code Engine API test server: array job runs running the real handler."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from ibm_code_engine_sdk.code_engine_v2 import CodeEngineV2, JobRunList

import airflow_pywren as pywren
from airflow_pywren.executor.compute.code_engine import resources, settings_from_ibm_cf
from airflow_pywren.executor.errors import ActivationLostError, CallCancelledError, PyWrenConfigError
from tests.conftest import CODE_ENGINE_TEST_SETTINGS, merge_config
from tests.k8s import calls
from tests.services.code_engine import CodeEngineTestServer


@pytest.fixture
def project(code_engine_server: CodeEngineTestServer) -> str:
    return code_engine_server.add_project()[0]


@pytest.fixture
def ce_config(
    code_engine_server: CodeEngineTestServer, project: str, localhost_config: dict[str, Any]
) -> dict[str, Any]:
    return merge_config(
        localhost_config,
        {
            "pywren": {"compute_backend": "code_engine", "lost_call_grace": 600},
            "code_engine": {**code_engine_server.settings(project), **CODE_ENGINE_TEST_SETTINGS},
        },
    )


@pytest.fixture
def executors():
    created: list[pywren.FunctionExecutor] = []

    def make(config: dict[str, Any]) -> pywren.FunctionExecutor:
        created.append(pywren.FunctionExecutor(config=config))
        return created[-1]

    yield make
    for executor in created:
        executor.clean()
        executor.close()


def outcomes(pw, futures):
    pw.wait(futures)
    return [f.exception() or f.result() for f in futures]


def test_map_runs_as_one_array_job_run(code_engine_server, project, ce_config, executors):
    pw = executors(ce_config)
    futures = pw.map(calls.square, range(10))
    assert pw.get_result(futures) == [x * x for x in range(10)]
    (run,) = code_engine_server.runs_in(project)
    assert run["scale_array_spec"] == "0-3" and run["scale_retry_limit"] == 0
    assert (run["scale_cpu_limit"], run["scale_memory_limit"]) == ("0.125", "0.25G")
    assert run["run_service_account"] == "none"
    assert "storage_dir" not in str(run)  # the payload is in the mounted secret, not in the run
    requests = code_engine_server.requests_in(project)
    assert requests["POST secrets"] == 1 and requests["POST job_runs"] == 1
    assert {f.activation_id for f in futures[3:6]} == {f"{run['name']}/1"}


def test_memory_and_cpu_combinations_are_checked_with_the_valid_choices(ce_config, executors):
    assert resources(256) == ("0.125", "0.25G") and resources(4096, 1) == ("1", "4G") and resources(2048, "0.5")
    with pytest.raises(PyWrenConfigError, match=r"runtime_memory 300 MB is not a memory size .* 256, 512, 1024, 2048"):
        resources(300)
    with pytest.raises(
        PyWrenConfigError,
        match=r"with 1 vCPU use 2048, 4096, 8192 MB; or keep 256 MB with "
        r"'code_engine.cpu' 0.125",
    ):
        resources(256, 1)
    with pytest.raises(PyWrenConfigError, match="'code_engine.cpu' = 3 is not a CPU size"):
        executors(merge_config(ce_config, {"code_engine": {"cpu": 3}}))
    pw = executors(ce_config)
    with pytest.raises(PyWrenConfigError, match="runtime_memory 700 MB"):
        pw.map(calls.square, [1], runtime_memory=700)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("func", "kwargs", "match"),
    [
        (calls.exits_at_four, {}, "exited successfully but these calls wrote no final status"),
        (calls.crashes_at_four, {}, "ContainerExitedCode3"),
        (calls.hog_at_four, {"runtime_memory": 256}, "OOMKilled"),
        (calls.ignores_its_timeout, {"timeout": 2}, "DeadlineExceeded"),
    ],
    ids=["exit-0", "exit-3", "oom", "deadline"],
)
def test_failed_instance_fails_exactly_its_pending_calls(ce_config, executors, func, kwargs, match):
    config = merge_config(ce_config, {"code_engine": {"deadline_margin": 0}}) if "timeout" in kwargs else ce_config
    pw = executors(config)
    results = outcomes(pw, pw.map(func, range(6), **kwargs))
    for index, result in enumerate(results):
        if index in (4, 5):
            assert isinstance(result, ActivationLostError) and match in str(result), (index, result)
        else:
            assert result == index, (index, result)


@pytest.mark.timeout(180)
def test_image_that_cannot_be_pulled_fails_the_calls_and_deletes_the_run(
    code_engine_server, project, ce_config, executors
):
    pw = executors(merge_config(ce_config, {"code_engine": {"runtime": "icr.io/missing/runtime:1"}}))
    results = outcomes(pw, pw.map(calls.square, range(2)))
    assert all(isinstance(r, ActivationLostError) and "ImagePullBackOff" in str(r) for r in results)
    assert "icr.io/missing/runtime:1" in str(results[0])
    assert not code_engine_server.runs_in(project)


@pytest.mark.timeout(180)
def test_cancel_deletes_the_run_and_clean_removes_runs_and_secrets(code_engine_server, project, ce_config, executors):
    pw = executors(ce_config)
    done = pw.map(calls.square, [1, 2])
    assert pw.get_result(done) == [1, 4]
    slow = pw.map(calls.sleeps, [60, 60])
    deadline = time.time() + 60
    while (
        not any(
            i.status == "running"
            for r in code_engine_server.runs_in(project)
            for i in code_engine_server.instances_of(project, r["name"])
        )
        and time.time() < deadline
    ):
        time.sleep(0.05)
    assert pw.cancel(slow) == 1
    assert all(isinstance(r, CallCancelledError) for r in outcomes(pw, slow))
    (first,) = code_engine_server.runs_in(project)  # the run of the first job
    while code_engine_server.runs_in(project)[0]["status"] != "completed" and time.time() < deadline:
        time.sleep(0.05)  # its instance has written its statuses and is exiting
    pw.clean()
    assert not code_engine_server.runs_in(project)
    assert not [k for k in code_engine_server.secrets if k[0] == project]


def test_wrong_api_key_or_project_fails_at_creation(code_engine_server, project, ce_config):
    with pytest.raises(PyWrenConfigError, match="rejected 'code_engine.iam_api_key'"):
        pywren.FunctionExecutor(config=merge_config(ce_config, {"code_engine": {"iam_api_key": "wrong"}}))
    other, _ = code_engine_server.add_project()
    with pytest.raises(PyWrenConfigError, match="refused 'code_engine.iam_api_key' for project"):
        pywren.FunctionExecutor(config=merge_config(ce_config, {"code_engine": {"project_id": other}}))


def test_ibm_cf_settings_carry_over() -> None:
    assert settings_from_ibm_cf(
        {
            "endpoint": "https://eu-de.functions.cloud.ibm.com",
            "namespace": "ns",
            "iam_api_key": "KEY",
            "runtime": "me/runtime:1",
            "timeout": 600,
            "action_prefix": "pywren_x",
        }
    ) == {"region": "eu-de", "iam_api_key": "KEY", "runtime": "me/runtime:1", "job_prefix": "pywren-x"}


@pytest.mark.timeout(180)
def test_official_sdk_works_against_the_test_server_on_the_runs_the_backend_creates(
    code_engine_server, project, ce_config, executors
):
    """IBM's ibm-code-engine-sdk, unchanged: IAM authenticator, project, job runs parsed by its own models."""
    pw = executors(ce_config)
    assert pw.get_result(pw.map(calls.square, range(5))) == [0, 1, 4, 9, 16]
    settings = ce_config["code_engine"]
    sdk = CodeEngineV2(authenticator=IAMAuthenticator(settings["iam_api_key"], url=code_engine_server.endpoint))
    sdk.set_service_url(settings["endpoint"])
    assert sdk.get_project(id=project).get_status_code() == 200
    (run,) = JobRunList.from_dict(sdk.list_job_runs(project_id=project).get_result()).job_runs
    assert (run.scale_array_spec, run.scale_cpu_limit, run.scale_memory_limit) == ("0-1", "0.125", "0.25G")
    assert run.run_volume_mounts[0].reference == run.name and run.run_service_account == "none"
    assert run.status_details.requested == 2
    assert sdk.delete_job_run(project_id=project, name=run.name).get_status_code() == 202
    assert not code_engine_server.runs_in(project)


def test_a_token_revoked_by_iam_is_replaced_once_and_the_job_runs(code_engine_server, project, ce_config, executors):
    pw = executors(ce_config)
    assert pw.get_result(pw.map(calls.square, [2])) == [4]
    issued = dict(code_engine_server.tokens)
    code_engine_server.tokens.clear()  # IAM revoked it (or it expired early): the API answers 401
    assert pw.get_result(pw.map(calls.square, [3])) == [9]
    assert len(code_engine_server.tokens) == 1 and not set(code_engine_server.tokens) & set(issued)


@pytest.mark.timeout(180)
def test_a_run_deleted_in_the_console_fails_its_unfinished_calls(code_engine_server, project, ce_config, executors):
    pw = executors(ce_config)
    futures = pw.map(calls.sleeps, [60, 60])
    deadline = time.time() + 60
    while not code_engine_server.runs_in(project) and time.time() < deadline:
        time.sleep(0.05)
    settings = ce_config["code_engine"]
    sdk = CodeEngineV2(authenticator=IAMAuthenticator(settings["iam_api_key"], url=code_engine_server.endpoint))
    sdk.set_service_url(settings["endpoint"])
    (run,) = code_engine_server.runs_in(project)
    assert sdk.delete_job_run(project_id=project, name=run["name"]).get_status_code() == 202
    for lost in outcomes(pw, futures):
        assert isinstance(lost, ActivationLostError), lost
        assert f"Code Engine job run {run['name']} no longer exists" in str(lost), str(lost)


@pytest.mark.timeout(180)
def test_a_run_none_of_whose_instances_starts_fails_its_calls_and_is_deleted(
    code_engine_server, project, ce_config, executors
):
    code_engine_server.held_projects.add(project)  # the project's quota is used up: instances stay pending
    try:
        pw = executors(merge_config(ce_config, {"code_engine": {"start_timeout": 1}}))
        futures = pw.map(calls.square, range(4))  # two instances of three and one call
        results = outcomes(pw, futures)
    finally:
        code_engine_server.held_projects.discard(project)
    assert all(isinstance(r, ActivationLostError) for r in results)
    message = str(results[0])
    assert "'code_engine.start_timeout' = 1 s" in message and "2 pending of 2" in message
    assert not code_engine_server.runs_in(project)  # deleted: it cannot run the calls later


@pytest.mark.timeout(180)
def test_a_run_waiting_for_room_while_another_runs_is_not_failed(code_engine_server, project, ce_config, executors):
    pw = executors(merge_config(ce_config, {"code_engine": {"start_timeout": 0.5, "calls_per_instance": 1}}))
    futures = pw.map(calls.sleeps, [0.4] * 14)  # more instances than the server runs at once
    assert pw.get_result(futures) == [0.4] * 14
