"""What a task's log says: the embedded-default notice once per try, and progress lines that name their job."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.airflow.conftest import CONN_ENV, AirflowHome

pytestmark = pytest.mark.airflow

DAG = """
@dag(dag_id="task_logs", schedule=None, start_date=START, catchup=False)
def task_logs():
    PyWrenMapOperator(task_id="deferred", map_function=lambda x: x + 1, iterdata=list(range(5)), deferrable=True)
    PyWrenMapReduceOperator(task_id="blocking", map_function=lambda x: x * 2, iterdata=list(range(5)),
                            reduce_function=sum)


task_logs()
"""


def test_embedded_default_is_announced_once_per_try_and_progress_names_the_job(
    airflow_home: AirflowHome,
    localhost_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    monkeypatch.delenv(CONN_ENV, raising=False)  # no connection: the embedded default, in this test's directories
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps(localhost_config))
    result = airflow_home.write_and_run("task_logs", DAG, header=True)
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    # one line per task try: the deferred task's trigger and resumed try do not repeat it
    assert out.count("connection 'pywren_default' is not defined: using the embedded default") == 2, out[-4000:]
    progress = re.findall(r"^.*\b\d+/\d+ done\b.*$", out, re.MULTILINE)
    assert progress, out[-3000:]
    unnamed = [line for line in progress if not re.search(r"\b(map|call_async|map_reduce|reduce) job [AMR]\d{3}", line)]
    assert not unnamed
    assert any("map_reduce job M000+R001: 6/6 done, 0 failed" in line for line in progress)
