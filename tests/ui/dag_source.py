"""The DAG the UI tests run once per session: every kind of PyWren task instance the job view shows."""

DAG_ID = "pywren_ui"
SOURCE = """
import os
import time

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenCallAsyncOperator, PyWrenMapOperator
from airflow_pywren.sensors.pywren import PyWrenJobSensor

GATE = "{gate}"


def check_item(x):
    if x == 5:
        raise ValueError(f"item {x} is not allowed here")
    return {"item": x, "square": x * x}


def square(x):
    return x * x


def slow_square(x):
    time.sleep(3)  # the task is deferred before its job ends
    return x * x


def wait_for_gate(x):
    if x >= 2:
        while not os.path.exists(GATE):
            time.sleep(0.05)
    return x


@dag(dag_id="pywren_ui", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def pywren_ui():
    PyWrenMapOperator(task_id="failing_map", map_function=check_item, iterdata=list(range(8)), retries=0)
    PyWrenMapOperator(task_id="deferred_map", map_function=slow_square, iterdata=list(range(6)),
                      deferrable=True)
    PyWrenMapOperator(task_id="gated_map", map_function=wait_for_gate, iterdata=[0, 1, 2, 3])
    PyWrenMapOperator(task_id="large_map", map_function=square, iterdata=list(range(10000)))
    PyWrenCallAsyncOperator.partial(task_id="mapped_call", func=square).expand(data=[3, 4])

    @task.pywren
    def hello(name):
        return f"hello {name}"

    hello("airflow")
    submit = PyWrenCallAsyncOperator(task_id="submit", func=square, data=7, wait_for_completion=False)
    PyWrenJobSensor(task_id="sense", job_ref=submit.output, poke_interval=1)

    cleaned = PyWrenMapOperator(task_id="cleaned_map", map_function=square, iterdata=[1, 2])

    @task
    def clean(ref):
        executor = PyWrenHook().get_conn()
        executor.clean(ref["executor_id"])
        executor.close()

    clean(cleaned.output)


pywren_ui()
"""

# A second DAG, for access control: a user allowed only this one sees its job and no other.
OTHER_DAG_ID = "pywren_ui_other"
OTHER_SOURCE = """
import pendulum
from airflow.sdk import dag

from airflow_pywren.operators.pywren import PyWrenMapOperator


def double(x):
    return 2 * x


@dag(dag_id="pywren_ui_other", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def pywren_ui_other():
    PyWrenMapOperator(task_id="double_map", map_function=double, iterdata=[1, 2, 3])


pywren_ui_other()
"""
