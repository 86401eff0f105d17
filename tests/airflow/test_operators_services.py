"""Operators on the other backends: COS storage on a local S3 server, and RabbitMQ monitoring on a local broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_pywren.executor.jobref import JobRef
from tests.airflow.conftest import CONN_ENV, AirflowHome, runner_stats
from tests.conftest import merge_config
from tests.services.s3 import s3_client

pytestmark = pytest.mark.airflow

SERVICE_DAG = """
def cube(x):
    return x ** 3

def total(values):
    return sum(values)

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False)
def services():
    opts = dict(poll_interval=0.1{options})
    cubes = PyWrenMapOperator(task_id="cubes", map_function=cube, iterdata=[1, 2, 3], **opts)
    summed = PyWrenMapReduceOperator(task_id="summed", map_function=cube, iterdata=cubes.output, reduce_function=total,
                                     deferrable=True, **opts)
    negated = PyWrenCallAsyncOperator(task_id="negated", func=lambda v: -v, data=summed.output, **opts)

    @task
    def collect(a, b, c):
        hook = PyWrenHook()
        return [hook.get_results(a), hook.get_results(b), hook.get_results(c)]

    collect(cubes.output, summed.output, negated.output)

services()
"""
EXPECTED = [[1, 8, 27], [1 + 512 + 19683], [-(1 + 512 + 19683)]]


@pytest.mark.s3
def test_operators_with_cos_storage_from_connection_form_fields(
    airflow_home: AirflowHome,
    localhost_config: dict[str, Any],
    cos_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    cos = cos_config["ibm_cos"]
    # the COS settings come from the connection's form fields, the rest from extra.config
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "pywren",
                "extra": {
                    "config": localhost_config,
                    "storage_backend": "ibm_cos",
                    "cos_endpoint": cos["endpoint"],
                    "cos_bucket": cos["bucket"],
                    "cos_region": cos["region"],
                    "cos_access_key_id": cos["access_key_id"],
                    "cos_secret_access_key": cos["secret_access_key"],
                },
            }
        ),
    )
    result = airflow_home.write_and_run(
        "services_cos", SERVICE_DAG.format(dag_id="services_cos", options=""), header=True
    )
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.xcom("collect") == EXPECTED
    refs = [result.xcom(t) for t in ("cubes", "summed", "negated")]
    assert {(r["storage_backend"], r["bucket"], r["location"]) for r in refs} == {
        ("ibm_cos", cos["bucket"], f"cos://{cos['bucket']}/pywren.jobs")
    }
    stored = {obj["Key"] for obj in s3_client(cos["endpoint"]).list_objects_v2(Bucket=cos["bucket"])["Contents"]}
    assert all(key in stored for ref in refs for key in JobRef.parse(ref).result_keys)
    assert result.xcom("cubes", key="_link_PyWrenJobLink").endswith("/tasks/cubes/plugin/pywren-job")
    assert cos["secret_access_key"] not in out


@pytest.mark.rabbitmq
@pytest.mark.parametrize("where", ["connection", "operator"])
def test_operators_with_rabbitmq_monitoring(
    airflow_home: AirflowHome,
    localhost_config: dict[str, Any],
    rabbitmq_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    where: str,
) -> None:
    """RabbitMQ monitoring chosen by the connection, or by the operators' ``rabbitmq_monitor=True``."""
    config = merge_config(localhost_config, rabbitmq_config)
    if where == "operator":
        config["pywren"]["rabbitmq_monitor"] = False
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "pywren", "extra": {"config": config}}))
    before = runner_stats(localhost_config).get("invoked", 0)
    dag_id = f"services_rabbitmq_{where}"
    options = ", rabbitmq_monitor=True" if where == "operator" else ""
    result = airflow_home.write_and_run(dag_id, SERVICE_DAG.format(dag_id=dag_id, options=options), header=True)
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.xcom("collect") == EXPECTED
    assert runner_stats(localhost_config)["invoked"] - before == 3 + 4 + 1
    # the deferred task handed the RabbitMQ choice to the trigger, which followed the job by broker
    assert "waiting for map job M000, following it by rabbitmq" in out
    assert "waiting for call_async job A000, following it by rabbitmq" in out
    assert "deferring: the triggerer follows map_reduce job M000+R001 by rabbitmq" in out
    assert "by rabbitmq every" in out
    assert "RabbitMQ monitoring is not available" not in out


@pytest.mark.s3
def test_operators_on_openwhisk_compute_with_cos_storage(
    airflow_home: AirflowHome,
    openwhisk_config: dict[str, Any],
    cos_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    """host / login / password carry the OpenWhisk endpoint, namespace and key; the link is the activations URL."""
    cf = openwhisk_config["ibm_cf"]
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "pywren",
                "host": cf["endpoint"],
                "login": cf["namespace"],
                "password": cf["api_key"],
                "extra": {
                    "compute_backend": "ibm_cf",
                    "runtime": cf["runtime"],
                    "config": {"ibm_cf": {"max_concurrency": cf["max_concurrency"]}, **cos_config},
                },
            }
        ),
    )
    from airflow_pywren.hooks.pywren import PyWrenHook

    ok, message = PyWrenHook().test_connection()
    assert ok and "compute backend ibm_cf accepted the configuration" in message, message

    result = airflow_home.write_and_run(
        "services_openwhisk", SERVICE_DAG.format(dag_id="services_openwhisk", options=""), header=True
    )
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.xcom("collect") == EXPECTED
    link = result.xcom("cubes", key="_link_PyWrenJobLink")  # the job view, not the OpenWhisk REST API
    assert link.startswith("http") and link.endswith("/tasks/cubes/plugin/pywren-job"), link
    assert cf["api_key"].split(":")[1] not in out

    # a wrong key is reported by the connection test, naming the setting
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "pywren",
                "host": cf["endpoint"],
                "login": cf["namespace"],
                "password": "uuid:wrong",
                "extra": {"compute_backend": "ibm_cf", "config": cos_config},
            }
        ),
    )
    ok, message = PyWrenHook().test_connection()
    assert not ok and "rejected 'ibm_cf.api_key'" in message, message
