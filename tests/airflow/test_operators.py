"""PyWren operators in real DAG runs (dag.test() on SQLite) with the localhost backends."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.executor import signing
from airflow_pywren.executor.jobref import JobRef
from airflow_pywren.links.pywren import job_view_url
from airflow_pywren.operators.pywren import executor_id_for
from tests.airflow.conftest import AirflowHome, runner_stats
from tests.conftest import call_store_of, stored_status

pytestmark = pytest.mark.airflow

REF_KEYS = {
    "executor_id",
    "kind",
    "job_ids",
    "result_job_id",
    "storage_backend",
    "bucket",
    "storage_prefix",
    "location",
    "result_count",
    "result_key_pattern",
    "total",
    "status",
    "done",
    "failed",
    "pywren_conn_id",
}

CHAIN_DAG = """
def square(x):
    return x * x

def plus_one(x):
    return x + 1

def add_all(values):
    return sum(values)

def describe(total):
    return f"total is {{total}}"

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False)
def chain():
    opts = dict(deferrable={deferrable}, poll_interval=0.1)
    squares = PyWrenMapOperator(task_id="square", map_function=square, iterdata=[1, 2, 3, 4], return_results=True, **opts)
    total = PyWrenMapReduceOperator(task_id="total", map_function=plus_one, iterdata=squares.output,
                                    reduce_function=add_all, **opts)
    described = PyWrenCallAsyncOperator(task_id="describe", func=describe, data=total.output, **opts)

    @task
    def collect(a, b, c):
        hook = PyWrenHook()
        return {{"square": hook.get_results(a), "total": hook.get_results(b), "describe": hook.get_results(c)}}

    collect(squares.output, total.output, described.output)

chain()
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_three_operators_chain_through_job_references(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture, deferrable: bool
) -> None:
    dag_id = f"ops_chain_{'deferrable' if deferrable else 'blocking'}"
    before = runner_stats(pywren_conn).get("invoked", 0)

    result = airflow_home.write_and_run(dag_id, CHAIN_DAG.format(dag_id=dag_id, deferrable=deferrable), header=True)
    out = capfd.readouterr().out

    assert result.state == "success", out[-3000:]
    assert set(result.task_states.values()) == {"success"}
    assert set(result.try_numbers.values()) == {1}
    # 4 squares + 4 map calls and a reducer + 1 call_async
    assert runner_stats(pywren_conn)["invoked"] - before == 10

    square, total, described = (result.xcom(t) for t in ("square", "total", "describe"))
    assert set(square) == REF_KEYS | {"results"}
    assert set(total) == set(described) == REF_KEYS
    assert (square["kind"], square["job_ids"], square["total"]) == ("map", ["M000"], 4)
    assert (total["kind"], total["job_ids"], total["total"], total["result_job_id"]) == (
        "map_reduce",
        ["M000", "R001"],
        5,
        "R001",
    )
    assert (described["kind"], described["job_ids"], described["total"]) == ("call_async", ["A000"], 1)
    call_store = call_store_of(pywren_conn)
    for task_id, ref in (("square", square), ("total", total), ("describe", described)):
        assert ref["executor_id"] == executor_id_for(dag_id, result.run_id, task_id, -1)
        assert (ref["status"], ref["done"], ref["failed"]) == ("success", ref["total"], 0)
        assert ref["pywren_conn_id"] == "pywren_default"
        assert ref["storage_backend"] == "localhost"
        for key in JobRef.parse(ref).result_keys:
            assert key.startswith(f"{ref['storage_prefix']}/{ref['executor_id']}/{ref['result_job_id']}/")
            assert call_store.read_output_key(key).startswith(signing.MAGIC)  # a signed output is in storage
        # the extra link opens the job view of the task instance; the job record is what that view reads
        assert result.xcom(task_id, key="_link_PyWrenJobLink") == job_view_url(dag_id, result.run_id, task_id)
        assert result.xcom(task_id, key="_link_PyWrenJobLink").startswith("http://localhost:8080/dags/")
        record = result.xcom(task_id, key="pywren_job")
        assert (record["executor_id"], record["job_ids"], record["status"], record["done"]) == (
            ref["executor_id"],
            ref["job_ids"],
            "success",
            ref["total"],
        )
        assert "result_keys" not in record
    assert (square["result_count"], total["result_count"], described["result_count"]) == (4, 1, 1)
    # values only where asked for (return_results=True)
    assert square["results"] == [1, 4, 9, 16]
    assert result.xcom("collect") == {"square": [1, 4, 9, 16], "total": [34], "describe": ["total is 34"]}

    assert "map job M000: 4/4 done, 0 failed" in out
    assert "map_reduce job M000+R001: 5/5 done, 0 failed" in out
    if deferrable:
        assert out.count("deferring: the triggerer follows") == 3
        assert "trigger reported success" in out


