"""Maps over data from DAGs: the web-logs ETL example, iterdata forms, the job reference and OpenLineage."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import CONN_ENV, REPO_ROOT, AirflowHome, connection_json
from tests.conftest import merge_config
from tests.services.s3 import new_bucket, s3_client

pytestmark = pytest.mark.airflow

SMALL_DAY = {"size_mb": 1, "parts": 3, "chunk_mb": 0.1}


@pytest.fixture(scope="module")
def web_logs_dag(airflow_home: AirflowHome) -> Path:
    target = airflow_home.dags_folder / "web_logs"
    target.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "dags" / "pywren_web_logs.py", target / "pywren_web_logs.py")
    return target / "pywren_web_logs.py"


def read_day(store_get, bucket: str, keys: list[str]) -> dict[str, int]:
    """What the report must say, computed here from the generated objects."""
    requests = errors = 0
    for key in keys:
        for line in store_get(bucket, key).splitlines():
            requests += 1
            errors += int(line.split(b" ")[8]) >= 500
    return {"requests": requests, "errors": errors}


def check_day(result: Any, capfd: pytest.CaptureFixture, store_get, bucket: str, parts: int = 3) -> None:
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    generated = result.xcom("generate_logs")
    aggregated = result.xcom("aggregate")
    inputs = aggregated["inputs"]
    keys = sorted(f"logs/{result.xcom('plan_day')[0]['day']}/access-{i:03d}.log" for i in range(parts))
    assert (inputs["objects"], inputs["locations"]) == (
        parts,
        [f"cos://{bucket}/logs/{result.xcom('plan_day')[0]['day']}/"],
    )
    assert inputs["chunks"] == aggregated["total"] - 1 > parts  # several chunks per object, then the reducer
    assert len(json.dumps(inputs)) < 600  # the reference stays small
    expected = read_day(store_get, bucket, keys)
    summary = result.xcom("report")
    assert summary["requests"] == expected["requests"]
    assert summary["statuses"].get("500", 0) + summary["statuses"].get("503", 0) == expected["errors"]
    stored = json.loads(store_get(bucket, summary["stored_at"].split("/", 1)[1]))
    assert stored["requests"] == expected["requests"]
    assert f"requests: {expected['requests']:,}" in out
    assert generated["total"] == parts


def test_web_logs_example_on_the_embedded_default(
    airflow_home: AirflowHome, web_logs_dag: Path, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    bucket = f"weblogs-{uuid.uuid4().hex[:8]}"
    storage_dir = Path(pywren_conn["localhost"]["storage_dir"])
    result = airflow_home.run_dag(web_logs_dag, "pywren_web_logs", conf={**SMALL_DAY, "bucket": bucket})
    check_day(result, capfd, lambda b, k: (storage_dir / b / k).read_bytes(), bucket)


def test_web_logs_example_on_cos(
    airflow_home: AirflowHome,
    web_logs_dag: Path,
    localhost_config: dict[str, Any],
    cos_config: dict[str, Any],
    s3_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    """The example at its default size (a day of 128 MB), its data and results in COS on moto."""
    monkeypatch.setenv(CONN_ENV, connection_json(merge_config(localhost_config, cos_config)))
    bucket = new_bucket(s3_server, "weblogs")
    result = airflow_home.run_dag(web_logs_dag, "pywren_web_logs", conf={"bucket": bucket})
    client = s3_client(s3_server)
    listing = client.list_objects_v2(Bucket=bucket, Prefix="logs/")["Contents"]
    assert sum(obj["Size"] for obj in listing) >= 100 * 1024 * 1024
    check_day(result, capfd, lambda b, k: client.get_object(Bucket=b, Key=k)["Body"].read(), bucket, parts=4)


def test_web_logs_example_at_its_full_size_with_airflow_dags_test(
    airflow_home: AirflowHome, web_logs_dag: Path, pywren_conn: dict[str, Any]
) -> None:
    """The README's ETL as a user runs it: ``airflow dags test pywren_web_logs``, its default day of 128 MB."""
    bucket = f"weblogs-{uuid.uuid4().hex[:8]}"
    run = airflow_home.cli(
        "dags",
        "test",
        "pywren_web_logs",
        "--conf",
        json.dumps({"bucket": bucket}),
        env={"AIRFLOW__CORE__DAGS_FOLDER": str(web_logs_dag.parent)},
        timeout=600,
    )
    output = run.stdout + run.stderr
    root = Path(pywren_conn["localhost"]["storage_dir"]) / bucket
    try:
        assert run.returncode == 0 and "state=success" in output, output[-3000:]
        [day_dir] = (root / "logs").iterdir()
        objects = sorted(day_dir.iterdir())
        assert len(objects) == 4 and sum(path.stat().st_size for path in objects) >= 100 * 1024**2
        expected = read_day(
            lambda b, k: (root.parent / b / k).read_bytes(), bucket, [str(p.relative_to(root)) for p in objects]
        )
        summary = json.loads((root / "reports" / day_dir.name / "summary.json").read_text())
        assert summary["requests"] == expected["requests"]
        assert summary["statuses"].get("500", 0) + summary["statuses"].get("503", 0) == expected["errors"]
        assert f"web logs of {day_dir.name}: 4 objects, 128.0 MB in 16 chunks" in output  # 4 chunks per object
        assert f"requests: {expected['requests']:,}" in output
    finally:
        shutil.rmtree(root, ignore_errors=True)


