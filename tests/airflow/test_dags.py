"""The example DAGs in ``dags/``: they import cleanly, and they run on the localhost backends."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import REPO_ROOT, AirflowHome

pytestmark = pytest.mark.airflow

EXAMPLES = REPO_ROOT / "dags"
EXAMPLE_DAG_IDS = {
    "pywren_word_count",
    "pywren_chain",
    "pywren_hello",
    "pywren_submit_and_sense",
    "pywren_web_logs",
    "pywren_ui_tour",
}


def _json_output(stdout: str) -> Any:
    """The JSON document the CLI printed (its last line; log lines come before it)."""
    return json.loads([line for line in stdout.splitlines() if line.strip()][-1])


def test_example_dags_have_no_import_errors(airflow_home: AirflowHome, tmp_path: Path) -> None:
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES)}
    errors = airflow_home.cli("dags", "list-import-errors", "--local", "-o", "json", env=env)
    assert errors.returncode == 0, errors.stderr[-3000:]
    assert _json_output(errors.stdout) == []
    listed = airflow_home.cli("dags", "list", "--local", "-o", "json", env=env)
    assert {row["dag_id"] for row in _json_output(listed.stdout)} == EXAMPLE_DAG_IDS

    # the same check reports a broken DAG file
    broken = tmp_path / "dags"
    shutil.copytree(EXAMPLES, broken)
    (broken / "broken.py").write_text(
        "from airflow.sdk import dag\nfrom airflow_pywren.operators.pywren import NoSuchOperator\n"
    )
    errors = airflow_home.cli(
        "dags", "list-import-errors", "--local", "-o", "json", env={"AIRFLOW__CORE__DAGS_FOLDER": str(broken)}
    )
    reported = _json_output(errors.stdout)
    assert [Path(row["filepath"]).name for row in reported] == ["broken.py"]
    assert "NoSuchOperator" in reported[0]["error"]


def _stop_words() -> set[str]:
    spec = importlib.util.spec_from_file_location("word_count_example", EXAMPLES / "pywren_word_count.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(module.STOP_WORDS)


def test_word_count_runs_with_airflow_dags_test(airflow_home: AirflowHome, pywren_conn: dict[str, Any]) -> None:
    """The README's command: ``airflow dags test pywren_word_count`` with the repository's dags folder."""
    run = airflow_home.cli("dags", "test", "pywren_word_count", env={"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES)})
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "state=success" in output

    stop = _stop_words()
    words = [
        w
        for path in sorted((EXAMPLES / "data").glob("*.txt"))
        for w in re.findall(r"[a-z']+", path.read_text(encoding="utf-8").lower())
        if w not in stop
    ]
    expected = Counter(words)
    header = re.search(r"^(\d+) words, (\d+) distinct; top 10:$", run.stdout, re.MULTILINE)
    assert header, output[-3000:]
    assert (int(header[1]), int(header[2])) == (len(words), len(expected))
    lines = run.stdout[header.end() :].splitlines()[1:11]
    printed = [(m[1], int(m[2])) for m in (re.fullmatch(r"  (\S+)\s+(\d+)", line) for line in lines) if m]
    assert len(printed) == 10, lines
    assert all(expected[word] == count for word, count in printed)
    counts = [count for _, count in printed]
    assert counts == sorted(counts, reverse=True)
    assert min(counts) >= max(c for w, c in expected.items() if w not in dict(printed))


@pytest.fixture(scope="module")
def example_dags(airflow_home: AirflowHome) -> Path:
    """The example DAGs (and their data) copied into the test home's dags folder."""
    target = airflow_home.dags_folder / "examples"
    if not target.exists():
        shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_chain_example(airflow_home: AirflowHome, example_dags: Path, pywren_conn: dict[str, Any]) -> None:
    result = airflow_home.run_dag(example_dags / "pywren_chain.py", "pywren_chain")
    assert result.state == "success"
    squares = [x * x for x in range(10)]
    assert result.xcom("summary") == {"count": 10, "sum": sum(squares), "even": sum(s % 2 == 0 for s in squares)}
    # the second map read the first map's results inside its calls: one call per upstream result key
    assert result.xcom("describe")["total"] == result.xcom("square")["result_count"] == 10


def test_hello_example(airflow_home: AirflowHome, example_dags: Path, pywren_conn: dict[str, Any]) -> None:
    import platform

    result = airflow_home.run_dag(example_dags / "pywren_hello.py", "pywren_hello")
    assert result.state == "success"
    greeting = f"Hello, Airflow, from a PyWren call on {platform.node()}"
    assert result.xcom("show") == [greeting, greeting.upper() + "!"]


def test_submit_and_sense_example(
    airflow_home: AirflowHome, example_dags: Path, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    result = airflow_home.run_dag(example_dags / "pywren_submit_and_sense.py", "pywren_submit_and_sense")
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert result.xcom("submit")["status"] == "submitted"
    assert result.xcom("wait")["status"] == "success"
    assert result.xcom("report") == sum(x**3 for x in range(1, 7))


def test_word_count_example_in_process(
    airflow_home: AirflowHome, example_dags: Path, pywren_conn: dict[str, Any]
) -> None:
    result = airflow_home.run_dag(example_dags / "pywren_word_count.py", "pywren_word_count")
    assert result.state == "success"
    ref = result.xcom("count_words")
    assert (ref["kind"], ref["total"]) == ("map_reduce", len(list((example_dags / "data").glob("*.txt"))) + 1)
    top = result.xcom("top_words")
    assert len(top) == 10 and all(count >= 2 for _, count in top)


def test_ui_tour_example_defers_and_tolerates_its_failing_call(
    airflow_home: AirflowHome, example_dags: Path, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    result = airflow_home.run_dag(example_dags / "pywren_ui_tour.py", "pywren_ui_tour")
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]  # the DAG run succeeds...
    assert result.task_states == {"squares": "success", "validate_records": "failed", "report": "success"}
    assert "deferring: the triggerer follows map job M000" in out
    assert "TypeError: record 7: amount must be an integer, got 'ten'" in out  # ...with the failed call in the log
    record = result.xcom("validate_records", key="pywren_job")  # and in the job record the job view reads
    assert (record["status"], record["total"], record["failed"]) == ("error", 12, 1)
    assert result.xcom("report") == sum(x * x for x in range(16))
