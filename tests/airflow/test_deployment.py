"""Deferrable operators and sensors in a running Airflow: the real ``airflow triggerer`` runs the triggers.

A small deployment (API server, scheduler with the LocalExecutor, triggerer; SQLite, all on
127.0.0.1) runs one DAG: a deferrable map whose results a Python task sums through the hook,
and a job submitted without waiting, watched by a deferrable ``PyWrenJobSensor`` (its call
waits for a gate that the test opens once the sensor is deferred). A deferrable map over
files in storage reports its input dataset through the OpenLineage provider.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import merge_config
from tests.services.airflow import AirflowDeployment

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(420)]

DAG_ID = "deployed_deferrable"
DAG_SOURCE = """
import datetime
import os
import time

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenCallAsyncOperator, PyWrenMapOperator
from airflow_pywren.sensors.pywren import PyWrenJobSensor


GATE = "{gate}"


def square(x):
    return x * x


def count_lines(obj, storage):
    lines = sum(1 for _ in obj.data_stream)
    storage.put_object(obj.bucket, f"counts/{obj.part:03d}.txt", str(lines))
    return lines


def double_when_open(x):
    while not os.path.exists(GATE):
        time.sleep(0.05)
    return 2 * x


# Airflow may fail a resumed deferred task on a stale executor event when its trigger fires at once
# (apache/airflow#71580, #72716); one retry, which re-attaches to the same job, rides it out.
@dag(
    dag_id="deployed_deferrable",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=1)},
)
def deployed_deferrable():
    squares = PyWrenMapOperator(task_id="squares", map_function=square, iterdata=[1, 2, 3, 4], deferrable=True,
                                rabbitmq_monitor={rabbitmq})

    @task
    def total(ref):
        return sum(PyWrenHook().get_results(ref))

    total(squares.output)
    PyWrenMapOperator(task_id="lines", map_function=count_lines, iterdata="{bucket}/logs/", chunk_size=100,
                      deferrable=True, outputs=["cos://{bucket}/counts/", "cos://{bucket}/never-written/"])
    submit = PyWrenCallAsyncOperator(task_id="submit", func=double_when_open, data=21, wait_for_completion=False)
    PyWrenJobSensor(task_id="sense", job_ref=submit.output, deferrable=True, poke_interval=1, monitor="{monitor}")


deployed_deferrable()
"""


def _xcom(deployment: AirflowDeployment, task_id: str) -> Any:
    rows = deployment.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'", DAG_ID, task_id
    )
    assert rows, f"no XCom from {task_id}"
    value = rows[0][0]
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _trigger_logs(root: Path, task_id: str) -> str:
    logs = sorted(root.glob(f"logs/dag_id={DAG_ID}/run_id=*/task_id={task_id}/**/*.trigger.*.log"))
    assert logs, f"no trigger log for {task_id}: the task did not defer to the triggerer"
    return "\n".join(path.read_text(errors="replace") for path in logs)


@pytest.mark.parametrize("monitor", ["storage", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def test_deferred_tasks_resume_after_the_triggerer_fires(
    request: pytest.FixtureRequest, tmp_path: Path, localhost_config: dict[str, Any], monitor: str
) -> None:
    config = localhost_config
    if monitor == "rabbitmq":
        config = merge_config(localhost_config, request.getfixturevalue("rabbitmq_config"))
    (tmp_path / "dags").mkdir()
    gate = tmp_path / "gate"  # the sensor's job waits for it: the sensor has to defer
    bucket = "weblogs"
    (Path(config["localhost"]["storage_dir"]) / bucket / "logs").mkdir(parents=True, exist_ok=True)
    (Path(config["localhost"]["storage_dir"]) / bucket / "logs" / "a.log").write_bytes(b"x y\n" * 100)
    shutil.rmtree(Path(config["localhost"]["storage_dir"]) / bucket / "counts", ignore_errors=True)
    source = DAG_SOURCE.replace("{gate}", str(gate)).replace("{monitor}", monitor).replace("{bucket}", bucket)
    (tmp_path / "dags" / f"{DAG_ID}.py").write_text(source.replace("{rabbitmq}", str(monitor == "rabbitmq")))
    (tmp_path / "airflow").mkdir()
    connection = {"conn_type": "pywren", "extra": {"config": config}}
    events = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    with AirflowDeployment(
        tmp_path / "airflow",
        tmp_path / "dags",
        {"pywren_default": connection},
        parallelism=4,
        extra_env={"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)},
    ) as deployment:
        deployment.start()
        deployment.cli("dags", "unpause", DAG_ID)
        deployment.cli("dags", "trigger", DAG_ID)
        deployment.wait_for(
            f"SELECT state FROM task_instance WHERE dag_id = '{DAG_ID}' AND task_id = 'sense'",
            lambda rows: rows and rows[0][0] == "deferred",
            timeout=300,
        )
        gate.touch()
        deployment.wait_for(
            f"SELECT state FROM dag_run WHERE dag_id = '{DAG_ID}'",
            lambda rows: rows and rows[0][0] in ("success", "failed"),
            timeout=300,
        )
        states = dict(deployment.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", DAG_ID))
        assert states == {
            "squares": "success",
            "total": "success",
            "lines": "success",
            "submit": "success",
            "sense": "success",
        }
        assert _xcom(deployment, "total") == 1 + 4 + 9 + 16
        squares = _xcom(deployment, "squares")
        assert (squares["status"], squares["done"], squares["failed"]) == ("success", 4, 0)
        assert deployment.query('SELECT COUNT(*) FROM "trigger"') == [(0,)]  # every trigger fired and was removed
    # the OpenLineage provider reported the map's input dataset
    complete = [json.loads(line) for line in events.read_text().splitlines() if '"COMPLETE"' in line]
    inputs = {e["job"]["name"]: e.get("inputs", []) for e in complete}
    outputs = {e["job"]["name"]: e.get("outputs", []) for e in complete}
    storage_dir = config["localhost"]["storage_dir"]
    assert [(d["namespace"], d["name"]) for d in inputs[f"{DAG_ID}.lines"]] == [
        ("file", f"{storage_dir}/{bucket}/logs/")
    ]
    # and the declared output its calls wrote through the storage handle (not the one nothing wrote)
    assert [(d["namespace"], d["name"]) for d in outputs[f"{DAG_ID}.lines"]] == [
        ("file", f"{storage_dir}/{bucket}/counts/")
    ]
    assert inputs[f"{DAG_ID}.squares"] == []  # a map over plain values reads no dataset
    root = tmp_path / "airflow"
    for task_id, job in (("squares", "map job M000"), ("sense", "call_async job A000")):
        log = _trigger_logs(root, task_id)
        assert f"following {job}" in log and f"by {monitor}" in log and "Trigger fired event" in log, log[-2000:]
        assert "polling storage" not in log  # no fallback from RabbitMQ