FAILING_DAG = """
class OddInputError(Exception):
    pass

def fail_on_three(x):
    if x == 3:
        raise ValueError(f"cannot handle item {{x}}")
    return x

def reject_odd(x):
    if x % 2:
        raise OddInputError(f"odd input {{x}}")
    return x

@dag(dag_id="{dag_id}", schedule=None, start_date=START, catchup=False)
def failing():
    opts = dict(deferrable={deferrable}, poll_interval=0.1)
    PyWrenMapOperator(task_id="map_fails", map_function=fail_on_three, iterdata=[1, 2, 3, 4], **opts)
    PyWrenMapReduceOperator(task_id="map_reduce_fails", map_function=reject_odd, iterdata=[2, 4, 5, 7, 9],
                            reduce_function=sum, **opts)
    PyWrenCallAsyncOperator(task_id="call_fails", func=reject_odd, data=41, **opts)

failing()
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_failed_calls_fail_the_task_with_type_traceback_and_count(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture, deferrable: bool
) -> None:
    dag_id = f"ops_failing_{'deferrable' if deferrable else 'blocking'}"

    result = airflow_home.write_and_run(dag_id, FAILING_DAG.format(dag_id=dag_id, deferrable=deferrable), header=True)
    out = capfd.readouterr().out

    assert result.state == "failed"
    assert result.task_states == {"map_fails": "failed", "map_reduce_fails": "failed", "call_fails": "failed"}
    # the failed count, the failing call, the exception type and message
    assert "1 of 4 call(s) of map job M000 failed" in out
    assert "job M000 call 00002 failed: ValueError: cannot handle item 3" in out
    # three odd map inputs fail, and the reducer with them
    assert "4 of 6 call(s) of map_reduce job M000+R001 failed" in out
    assert "OddInputError: odd input 5" in out
    assert "1 of 1 call(s) of call_async job A000 failed" in out
    assert "OddInputError: odd input 41" in out
    # the remote traceback shows the function's own frame, then the error
    assert "remote traceback of job M000 call 00002" in out
    assert re.search(r"line \d+, in fail_on_three\n(    .*\n)*ValueError: cannot handle item 3", out)
    assert re.search(r"line \d+, in reject_odd\n(    .*\n)*\S*OddInputError: odd input 5", out)
    # Airflow's failure record names the function's exception type
    assert "ValueError" in _task_error_lines(out, "map_fails")


def _task_error_lines(out: str, task_id: str) -> str:
    """The log lines from a task's start to its end marker."""
    start = out.index(f"[DAG TEST] starting task_id={task_id}")
    end = out.index(f"[DAG TEST] end task task_id={task_id}", start)
    return out[start:end]


