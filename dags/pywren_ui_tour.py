"""What the PyWren job view shows: a deferred map, and a map with one failing call the DAG tolerates.

Open a task instance and its "PyWren job" tab (or the task's "PyWren Job" link, or "PyWren
jobs" in the navigation): progress, the calls with their timings and workers, the timeline,
and for ``validate_records`` the failed call's error and remote traceback.

* ``squares`` is deferrable: it waits in the triggerer (the task shows as deferred) while its
  calls run;
* ``validate_records`` has one bad record: its call fails, so the task fails;
* ``report`` runs whatever ``validate_records`` did (``trigger_rule="all_done"``), so the DAG
  run itself succeeds.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenMapOperator

RECORDS = [{"id": i, "amount": 10 * i} for i in range(12)]
RECORDS[7] = {"id": 7, "amount": "ten"}  # the bad one


def slow_square(x: int) -> int:
    time.sleep(0.2 + 0.05 * (x % 5))  # long enough to see the task deferred and the calls overlap
    return x * x


def validate(record: dict) -> dict:
    if not isinstance(record["amount"], int):
        raise TypeError(f"record {record['id']}: amount must be an integer, got {record['amount']!r}")
    return {"id": record["id"], "ok": True}


@dag(
    dag_id="pywren_ui_tour",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pywren", "example"],
    doc_md=__doc__,
)
def pywren_ui_tour():
    squares = PyWrenMapOperator(task_id="squares", map_function=slow_square, iterdata=list(range(16)), deferrable=True)
    validated = PyWrenMapOperator(task_id="validate_records", map_function=validate, iterdata=RECORDS, retries=0)

    @task(trigger_rule="all_done")
    def report(squares_ref: dict) -> int:
        """Runs even though ``validate_records`` failed: the failure is tolerated, the DAG run succeeds."""
        total = sum(PyWrenHook().get_results(squares_ref))
        print(f"sum of squares: {total}; see the PyWren job tab of validate_records for the failed call")
        return total

    result = report(squares.output)
    validated >> result


pywren_ui_tour()
