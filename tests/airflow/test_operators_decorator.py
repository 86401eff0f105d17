"""``@task.pywren`` in real DAG runs: call_async, map and map_reduce forms; DAG-file functions shipped by value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.airflow.conftest import AirflowHome, runner_stats

pytestmark = pytest.mark.airflow

TASKFLOW_DAG = """
import math

SCALE = 10  # a DAG-file global the calls use: the module is shipped by value

def scaled(x):
    return x * SCALE

def combine(values):
    return sum(values)

@dag(dag_id="deco_forms", schedule=None, start_date=START, catchup=False)
def forms():
    @task.pywren
    def hello():
        return "hello from a call"

    @task.pywren(runtime_memory=128, extra_env={"GREETING": "hi"})
    def greet(name, punctuation="!"):
        import os
        return os.environ["GREETING"] + " " + " and ".join(name) + punctuation

    @task.pywren(map=True)
    def root(x):
        return math.isqrt(scaled(x))

    @task.pywren(map=True, deferrable=True, poll_interval=0.1)
    def plus_one(x):
        return x + 1

    @task.pywren(reduce_function=combine)
    def square(x):
        return x * x

    @task.pywren
    def total(value, offset):
        return value + offset

    @task
    def names():
        return ["ada", "grace"]

    @task
    def collect(*refs):
        hook = PyWrenHook()
        return [hook.get_results(ref) for ref in refs]

    roots = root([10, 40, 90])
    plussed = plus_one(roots)
    squares = square(iterdata=plussed)
    collect(hello(), greet(names(), punctuation="?"), roots, plussed, squares, total(squares, offset=1000))

forms()
"""


def test_taskflow_forms_run_as_pywren_calls(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    before = runner_stats(pywren_conn).get("invoked", 0)
    result = airflow_home.write_and_run("deco_forms", TASKFLOW_DAG, header=True)
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    hello, greeting, roots, plussed, squares, total = result.xcom("collect")
    assert hello == ["hello from a call"]
    assert greeting == ["hi ada and grace?"]
    assert roots == [10, 20, 30]
    assert plussed == [11, 21, 31]
    assert squares == [121 + 441 + 961]
    assert total == [1523 + 1000]
    # 1 + 1 + 3 + 3 + (3 + reducer) + 1 activations
    assert runner_stats(pywren_conn)["invoked"] - before == 13

    kinds = {t: result.xcom(t)["kind"] for t in ("hello", "greet", "root", "plus_one", "square", "total")}
    assert kinds == {
        "hello": "call_async",
        "greet": "call_async",
        "root": "map",
        "plus_one": "map",
        "square": "map_reduce",
        "total": "call_async",
    }
    assert result.xcom("square")["job_ids"] == ["M000", "R001"]
    assert "deferring: the triggerer follows map job M000" in out


def test_taskflow_rejects_what_it_cannot_run(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    result = airflow_home.write_and_run(
        "deco_errors",
        """
        @dag(dag_id="deco_errors", schedule=None, start_date=START, catchup=False)
        def errors():
            @task.pywren
            def star_args(*values):
                return sum(values)

            @task.pywren(map=True)
            def fails(x):
                raise LookupError(f"no entry {x}")

            star_args(1, 2)
            fails([7])

        errors()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    assert result.task_states == {"star_args": "failed", "fails": "failed"}
    assert "parameter 'values' is not supported; use named parameters" in out
    assert "LookupError: no entry 7" in out
    assert "1 of 1 call(s) of map job M000 failed" in out


def test_multiple_outputs_is_refused(airflow_home: AirflowHome) -> None:
    from airflow_pywren.decorators.pywren import pywren_task

    with pytest.raises(ValueError, match="multiple_outputs=True is not supported"):
        pywren_task(multiple_outputs=True)
