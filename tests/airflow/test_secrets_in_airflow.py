"""No configured secret appears in Airflow task logs or XCom, for succeeding, deferred and failing tasks."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.airflow.conftest import CONN_ENV, AirflowHome, connection_json
from tests.conftest import merge_config

pytestmark = pytest.mark.airflow

DAG = """
def refuse(x):
    raise ValueError(f"refused {x}")


@dag(dag_id="secrets_scan", schedule=None, start_date=START, catchup=False)
def secrets_scan():
    PyWrenMapOperator(task_id="squares", map_function=lambda x: x * x, iterdata=[1, 2, 3])
    PyWrenMapOperator(task_id="deferred", map_function=lambda x: x + 1, iterdata=[1, 2], deferrable=True)
    PyWrenMapReduceOperator(task_id="summed", map_function=lambda x: x * 2, iterdata=[1, 2], reduce_function=sum)
    PyWrenCallAsyncOperator(task_id="failing", func=refuse, data=7, retries=0)


secrets_scan()
"""


def run_xcoms(dag_id: str, run_id: str) -> list[str]:
    """Every XCom value the run pushed, as stored (JSON text)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
        return [json.dumps(row.value) if not isinstance(row.value, str) else row.value for row in rows]


@pytest.mark.parametrize(
    ("compute", "storage"), [("localhost", "localhost"), ("localhost", "ibm_cos"), ("ibm_cf", "ibm_cos")]
)
def test_no_secret_in_task_logs_or_xcom(
    compute: str,
    storage: str,
    airflow_home: AirflowHome,
    localhost_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    signing_key = "sk-" + secrets.token_hex(20)
    config = merge_config(localhost_config, {"pywren": {"signing_key": signing_key}})
    wanted = [signing_key, signing_key.encode().hex()]
    if storage == "ibm_cos":  # keys made at run time (the S3 server takes any)
        config = merge_config(config, request.getfixturevalue("cos_config"))
        config["ibm_cos"].update(access_key_id=secrets.token_hex(10), secret_access_key=secrets.token_hex(20))
        wanted.append(config["ibm_cos"]["secret_access_key"])
    if compute == "ibm_cf":  # the OpenWhisk API test server, a fresh namespace and key
        server = request.getfixturevalue("openwhisk_server")
        ow = server.settings(server.add_namespace()[0])
        config = merge_config(config, {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": ow})
        wanted.append(ow["api_key"].partition(":")[2])
    monkeypatch.setenv(CONN_ENV, connection_json(config))
    result = airflow_home.write_and_run("secrets_scan", DAG, header=True)
    logs = capfd.readouterr().out
    assert result.task_states["squares"] == "success" and result.task_states["deferred"] == "success", logs[-3000:]
    assert result.task_states["summed"] == "success" and result.task_states["failing"] == "failed", logs[-3000:]
    xcoms = run_xcoms(result.dag_id, result.run_id)
    # the scan reads what matters: job references in XCom, progress and the remote error in the logs
    assert any("M000" in value for value in xcoms), xcoms
    assert "refused 7" in logs and "3/3 done" in logs
    for secret in wanted:
        assert secret not in logs, "a secret is in a task log"
        assert not [value for value in xcoms if secret in value], "a secret is in XCom"
