"""A chain of PyWren jobs: a map, a second map over the first map's results, then a Python summary.

The second map receives the first map's job reference as ``iterdata``: each of its calls
reads one upstream result from storage, so no value passes through Airflow. The summary
task reads the final values through the hook.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenMapOperator


def square(x: int) -> int:
    return x * x


def describe(value: int) -> dict:
    return {"value": value, "even": value % 2 == 0}


@dag(
    dag_id="pywren_chain",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pywren", "example"],
    doc_md=__doc__,
)
def pywren_chain():
    squares = PyWrenMapOperator(task_id="square", map_function=square, iterdata=list(range(10)))
    described = PyWrenMapOperator(task_id="describe", map_function=describe, iterdata=squares.output)

    @task
    def summary(job_ref: dict) -> dict:
        """Read the second map's results through the hook."""
        values = PyWrenHook().get_results(job_ref)
        result = {"count": len(values), "sum": sum(v["value"] for v in values), "even": sum(v["even"] for v in values)}
        print(f"summary of {job_ref['total']} results: {result}")
        return result

    summary(described.output)


pywren_chain()
