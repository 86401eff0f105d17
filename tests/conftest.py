"""Shared fixtures: an isolated PyWren home per test session and the backend matrix.

Service fixtures (local S3 server, OpenWhisk, Kubernetes and Code Engine test servers, RabbitMQ broker) live in
``tests/services`` and start real processes on 127.0.0.1.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.callstore import CallStore, call_store_for
from airflow_pywren.executor.compute.localhost import stop_runners
from airflow_pywren.executor.config import load_config, storage_section
from airflow_pywren.executor.storage import create_storage
from tests.services.kubernetes import TEST_RUNTIME

pytest_plugins = [
    "tests.services.s3",
    "tests.services.openwhisk.fixtures",
    "tests.services.rabbitmq",
    "tests.services.kubernetes",
    "tests.services.code_engine",
    "tests.services.http_files",
]

# Backends the executor suite runs against: compute+storage.
BACKEND_PARAMS = ["localhost", "ibm_cf+localhost", "localhost+ibm_cos", "ibm_cf+ibm_cos"]
# The container backends, on their test servers (each call runs in a pod or instance process): for suites that
# must cover every compute backend, such as the fault suite's.
CONTAINER_BACKEND_PARAMS = ["k8s+ibm_cos", "code_engine+ibm_cos"]
# What every test of the container backends sets besides credentials: the test image, a few calls per pod or
# instance, lost-call checks every 0.2 s, image pulls that fail within a second.
K8S_TEST_SETTINGS = {
    "runtime": TEST_RUNTIME,
    "calls_per_pod": 3,
    "lost_check_interval": 0.2,
    "image_pull_timeout": 1,
}
CODE_ENGINE_TEST_SETTINGS = {
    "runtime": TEST_RUNTIME,
    "calls_per_instance": 3,
    "lost_check_interval": 0.2,
    "image_pull_timeout": 1,
}


def merge_config(*configs: dict[str, Any]) -> dict[str, Any]:
    """Merge config dicts section by section, later wins."""
    merged: dict[str, Any] = {}
    for config in configs:
        for section, values in config.items():
            merged.setdefault(section, {}).update(copy.deepcopy(values))
    return merged


def call_store_of(config: dict[str, Any]) -> CallStore:
    """The call store of the storage a configuration names (how tests read call records of any layout)."""
    loaded = load_config(config)
    return call_store_for(create_storage(loaded["pywren"]["storage_backend"], storage_section(loaded)))


def stored_status(config: dict[str, Any], executor_id: str, job_id: str, call_id: str) -> dict[str, Any]:
    """The final status of a call as stored; fails the test when there is none."""
    status = call_store_of(config).read_status(executor_id, job_id, call_id)
    assert status is not None, f"call {call_id} of job {job_id} (executor {executor_id}) has no final status"
    return status


@pytest.fixture(scope="session")
def pywren_home(tmp_path_factory: pytest.TempPathFactory):
    """A private storage directory and runner directory for the whole test session."""
    home = tmp_path_factory.mktemp("pywren")
    yield home
    stop_runners(home / "runner")


@pytest.fixture
def localhost_config(pywren_home: Path) -> dict[str, Any]:
    """Embedded default backends, in the session's private directories, with 2 workers."""
    return {
        "pywren": {"monitor_interval": 0.02},
        "localhost": {
            "storage_dir": str(pywren_home / "storage"),
            "runner_dir": str(pywren_home / "runner"),
            "workers": 2,
        },
    }


@pytest.fixture
def pw(localhost_config: dict[str, Any]) -> Iterator[pywren.FunctionExecutor]:
    """An executor on the embedded default backends; cleaned and closed after the test."""
    executor = pywren.FunctionExecutor(config=localhost_config)
    yield executor
    executor.clean()
    executor.close()


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's ~/.pywren_config or PYWREN_CONFIG."""
    monkeypatch.delenv("PYWREN_CONFIG", raising=False)
    monkeypatch.delenv("PYWREN_CONFIG_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(params=BACKEND_PARAMS)
def executor_config(request: pytest.FixtureRequest, localhost_config: dict[str, Any]) -> dict[str, Any]:
    """Config for one backend combination of the matrix (``compute+storage``)."""
    compute, _, storage = request.param.partition("+")
    parts = [localhost_config]
    if storage == "ibm_cos":
        parts.append(request.getfixturevalue("cos_config"))
    if compute == "ibm_cf":
        parts.append(request.getfixturevalue("openwhisk_config"))
    if compute == "k8s":
        parts.append(k8s_compute_config(request.getfixturevalue("k8s_server")))
    if compute == "code_engine":
        parts.append(code_engine_compute_config(request.getfixturevalue("code_engine_server")))
    return merge_config(*parts)


def k8s_compute_config(server: Any) -> dict[str, Any]:
    """k8s compute on a new namespace of the Kubernetes test server, with a new token in the config itself."""
    namespace = server.create_namespace()
    return {
        "pywren": {"compute_backend": "k8s"},
        "k8s": {
            "kubeconfig_dict": server.kubeconfig(namespace, token=server.add_token()),
            "namespace": namespace,
            **K8S_TEST_SETTINGS,
        },
    }


def code_engine_compute_config(server: Any) -> dict[str, Any]:
    """code_engine compute on a new project (with its own API key) of the Code Engine test server."""
    project_id, _ = server.add_project()
    return {
        "pywren": {"compute_backend": "code_engine"},
        "code_engine": {**server.settings(project_id), **CODE_ENGINE_TEST_SETTINGS},
    }
