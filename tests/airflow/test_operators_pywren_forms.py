"""The operators and ``@task.pywren`` accept the data forms of PyWren: lists spread, dicts as keywords,
injected parameters, also when the data comes from XCom or from an upstream PyWren task."""

from __future__ import annotations

from typing import Any

import pytest

from tests.airflow.conftest import AirflowHome

pytestmark = pytest.mark.airflow

FORMS_DAG = """
def add(x, y):
    return x + y

def total(numbers):
    return sum(numbers)

def pair(id, x):
    return [id, x]

def first_plus_second(a, b):
    return a + b

@dag(dag_id="pywren_forms", schedule=None, start_date=START, catchup=False)
def forms():
    @task
    def pairs():
        return [[1, 2], [3, 4]]

    spread = PyWrenMapOperator(task_id="spread", map_function=add, iterdata=pairs())
    whole = PyWrenMapOperator(task_id="whole", map_function=total, iterdata=pairs())
    wrapped = PyWrenCallAsyncOperator(task_id="wrapped", func=total, data=[[5, 6, 7]])
    keywords = PyWrenMapOperator(task_id="keywords", map_function=add, iterdata=[{"x": 1, "y": 10}, {"x": 2, "y": 20}])
    ids = PyWrenMapOperator(task_id="ids", map_function=pair, iterdata=[10, 20, 30])
    extra = PyWrenMapOperator(task_id="extra", map_function=add, iterdata=[1, 2], extra_args=(100,))
    # upstream PyWren results are read inside the calls, then spread by the same rule
    chained = PyWrenMapOperator(task_id="chained", map_function=first_plus_second, iterdata=ids.output)

    @task.pywren(map=True)
    def decorated_spread(x, y):
        return x * y

    @task.pywren
    def decorated_id(word, id):
        return f"{word}-{id}"

    @task.pywren
    def decorated_no_args(id):
        return id

    @task
    def collect(*refs):
        hook = PyWrenHook()
        return [hook.get_results(ref) for ref in refs]

    collect(spread.output, whole.output, wrapped.output, keywords.output, ids.output, extra.output, chained.output,
            decorated_spread(pairs()), decorated_id("w"), decorated_no_args())

forms()
"""


def test_operators_and_taskflow_spread_data_as_pywren_does(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    result = airflow_home.write_and_run("pywren_forms", FORMS_DAG, header=True)
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    spread, whole, wrapped, keywords, ids, extra, chained, deco_spread, deco_id, deco_none = result.xcom("collect")
    assert spread == [3, 7]  # a list item from XCom is spread: add(1, 2), add(3, 4)
    assert whole == [3, 7]  # one-parameter function: the item is passed whole
    assert wrapped == [18]
    assert keywords == [11, 22]
    assert ids == [[0, 10], [1, 20], [2, 30]]  # id is injected
    assert extra == [101, 102]
    assert chained == [10, 21, 32]  # each upstream [id, x] is spread into first_plus_second(a, b)
    assert deco_spread == [2, 12]
    assert deco_id == ["w-0"] and deco_none == [0]