FORMS_DAG = """
from airflow.sdk import ObjectStoragePath

def count_lines(obj):
    return sum(1 for _ in obj.data_stream)

def by_key(key, data_stream):
    return [key, sum(1 for _ in data_stream)]

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False, params={{"bucket": "{bucket}"}})
def forms():
    templated = PyWrenMapReduceOperator(task_id="templated", map_function=count_lines, reduce_function=sum,
                                        iterdata="{{{{ params.bucket }}}}/logs/2024-01-01/", chunk_n="3",
                                        reducer_one_per_object=True)
    paths = PyWrenMapOperator(task_id="paths", map_function=count_lines,
                              iterdata=[ObjectStoragePath("file://{root}/{bucket}/logs/2024-01-01/a.log"),
                                        ObjectStoragePath("s3://aws_default@{bucket}/logs/2024-01-01/b.log")])

    @task
    def list_keys():
        return ["{bucket}/logs/2024-01-01/b.log", "cos://{bucket}/logs/2024-01-01/a.log"]

    upstream = PyWrenMapOperator(task_id="upstream_keys", map_function=by_key, iterdata=list_keys(),
                                 return_results=True)

    one_object = PyWrenCallAsyncOperator(task_id="one_object", func=count_lines,
                                         data="cos://{{{{ params.bucket }}}}/logs/2024-01-01/b.log")

    @task.pywren(map=True, chunk_size=100)
    def decorated(obj):
        return [obj.part, sum(1 for _ in obj.data_stream)]

    @task
    def collect(a, b, c):
        hook = PyWrenHook()
        return {{"templated": hook.get_results(a), "paths": hook.get_results(b), "one_object": hook.get_results(c)}}

    collect(templated.output, paths.output, one_object.output)
    decorated("{bucket}/logs/2024-01-01/a.log")

forms()
"""


def test_iterdata_forms_from_dags(
    airflow_home: AirflowHome,
    pywren_conn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    root = Path(pywren_conn["localhost"]["storage_dir"])
    bucket = f"forms-{uuid.uuid4().hex[:8]}"
    (root / bucket / "logs" / "2024-01-01").mkdir(parents=True)
    (root / bucket / "logs" / "2024-01-01" / "a.log").write_bytes(b"x y\n" * 100)
    (root / bucket / "logs" / "2024-01-01" / "b.log").write_bytes(b"z\r\n" * 50)
    dag_id = "data_forms"
    result = airflow_home.write_and_run(dag_id, FORMS_DAG.format(dag_id=dag_id, bucket=bucket, root=root), header=True)
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.xcom("collect") == {"templated": [100, 50], "paths": [100, 50], "one_object": [50]}
    assert result.xcom("one_object")["inputs"]["locations"] == [f"cos://{bucket}/logs/2024-01-01/b.log"]
    assert result.xcom("upstream_keys")["results"] == [
        [f"{bucket}/logs/2024-01-01/b.log", 50],
        [f"{bucket}/logs/2024-01-01/a.log", 100],
    ]
    decorated = result.xcom("decorated")
    assert decorated["inputs"]["chunks"] == 4  # 400 bytes in 100-byte chunks
    templated = result.xcom("templated")
    assert templated["inputs"]["datasets"] == [{"namespace": "file", "name": f"{root}/{bucket}/logs/2024-01-01/"}]
