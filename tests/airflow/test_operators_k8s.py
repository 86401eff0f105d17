"""The operators, sensor, trigger and re-attach on retry, unchanged, on the k8s backend (Kubernetes-API test server).

The pywren connection takes its Kubernetes credentials from an Airflow connection of type
``kubernetes`` (the cncf.kubernetes provider's fields), as a deployment that already has one would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from airflow_pywren.operators.pywren import executor_id_for
from tests.airflow.conftest import AIRFLOW_BIN, AIRFLOW_ENV, CONN_ENV, REPO_ROOT, AirflowHome, connection_json
from tests.conftest import stored_status
from tests.services.kubernetes import KubernetesTestServer

pytestmark = pytest.mark.airflow
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def k8s_conn(
    monkeypatch: pytest.MonkeyPatch, k8s_server: KubernetesTestServer, localhost_config: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """``pywren_default`` on k8s (a fresh namespace), credentials from the ``k8s_test`` kubernetes connection."""
    namespace = k8s_server.create_namespace()
    kube = {
        "conn_type": "kubernetes",
        "extra": {"kube_config": json.dumps(k8s_server.kubeconfig(namespace)), "namespace": namespace},
    }
    monkeypatch.setenv("AIRFLOW_CONN_K8S_TEST", json.dumps(kube))
    config = {
        **localhost_config,
        "pywren": {**localhost_config["pywren"], "compute_backend": "k8s"},
        "k8s": {"runtime": "airflowpywren/runtime:test", "calls_per_pod": 2, "lost_check_interval": 0.5},
    }
    monkeypatch.setenv(CONN_ENV, connection_json(config, kubernetes_conn_id="k8s_test"))
    return namespace, config


def test_operators_sensor_and_trigger_run_on_kubernetes_jobs(
    airflow_home: AirflowHome,
    k8s_server: KubernetesTestServer,
    k8s_conn: tuple[str, dict[str, Any]],
    capfd: pytest.CaptureFixture,
) -> None:
    namespace, _ = k8s_conn
    result = airflow_home.write_and_run(
        "k8s_pipeline",
        """
        from airflow_pywren.sensors.pywren import PyWrenJobSensor

        def square(x):
            return x * x

        def plus_one(x):
            return x + 1

        @dag(dag_id="k8s_pipeline", schedule=None, start_date=START, catchup=False)
        def pipeline():
            squares = PyWrenMapOperator(task_id="squares", map_function=square, iterdata=list(range(5)),
                                        poll_interval=0.05)
            more = PyWrenMapOperator(task_id="more", map_function=plus_one, iterdata=squares.output, deferrable=True,
                                     poll_interval=0.05)
            total = PyWrenMapReduceOperator(task_id="total", map_function=plus_one, iterdata=more.output,
                                            reduce_function=sum, wait_for_completion=False)
            sensed = PyWrenJobSensor(task_id="sensed", job_ref=total.output, poke_interval=0.2)
            total >> sensed

            @task
            def read(ref):
                return PyWrenHook().get_results(ref)

            read(total.output) << sensed

        pipeline()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.xcom("read") == [sum(x * x + 2 for x in range(5))]
    # one Job per PyWren job: squares M000, more M000, total M000 + R001 (each operator has its own executor)
    jobs = k8s_server.requests_in(namespace)["POST batch/jobs"]
    assert jobs == 4
    assert "compute k8s" in out


def test_killed_task_reattaches_to_its_kubernetes_job(
    airflow_home: AirflowHome,
    k8s_server: KubernetesTestServer,
    k8s_conn: tuple[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """SIGKILL the task's process after it created its Jobs; running the task again creates none."""
    namespace, config = k8s_conn
    prefix = f"killed-{uuid.uuid4().hex[:8]}"
    config = {**config, "localhost": {**config["localhost"], "storage_prefix": prefix}}
    monkeypatch.setenv(CONN_ENV, connection_json(config, kubernetes_conn_id="k8s_test"))
    gate = tmp_path / "gate"
    airflow_home.write_dag(
        "k8s_killed",
        f"""
        import os, time

        def gated_square(x):
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.02)
            return x * x

        @dag(dag_id="k8s_killed", schedule=None, start_date=START, catchup=False)
        def killed():
            PyWrenMapReduceOperator(task_id="work", map_function=gated_square, iterdata=[1, 2, 3], reduce_function=sum,
                                    return_results=True, poll_interval=0.05)

        killed()
    """,
        header=True,
    )
    env = {**os.environ, **AIRFLOW_ENV, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.Popen(
        [AIRFLOW_BIN, "dags", "test", "k8s_killed"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while (
            k8s_server.requests_in(namespace)["POST batch/jobs"] < 2
            and first.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert k8s_server.requests_in(namespace)["POST batch/jobs"] == 2, "the task did not create its Jobs"
        first.send_signal(signal.SIGKILL)  # the task dies while it waits; its pods keep running
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)
    assert {j["metadata"]["labels"]["airflow-pywren/job-id"] for j in k8s_server.jobs_in(namespace)} == {"M000", "R001"}
    gate.touch()

    from tests.airflow.test_operators_retry import _latest_run_id

    run_id = _latest_run_id("k8s_killed")
    again = airflow_home.cli("tasks", "test", "k8s_killed", "work", run_id)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    executor_id = executor_id_for("k8s_killed", run_id, "work", -1)
    assert f"re-attached to map_reduce job M000+R001 of executor {executor_id}" in output
    assert k8s_server.requests_in(namespace)["POST batch/jobs"] == 2  # no new Job
    status = stored_status(config, executor_id, "R001", "00000")
    assert status["status"] == "success"
    assert status["activation_id"].endswith("/0")
