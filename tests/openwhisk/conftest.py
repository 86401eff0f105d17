"""Fixtures of the OpenWhisk backend tests: a fresh namespace of the test server per test."""

from __future__ import annotations

from typing import Any

import pytest

import airflow_pywren as pywren
from tests.conftest import merge_config
from tests.services.openwhisk import OpenWhiskTestServer


@pytest.fixture
def server(openwhisk_server: OpenWhiskTestServer) -> OpenWhiskTestServer:
    """The session's test server with faults, delays and records cleared."""
    openwhisk_server.reset_faults()
    openwhisk_server.reset_stats()
    return openwhisk_server


@pytest.fixture
def namespace(server: OpenWhiskTestServer) -> str:
    """A new namespace (its own key, actions and records)."""
    return server.add_namespace()[0]


@pytest.fixture
def ow_config(server: OpenWhiskTestServer, namespace: str, localhost_config: dict[str, Any]) -> dict[str, Any]:
    """ibm_cf compute on the fresh namespace, localhost storage."""
    return merge_config(
        localhost_config, {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": server.settings(namespace)}
    )


@pytest.fixture(params=["localhost", "ibm_cos"])
def any_storage_config(request: pytest.FixtureRequest, ow_config: dict[str, Any]) -> dict[str, Any]:
    """ibm_cf on the fresh namespace, with localhost storage or COS (the S3 server)."""
    if request.param == "ibm_cos":
        return merge_config(ow_config, request.getfixturevalue("cos_config"))
    return ow_config


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
