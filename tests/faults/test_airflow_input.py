"""Bad input through the Airflow skin: a connection extra that is not JSON, job references with bad ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.errors import InvalidIdError, PyWrenConfigError
from airflow_pywren.executor.jobs import job_reference
from tests.airflow.conftest import CONN_ENV

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize("extra", ["{broken", "not json at all", "[1, 2]", '"a string"'])
def test_connection_extra_that_is_not_a_json_object_is_an_error(airflow_home, monkeypatch, extra: str) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "pywren", "extra": extra}))
    with pytest.raises(PyWrenConfigError, match="the extra of connection 'pywren_default'"):
        PyWrenHook().get_config()
    ok, message = PyWrenHook().test_connection()
    assert not ok and "the extra of connection 'pywren_default'" in message


def double(x):
    return 2 * x


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("executor_id", "."),
        ("executor_id", ".."),
        ("executor_id", "a/b"),
        ("job_ids", ["../M000"]),
        ("job_ids", ["M000/.."]),
        ("job_ids", "M000"),
    ],
)
def test_job_reference_with_bad_ids_is_refused(airflow_home, pywren_conn: dict[str, Any], field: str, bad: Any) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    with pywren.FunctionExecutor(config=pywren_conn) as executor:
        futures = executor.map(double, [1, 2])
        ref = job_reference(executor, "map", futures)
        assert PyWrenHook().get_results(ref) == [2, 4]
        with pytest.raises((InvalidIdError, pywren.PyWrenError), match="job id|valid id|job_ids"):
            PyWrenHook().get_results({**ref, field: bad})
        executor.clean()
