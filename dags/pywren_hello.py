"""Hello world: one PyWren call, as an operator and as a ``@task.pywren`` function."""

from __future__ import annotations

import platform

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenCallAsyncOperator


def greet(name: str) -> str:
    return f"Hello, {name}, from a PyWren call on {platform.node()}"


@dag(
    dag_id="pywren_hello",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pywren", "example"],
    doc_md=__doc__,
)
def pywren_hello():
    hello = PyWrenCallAsyncOperator(task_id="hello", func=greet, data="Airflow")

    @task.pywren
    def shout(greeting: str) -> str:
        """Runs as a PyWren call; ``greeting`` is the upstream call's result, read inside the call."""
        return greeting.upper() + "!"

    @task
    def show(*job_refs: dict) -> list[str]:
        hook = PyWrenHook()
        lines = [value for ref in job_refs for value in hook.get_results(ref)]
        for line in lines:
            print(line)
        return lines

    show(hello.output, shout(hello.output))


pywren_hello()
