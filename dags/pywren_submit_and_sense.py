"""Submit without waiting, then wait with a sensor.

``submit`` returns as soon as the calls are invoked (``wait_for_completion=False``);
``wait`` (a PyWrenJobSensor) follows the job by its reference; ``report`` reads the results.
With ``deferrable=True`` the sensor waits in the triggerer instead of a worker slot.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenMapOperator
from airflow_pywren.sensors.pywren import PyWrenJobSensor


def slow_cube(x: int) -> int:
    time.sleep(0.5)
    return x**3


@dag(
    dag_id="pywren_submit_and_sense",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pywren", "example"],
    doc_md=__doc__,
)
def pywren_submit_and_sense():
    submit = PyWrenMapOperator(
        task_id="submit", map_function=slow_cube, iterdata=list(range(1, 7)), wait_for_completion=False
    )
    wait = PyWrenJobSensor(task_id="wait", job_ref=submit.output, poke_interval=1, timeout=600)

    @task
    def report(job_ref: dict) -> int:
        cubes = PyWrenHook().get_results(job_ref)
        print(f"{job_ref['kind']} job {'+'.join(job_ref['job_ids'])}: cubes {cubes}, total {sum(cubes)}")
        return sum(cubes)

    report(wait.output)


pywren_submit_and_sense()
