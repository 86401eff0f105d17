"""Fixtures of the Kubernetes backend tests: a fresh namespace of the test server per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from tests.conftest import K8S_TEST_SETTINGS, merge_config
from tests.services.kubernetes import KubernetesTestServer


@pytest.fixture
def server(k8s_server: KubernetesTestServer) -> KubernetesTestServer:
    k8s_server.reset_stats()
    return k8s_server


@pytest.fixture
def namespace(server: KubernetesTestServer) -> str:
    """A new namespace: its own Jobs, pods, Secrets and request records."""
    return server.create_namespace()


@pytest.fixture
def kubeconfig(server: KubernetesTestServer, namespace: str, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", namespace)


@pytest.fixture
def k8s_config(kubeconfig: Path, namespace: str, localhost_config: dict[str, Any]) -> dict[str, Any]:
    """k8s compute on the fresh namespace (checked every 0.2 s for lost calls), localhost storage."""
    return merge_config(
        localhost_config,
        {
            "pywren": {"compute_backend": "k8s", "lost_call_grace": 600},
            "k8s": {"kubeconfig": str(kubeconfig), "namespace": namespace, **K8S_TEST_SETTINGS},
        },
    )


@pytest.fixture
def executors():
    """Make executors; each is cleaned and closed after the test."""
    created: list[pywren.FunctionExecutor] = []

    def make(config: dict[str, Any]) -> pywren.FunctionExecutor:
        executor = pywren.FunctionExecutor(config=config)
        created.append(executor)
        return executor

    yield make
    for executor in created:
        executor.clean()
        executor.close()