def test_wait_for_completion_false_returns_after_submit(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    result = airflow_home.write_and_run(
        "ops_no_wait",
        f"""
        import os, time

        def gated(x):
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.02)
            return -x

        @dag(dag_id="ops_no_wait", schedule=None, start_date=START, catchup=False)
        def no_wait():
            PyWrenMapOperator(task_id="submit", map_function=gated, iterdata=[1, 2, 3], wait_for_completion=False)

        no_wait()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    try:
        assert result.state == "success", out[-3000:]
        ref = result.xcom("submit")
        # the calls cannot have finished: they wait for the gate, which is still closed
        assert (ref["status"], ref["done"], ref["failed"], ref["total"]) == ("submitted", 0, 0, 3)
        assert "3/3 done" not in out
    finally:
        gate.touch()
    from airflow_pywren.hooks.pywren import PyWrenHook

    assert PyWrenHook().get_results(ref) == [-1, -2, -3]


def test_templates_literals_and_xcom_refs_as_data(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    result = airflow_home.write_and_run(
        "ops_templates",
        """
        import os

        def env_and_item(x):
            return [os.environ["RUN_ID"], os.environ["ITEM_COUNT"], x]

        def negate(x):
            return -x

        def pair(left, right):
            return [left, right]

        @dag(dag_id="ops_templates", schedule=None, start_date=START, catchup=False, params={"items": [5, 6, 7]})
        def templates():
            templated = PyWrenMapOperator(
                task_id="templated", map_function=env_and_item, iterdata="{{ params['items'] }}",
                extra_env={"RUN_ID": "{{ run_id }}", "ITEM_COUNT": "{{ params['items'] | length }}"},
                extra_meta={"run": "{{ run_id }}"},
            )
            one = PyWrenCallAsyncOperator(task_id="one", func=negate, data=8)
            # a job reference pulled by a template renders to text: it is parsed back
            pulled = PyWrenCallAsyncOperator(task_id="pulled", func=negate, data="{{ ti.xcom_pull(task_ids='one') }}")
            # single-result references among keyword arguments are resolved inside the call
            kwargs = PyWrenCallAsyncOperator(task_id="kwargs", func=pair, data={"left": one.output, "right": "plain"})
            one >> pulled

            @task
            def collect(a, b, c):
                hook = PyWrenHook()
                watcher = hook.watch(a)
                watcher.wait()
                metas = [f.extra_meta for f in watcher.futures]
                watcher.executor.close()
                return {"templated": hook.get_results(a), "meta": metas, "pulled": hook.get_results(b),
                        "kwargs": hook.get_results(c)}

            collect(templated.output, pulled.output, kwargs.output)

        templates()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    collected = result.xcom("collect")
    assert collected["templated"] == [[result.run_id, "3", 5], [result.run_id, "3", 6], [result.run_id, "3", 7]]
    assert collected["meta"] == [{"run": result.run_id}] * 3
    assert collected["pulled"] == [8]
    assert collected["kwargs"] == [[-8, "plain"]]
    rendered = result.xcom("templated")
    assert rendered["total"] == 3 and "results" not in rendered


def test_bad_input_fails_before_anything_is_invoked(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    before = runner_stats(pywren_conn).get("invoked", 0)
    result = airflow_home.write_and_run(
        "ops_bad_input",
        """
        def ident(x):
            return x

        def two(a, b):
            return a + b

        @dag(dag_id="ops_bad_input", schedule=None, start_date=START, catchup=False)
        def bad_input():
            up = PyWrenMapOperator(task_id="up", map_function=ident, iterdata=[1, 2, 3])
            # a map job has three results: call_async wants one value
            PyWrenCallAsyncOperator(task_id="many_refs", func=ident, data=up.output)
            PyWrenMapOperator(task_id="not_a_list", map_function=ident, iterdata=42)
            PyWrenMapOperator(task_id="wrong_arity", map_function=two, iterdata=[{"a": 1}])

        bad_input()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    assert result.task_states == {
        "up": "success",
        "many_refs": "failed",
        "not_a_list": "failed",
        "wrong_arity": "failed",
    }
    assert runner_stats(pywren_conn)["invoked"] - before == 3  # only the upstream map ran
    assert "data is the reference of map job M000 with 3 results, but one value is expected here" in out
    assert "iterdata must be a list (or other iterable) of items, one per call; got int" in out
    assert "PyWrenSubmitError" in out and "does not fit two(a, b)" in out


def test_mapped_operator_gets_one_executor_per_map_index(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    result = airflow_home.write_and_run(
        "ops_expand",
        """
        def triple(x):
            return 3 * x

        @dag(dag_id="ops_expand", schedule=None, start_date=START, catchup=False)
        def expand():
            PyWrenCallAsyncOperator.partial(task_id="triple", func=triple, return_results=True).expand(data=[1, 2, 3])

        expand()
    """,
        header=True,
    )
    assert result.state == "success", capfd.readouterr().out[-3000:]
    refs = [result.xcom("triple", map_index=i) for i in range(3)]
    assert [ref["results"] for ref in refs] == [[3], [6], [9]]
    assert [ref["executor_id"] for ref in refs] == [
        executor_id_for("ops_expand", result.run_id, "triple", i) for i in range(3)
    ]
    assert len({ref["executor_id"] for ref in refs}) == 3


def test_execution_timeout_kills_the_task_and_cancels_its_activations(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    before = runner_stats(pywren_conn)
    result = airflow_home.write_and_run(
        "ops_on_kill",
        """
        import datetime, time

        def nap(x):
            time.sleep(60)
            return x

        @dag(dag_id="ops_on_kill", schedule=None, start_date=START, catchup=False)
        def on_kill():
            PyWrenMapOperator(task_id="naps", map_function=nap, iterdata=[1, 2, 3, 4], poll_interval=0.1,
                              execution_timeout=datetime.timedelta(seconds=2))

        on_kill()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    after = runner_stats(pywren_conn)
    assert result.task_states == {"naps": "failed"}
    assert "AirflowTaskTimeout" in out
    # 2 running (2 workers) and 2 queued: all four are cancelled
    assert "task killed: cancelled 4 pending activation(s) of map job M000" in out
    assert after["cancelled"] - before.get("cancelled", 0) == 4
    assert after["invoked"] - before.get("invoked", 0) == 4
    # every call of the job has its final (error) status in storage
    executor_id = executor_id_for("ops_on_kill", result.run_id, "naps", -1)
    statuses = [stored_status(pywren_conn, executor_id, "M000", f"{i:05d}") for i in range(4)]
    assert [s["status"] for s in statuses] == ["error"] * 4
    assert all("was cancelled" in s["error"]["message"] for s in statuses)


def test_executor_ids_are_deterministic_short_and_distinct() -> None:
    base = ("dag", "manual__2024-01-01T00:00:00+00:00", "task", -1)
    same = executor_id_for(*base)
    assert same == executor_id_for(*base)
    assert len(same) == 16 and "/" not in same
    variants = [("dag2", *base[1:]), (base[0], "other_run", *base[2:]), (*base[:2], "task2", -1), (*base[:3], 0)]
    assert len({same, *(executor_id_for(*v) for v in variants)}) == 5


def test_constructor_checks_arguments_and_does_no_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_pywren.operators.pywren import PyWrenMapOperator

    storage_dir = tmp_path / "never-created"
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps({"localhost": {"storage_dir": str(storage_dir)}}))
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_DEFAULT", "{not json")  # would fail if the connection were read
    op = PyWrenMapOperator(task_id="t", map_function=abs, iterdata=[1], deferrable=True)
    assert op.deferrable and not storage_dir.exists()
    with pytest.raises(ValueError, match="deferrable=True .* needs wait_for_completion=True"):
        PyWrenMapOperator(task_id="t2", map_function=abs, iterdata=[1], deferrable=True, wait_for_completion=False)
    with pytest.raises(ValueError, match="poll_interval must be a positive number"):
        PyWrenMapOperator(task_id="t3", map_function=abs, iterdata=[1], poll_interval=0)
    assert {"iterdata", "extra_env", "extra_meta"} <= set(PyWrenMapOperator.template_fields)


def test_timeout_and_exclude_modules_reach_the_calls(
    airflow_home: AirflowHome,
    pywren_conn: dict[str, Any],
    capfd: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Helper modules in the dags folder, unique to this test: workers keep modules shipped to them.
    shipped, excluded = (f"pywren_helper_{uuid.uuid4().hex[:8]}" for _ in range(2))
    for helper in (shipped, excluded):
        (airflow_home.dags_folder / f"{helper}.py").write_text("def shout(text):\n    return text.upper()\n")
    monkeypatch.syspath_prepend(str(airflow_home.dags_folder))  # as Airflow puts the dags folder on sys.path
    options = airflow_home.write_and_run(
        "ops_call_options",
        f"""
        import time
        import {shipped}

        def use_helper(text):
            return {shipped}.shout(text)

        def sleepy(x):
            time.sleep(30)
            return x

        @dag(dag_id="ops_call_options", schedule=None, start_date=START, catchup=False)
        def call_options():
            # the helper module is shipped with the function
            PyWrenMapOperator(task_id="shipped", map_function=use_helper, iterdata=["a", "b"], return_results=True)
            PyWrenCallAsyncOperator(task_id="too_slow", func=sleepy, data=1, timeout=1)

        call_options()
    """,
        header=True,
    )
    without = airflow_home.write_and_run(
        "ops_exclude_modules",
        f"""
        import {excluded}

        def use_helper(text):
            return {excluded}.shout(text)

        @dag(dag_id="ops_exclude_modules", schedule=None, start_date=START, catchup=False)
        def exclude_modules():
            PyWrenMapOperator(task_id="excluded", map_function=use_helper, iterdata=["a"], exclude_modules=[{excluded!r}])

        exclude_modules()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    assert options.task_states == {"shipped": "success", "too_slow": "failed"}, out[-3000:]
    assert options.xcom("shipped")["results"] == ["A", "B"]
    assert "ActivationTimeoutError" in out
    assert without.task_states == {"excluded": "failed"}
    assert f"ModuleNotFoundError: No module named '{excluded}'" in out
