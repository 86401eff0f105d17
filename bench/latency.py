"""Section 3: completion latency, RabbitMQ monitor vs storage monitor.

Latency = the moment ``get_result`` returns minus the call's ``end_time`` (when the function
side finished the call: output and final status written). Both clocks are this machine's.
"""

from __future__ import annotations

import random
import time
from typing import Any

import airflow_pywren as pywren
from bench.common import Context, bench_home, markdown_table, percentile, pyplot, stop_runners

NAME = "latency"
TITLE = "Completion latency: RabbitMQ monitor vs storage monitor"
JOBS = 20
WARMUP = 2


def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _config(home: Any, storage: str, ctx: Context) -> dict[str, Any]:
    config: dict[str, Any] = {
        "pywren": {},  # the default monitor_interval (0.05 s)
        "localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner"), "workers": 2},
    }
    if storage == "ibm_cos":
        from tests.services.s3 import cos_section

        s3 = ctx.services.s3()
        config["pywren"]["storage_backend"] = "ibm_cos"
        config["ibm_cos"] = cos_section(s3.info["endpoint"], s3.command("bucket")["bucket"])
    return config


def _latencies(config: dict[str, Any], rabbitmq_url: str | None, jobs: int) -> list[float]:
    if rabbitmq_url:
        config = {**config, "rabbitmq": {"amqp_url": rabbitmq_url}}
    executor = pywren.FunctionExecutor(config=config, rabbitmq_monitor=bool(rabbitmq_url))
    rng = random.Random(7)
    values = []
    try:
        for index in range(WARMUP + jobs):
            future = executor.call_async(sleeper, 0.2 + rng.uniform(0, 0.1))  # random phase against the polls
            executor.get_result(future)
            returned = time.time()
            if index >= WARMUP:
                values.append(returned - future.end_time)
        executor.clean()
    finally:
        executor.close()
    return values


def run(ctx: Context) -> dict[str, Any]:
    broker = ctx.services.rabbitmq()
    home = bench_home()
    jobs = 8 if ctx.quick else JOBS
    series: dict[str, list[float]] = {}
    try:
        for storage in ("localhost", "ibm_cos"):
            config = _config(home, storage, ctx)
            series[f"storage monitor, {storage} storage"] = _latencies(config, None, jobs)
            series[f"RabbitMQ monitor, {storage} storage"] = _latencies(config, broker.amqp_url, jobs)
    finally:
        stop_runners(home / "runner")
    rows, data = [], []
    for label, values in series.items():
        stats = {"median": percentile(values, 0.5), "p95": percentile(values, 0.95), "max": max(values)}
        rows.append([label, len(values), *(f"{stats[k] * 1000:.1f} ms" for k in ("median", "p95", "max"))])
        data.append({"series": label, "values": values, **stats})
    table = markdown_table(["monitor, storage", "jobs", "median", "p95", "max"], rows)
    note = (
        f"{jobs} jobs per row (after {WARMUP} warm-up jobs), each one call_async sleeping 0.2-0.3 s on localhost "
        "compute (2 workers); `get_result` after each submit. Default `monitor_interval` (0.05 s): the storage "
        "monitor LISTs the job's status prefix every 0.05 s, the RabbitMQ monitor wakes on the call's end notice. "
        "S3 storage is the moto server on 127.0.0.1; the broker is a private RabbitMQ node on 127.0.0.1. "
        "The latency includes reading the result object (one GET)."
    )
    return {"title": TITLE, "table": table, "note": note, "data": data, "plots": [_plot(ctx, data)]}


def _plot(ctx: Context, data: list[dict[str, Any]]) -> str:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for entry in data:
        values = sorted(v * 1000 for v in entry["values"])
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        axis.step(values, fractions, where="post", label=entry["series"])
    axis.set(
        xlabel="last call end → get_result returned (ms)",
        ylabel="fraction of jobs",
        title="Completion latency (ECDF)",
        xscale="log",
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    name = "latency_ecdf.png"
    figure.savefig(ctx.results_dir / name, dpi=110)
    plt.close(figure)
    return name
