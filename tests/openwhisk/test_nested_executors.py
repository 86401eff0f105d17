"""Executors created inside OpenWhisk activations: the client's storage and key, never its credential."""

from __future__ import annotations

import json
from typing import Any

import pytest

import airflow_pywren as pywren


def add_seven(x: int) -> int:
    return x + 7


def map_inside(total: int) -> list[int]:
    inner = pywren.ibm_cf_executor()
    return inner.get_result(inner.map(add_seven, range(total)))


def futures_from_inside(total: int) -> Any:
    inner = pywren.ibm_cf_executor()
    return inner.map(add_seven, range(total))


def test_an_executor_inside_an_activation_needs_its_credential_given(any_storage_config, executors) -> None:
    pw = executors(any_storage_config)
    with pytest.raises(pywren.PyWrenConfigError) as raised:
        pw.get_result(pw.call_async(map_inside, 3))
    message = str(raised.value)
    assert "ibm_cf" in message and "inside a call" in message and "PYWREN_CONFIG in extra_env" in message


def test_an_executor_inside_an_activation_uses_the_clients_storage_and_key(any_storage_config, executors) -> None:
    pw = executors(any_storage_config)
    credential = {"ibm_cf": {"api_key": any_storage_config["ibm_cf"]["api_key"]}}
    env = {"PYWREN_CONFIG": json.dumps(credential)}  # the caller chooses to give calls its key
    assert pw.get_result(pw.call_async(map_inside, 3, extra_env=env)) == [7, 8, 9]
    # futures returned by the call live in the client's storage, signed with its key: the client reads them
    assert pw.get_result(pw.call_async(futures_from_inside, 2, extra_env=env)) == [7, 8]
