"""The pytest fixtures of the OpenWhisk-API test server (a plugin of ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.openwhisk.server import OpenWhiskTestServer


@pytest.fixture(scope="session")
def openwhisk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWhiskTestServer]:
    """The OpenWhisk-API test server (not OpenWhisk) on 127.0.0.1, for the whole session."""
    server = OpenWhiskTestServer(tmp_path_factory.mktemp("openwhisk"), containers=8).start()
    yield server
    server.stop()


@pytest.fixture
def openwhisk_config(openwhisk_server: OpenWhiskTestServer) -> dict[str, Any]:
    """Config selecting the ``ibm_cf`` backend on the test server's default namespace (faults cleared)."""
    openwhisk_server.reset_faults()
    return {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": openwhisk_server.settings()}
