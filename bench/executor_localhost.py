"""Section 1: a no-op map on the localhost backends against ``ProcessPoolExecutor(2)``."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import airflow_pywren as pywren
from bench.common import bench_home, localhost_config, markdown_table, median_of, noop, seconds

SIZES = (10, 100, 1_000, 10_000)


def _process_pool(n: int) -> None:
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(noop, range(n)))


def run(sizes: tuple[int, ...] = SIZES, repeats: int = 5) -> dict[str, Any]:
    home = bench_home()
    config = localhost_config(home)
    executor = pywren.FunctionExecutor(config=config)

    def pywren_map(n: int) -> None:
        results = executor.get_result(executor.map(noop, range(n)))
        assert results[-1] == n

    cold = median_of(lambda: pywren_map(10), 1)  # includes starting the runner and its pool
    rows, data = [], []
    for n in sizes:
        reps = repeats if n <= 1_000 else 2
        pywren_time = median_of(lambda n=n: pywren_map(n), reps)
        pool_time = median_of(lambda n=n: _process_pool(n), reps)
        ratio = pywren_time / pool_time
        rows.append([f"{n:,}", seconds(pywren_time), f"{pywren_time / n * 1e6:.0f} µs", seconds(pool_time), f"{ratio:.1f}x"])
        data.append({"n": n, "pywren_s": pywren_time, "pool_s": pool_time, "ratio": ratio})
        executor.clean()
    from airflow_pywren.executor.compute.localhost import LocalhostCompute

    LocalhostCompute(executor.config).shutdown()
    table = markdown_table(
        ["N", "PyWren localhost (warm runner)", "per call", "ProcessPoolExecutor(2) incl. start-up", "ratio"], rows
    )
    note = f"First job of the run, N=10, including the runner's start-up: {seconds(cold)}."
    return {"title": "Executor on localhost: no-op map, submit to all results", "table": table, "note": note, "data": data}


if __name__ == "__main__":
    started = time.time()
    report = run()
    print(report["table"])
    print(report["note"])
