"""ETL over a day of web-server logs: generate, aggregate with a partitioned map_reduce, report.

1. ``generate_logs``: PyWren calls write one day of access logs (Apache combined format,
   deterministic for the day) into ``{bucket}/logs/{ds}/`` of the job's storage —
   ``params.size_mb`` MB in ``params.parts`` objects (128 MB by default).
2. ``aggregate``: a ``map_reduce`` over ``cos://{bucket}/logs/{ds}/``, split into
   ``params.chunk_mb`` MB chunks aligned to lines; each call streams its chunk and counts
   requests, bytes, statuses, hours, paths and clients; the reducer merges them and writes
   the result object ``{bucket}/reports/{ds}/summary.json`` through the ``storage`` handle.
3. ``report``: prints a short report of the day.

The same DAG runs on the embedded default (buckets are directories of the localhost
storage) and against IBM COS (buckets of the configured endpoint).
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenMapOperator, PyWrenMapReduceOperator

PATHS = [
    "/",
    "/index.html",
    "/search",
    "/cart",
    "/checkout",
    "/login",
    "/api/v1/items",
    "/api/v1/orders",
    *(f"/products/{n}" for n in range(200)),
    *(f"/static/img/{n}.png" for n in range(50)),
]
METHODS = ["GET"] * 17 + ["POST"] * 2 + ["HEAD"]
STATUSES = [200] * 88 + [304] * 5 + [404] * 4 + [500] * 2 + [503]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "Mozilla/5.0 (Macintosh) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0",
    "curl/8.5.0",
    "Googlebot/2.1",
]


def generate_part(part: int, day: str, bucket: str, size_mb: float, parts: int, storage) -> dict:
    """Write one object of the day's log: at most size_mb/parts MB, the same bytes for the same day and part."""
    rng = random.Random(f"{day}-{part}")
    date = pendulum.parse(day)
    stamp = date.format("DD/MMM/YYYY")
    target = int(size_mb * 1024 * 1024 / parts)
    lines, size = [], 0
    while True:
        second = rng.randrange(86_400)
        ip = f"10.{rng.randrange(4)}.{rng.randrange(40)}.{rng.randrange(1, 255)}"
        line = (
            f"{ip} - - [{stamp}:{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} +0000] "
            f'"{rng.choice(METHODS)} {rng.choice(PATHS)} HTTP/1.1" {rng.choice(STATUSES)} {rng.randrange(200, 50_000)} '
            f'"-" "{rng.choice(AGENTS)}"\n'
        )
        if size + len(line) > target:
            break  # objects just under size_mb/parts: chunk_mb that divides it gives whole chunks, no sliver
        lines.append(line)
        size += len(line)
    key = f"logs/{day}/access-{part:03d}.log"
    storage.put_object(bucket, key, "".join(lines).encode())
    return {"key": key, "bytes": size, "lines": len(lines)}


def aggregate_chunk(obj) -> dict:
    """Map: the aggregates of one chunk of log lines."""
    requests = transferred = 0
    statuses: Counter = Counter()
    hours: Counter = Counter()
    paths: Counter = Counter()
    clients: Counter = Counter()
    for raw in obj.data_stream:
        fields = raw.split(b" ", 11)
        requests += 1
        clients[fields[0]] += 1
        hours[int(fields[3][13:15])] += 1
        paths[fields[6]] += 1
        statuses[int(fields[8])] += 1
        transferred += int(fields[9])
    return {
        "bucket": obj.bucket,
        "day": obj.key.split("/")[1],
        "requests": requests,
        "bytes": transferred,
        "statuses": dict(statuses),
        "hours": dict(hours),
        "paths": {k.decode(): v for k, v in paths.items()},
        "clients": {k.decode(): v for k, v in clients.items()},
    }


def merge_day(results: list, storage) -> dict:
    """Reduce: merge the chunks' aggregates, store the summary next to the logs, return it."""
    total = {"requests": 0, "bytes": 0}
    statuses: Counter = Counter()
    hours: Counter = Counter()
    paths: Counter = Counter()
    clients: Counter = Counter()
    for part in results:
        total["requests"] += part["requests"]
        total["bytes"] += part["bytes"]
        statuses.update(part["statuses"])
        hours.update(part["hours"])
        paths.update(part["paths"])
        clients.update(part["clients"])
    errors = sum(n for status, n in statuses.items() if int(status) >= 500)
    summary = {
        **total,
        "chunks": len(results),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "error_rate": errors / total["requests"] if total["requests"] else 0.0,
        "busiest_hour": max(hours, key=hours.get) if hours else None,
        "top_paths": paths.most_common(5),
        "distinct_clients": len(clients),
    }
    if results:
        bucket, day = results[0]["bucket"], results[0]["day"]
        summary["stored_at"] = f"{bucket}/reports/{day}/summary.json"
        storage.put_object(bucket, f"reports/{day}/summary.json", json.dumps(summary, indent=2))
    return summary


@dag(
    dag_id="pywren_web_logs",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["pywren", "example", "etl"],
    params={"bucket": "weblogs", "size_mb": 128, "parts": 4, "chunk_mb": 8},
    doc_md=__doc__,
)
def pywren_web_logs():
    @task
    def plan_day(params: dict | None = None, ds: str | None = None) -> list[dict]:
        """One generator call per object of the day."""
        return [
            {
                "part": part,
                "day": ds,
                "bucket": params["bucket"],
                "size_mb": params["size_mb"],
                "parts": params["parts"],
            }
            for part in range(params["parts"])
        ]

    generated = PyWrenMapOperator(task_id="generate_logs", map_function=generate_part, iterdata=plan_day())

    aggregated = PyWrenMapReduceOperator(
        task_id="aggregate",
        map_function=aggregate_chunk,
        iterdata="cos://{{ params.bucket }}/logs/{{ ds }}/",
        chunk_size="{{ (params.chunk_mb * 1024 * 1024) | int }}",
        reduce_function=merge_day,
        outputs=["cos://{{ params.bucket }}/reports/{{ ds }}/"],
    )

    @task
    def report(ref: dict, ds: str | None = None) -> dict:
        """Print a short report of the day."""
        [summary] = PyWrenHook().get_results(ref)
        inputs = ref.get("inputs") or {}
        lines = [
            f"web logs of {ds}: {inputs.get('objects')} objects, {inputs.get('bytes', 0) / 1024**2:.1f} MB "
            f"in {inputs.get('chunks')} chunks",
            f"requests: {summary['requests']:,}, bytes served: {summary['bytes'] / 1024**3:.2f} GiB, "
            f"distinct clients: {summary['distinct_clients']:,}",
            f"5xx error rate: {summary['error_rate']:.2%}, busiest hour: {summary['busiest_hour']:02d}:00 UTC",
            "top paths: " + ", ".join(f"{path} ({count:,})" for path, count in summary["top_paths"]),
            f"summary stored at {summary['stored_at']}",
        ]
        print("\n".join(lines))
        return summary

    generated >> aggregated
    report(aggregated.output)


pywren_web_logs()
