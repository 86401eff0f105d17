"""Section 5: invocation throughput on the OpenWhisk-API test server, storage on S3 (moto).

Client side: the time ``map`` takes to stage the job and get an activation id for every call
(non-blocking POSTs over ``ibm_cf.max_concurrency`` threads). With injected 429s the test
server answers the first invocation attempts with 429 and the client retries them with
backoff. End to end: ``map`` plus ``get_result``.
"""

from __future__ import annotations

import time
from typing import Any

import airflow_pywren as pywren
from bench.common import Context, markdown_table, noop, seconds

NAME = "throughput"
TITLE = "Invocation throughput on the OpenWhisk-API test server (S3 storage)"
SIZES = (100, 1_000)
CONTAINERS = 4
FAULT_SHARE = 0.1
TIMELINE_N = 1_000


def run(ctx: Context) -> dict[str, Any]:
    from tests.services.s3 import cos_section

    s3 = ctx.services.s3()
    openwhisk = ctx.services.openwhisk(containers=CONTAINERS)
    ibm_cf = dict(openwhisk.info["ibm_cf"])
    ibm_cf.update(max_concurrency=64, invoke_retries=8)  # the product defaults, not the test fixture's
    config = {
        "pywren": {"compute_backend": "ibm_cf", "storage_backend": "ibm_cos"},
        "ibm_cf": ibm_cf,
        "ibm_cos": cos_section(s3.info["endpoint"], s3.command("bucket")["bucket"]),
    }
    sizes = (100,) if ctx.quick else SIZES
    executor = pywren.FunctionExecutor(config=config)
    rows, data, plots = [], [], []
    try:
        warm = time.perf_counter()
        executor.get_result(executor.map(noop, range(2 * CONTAINERS)))  # deploys the action, starts the containers
        warm_s = time.perf_counter() - warm
        executor.clean()
        for n in sizes:
            for faults in (0, int(n * FAULT_SHARE)):
                openwhisk.command("wait_idle")
                openwhisk.command("reset")
                if faults:
                    openwhisk.command("inject", status=429, count=faults)
                start = time.perf_counter()
                futures = executor.map(noop, range(n))
                submit_s = time.perf_counter() - start
                results = executor.get_result(futures)
                total_s = time.perf_counter() - start
                assert results == [x + 1 for x in range(n)], "wrong results"
                stats = openwhisk.command("stats")
                answered_429 = int(stats["answers"].get("429", 0))
                rows.append(
                    [
                        f"{n:,}",
                        f"{faults} ({answered_429} answered)" if faults else "0",
                        seconds(submit_s),
                        f"{n / submit_s:,.0f}",
                        seconds(total_s),
                        f"{n / total_s:,.0f}",
                        stats["max_in_flight"],
                    ]
                )
                data.append(
                    {
                        "n": n,
                        "faults": faults,
                        "answered_429": answered_429,
                        "submit_s": submit_s,
                        "total_s": total_s,
                        "invocations_per_s": n / submit_s,
                        "calls_per_s": n / total_s,
                        "server": stats,
                    }
                )
                if n == TIMELINE_N and not faults:
                    plots += [p.name for p in executor.plot(futures, str(ctx.results_dir), f"openwhisk_n{n}")]
                executor.clean()
    finally:
        executor.close()
    table = markdown_table(
        [
            "N",
            "injected 429s",
            "submit (all invocations)",
            "invocations/s",
            "end to end",
            "calls/s end to end",
            "most POSTs in flight",
        ],
        rows,
    )
    note = (
        f"`ibm_cf` compute on the OpenWhisk-API test server (a test server, not OpenWhisk: {CONTAINERS} action "
        "containers, i.e. local processes running the real function-side handler), `ibm_cos` storage on moto, "
        "both on 127.0.0.1 in their own processes; `max_concurrency` 64, `invoke_retries` 8 (product defaults). "
        f"Warm-up job of {2 * CONTAINERS} calls first (deploys the action, starts the containers): {seconds(warm_s)}. "
        f"Injected 429s: the server answers the first {FAULT_SHARE:.0%} of invocation attempts with HTTP 429; "
        "the client retries each with exponential backoff and jitter (0.25 s base). End to end is bound by the "
        "2 cores running the containers and moto, not by the invocations."
    )
    return {"title": TITLE, "table": table, "note": note, "data": data, "plots": plots}
