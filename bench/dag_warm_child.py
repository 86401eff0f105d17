"""Run DAGs with ``dag.test()`` one after another in this one process (section 2, warm).

Usage: ``python -m bench.dag_warm_child '<plan>'`` where the plan is a JSON list of
``[dag_id, n, label]``. The DAGs come from ``AIRFLOW__CORE__DAGS_FOLDER``. Prints one JSON
line per run: ``{"dag_id", "n", "label", "run_id", "state", "wall_s"}``.

The first ``dag.test()`` of a process builds Airflow's in-process execution API (seconds);
later runs reuse it, as the tasks of a deployment reuse a long-running API server. The
plan's first entries are warm-ups that pay that cost.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    from airflow.models.dagbag import DagBag

    plan = json.loads(argv[0])
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    for dag_id, n, label in plan:
        dag = bag.get_dag(dag_id)
        start = time.perf_counter()
        run = dag.test(run_conf={"n": n})
        wall = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "dag_id": dag_id,
                    "n": n,
                    "label": label,
                    "run_id": run.run_id,
                    "state": str(run.state),
                    "wall_s": wall,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
