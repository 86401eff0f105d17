"""Fixtures of the OpenWhisk backend tests: a fresh namespace of the test server per test."""

from __future__ import annotations

from typing import Any

import pytest

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
    return merge_config(localhost_config, {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": server.settings(namespace)})
