"""Fixtures of the executor tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import airflow_pywren as pywren


@pytest.fixture
def pw(localhost_config: dict[str, Any]) -> Iterator[pywren.FunctionExecutor]:
    """An executor on the embedded backends, in this test's directories; cleaned and closed after."""
    executor = pywren.ibm_cf_executor(config=localhost_config)
    yield executor
    executor.clean()
    executor.close()
