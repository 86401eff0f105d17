"""Fixtures of the fault suite: real processes (localhost runner, S3 server, OpenWhisk test server, RabbitMQ)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import merge_config


@pytest.fixture
def cos_localhost_config(localhost_config: dict[str, Any], cos_config: dict[str, Any]) -> dict[str, Any]:
    """Localhost compute with COS storage on the moto server."""
    return merge_config(localhost_config, cos_config)


# Airflow must see its test home before it is first imported: import the Airflow fixtures from their conftest.
from tests.airflow.conftest import airflow_home, pywren_conn  # noqa: E402,F401
