"""Section 4: storage requests per job on the S3 endpoint (moto) as N grows.

Client side: the executor's ``storage.request_counts`` (logical requests; ``RETRY`` counts the
SDK's extra attempts). Server side: moto's request recorder over the same window, all
clients; the function side is the server total minus the client's requests.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import airflow_pywren as pywren
from bench.common import Context, bench_home, markdown_table, noop, seconds, stop_runners

NAME = "requests"
TITLE = "Storage requests per job on S3 (moto), localhost compute"
SIZES = (10, 100, 1_000)
KINDS = ("PUT", "GET", "LIST", "DELETE", "RETRY")


def _diff(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {kind: after.get(kind, 0) - before.get(kind, 0) for kind in KINDS}


def _fmt(counts: dict[str, int], kinds: tuple[str, ...] = ("PUT", "GET", "LIST")) -> str:
    return " / ".join(str(counts.get(kind, 0)) for kind in kinds)


def run(ctx: Context) -> dict[str, Any]:
    from tests.services.s3 import cos_section

    s3 = ctx.services.s3()
    home = bench_home()
    config = {
        "pywren": {"storage_backend": "ibm_cos"},  # the default monitor_interval (0.05 s)
        "localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner"), "workers": 2},
        "ibm_cos": cos_section(s3.info["endpoint"], s3.command("bucket")["bucket"]),
    }
    sizes = (10, 100) if ctx.quick else SIZES
    executor = pywren.FunctionExecutor(config=config)
    rows, data = [], []
    try:
        executor.get_result(executor.map(noop, range(4)))  # starts the runner; not counted
        executor.clean()
        for n in sizes:
            counts = executor.storage.request_counts
            s3.command("record_start")
            start = Counter(counts)
            began = time.perf_counter()
            futures = executor.map(noop, range(n))
            submit_s = time.perf_counter() - began
            submitted = Counter(counts)
            began = time.perf_counter()
            executor.get_result(futures)
            wait_s = time.perf_counter() - began
            waited = Counter(counts)
            server = Counter(s3.command("record_stop")["counts"])
            executor.clean()
            submit, wait = _diff(submitted, start), _diff(waited, submitted)
            client_total = {kind: submit[kind] + wait[kind] for kind in KINDS}
            function = {kind: server.get(kind, 0) - client_total[kind] for kind in ("PUT", "GET", "LIST")}
            rows.append(
                [
                    f"{n:,}",
                    _fmt(submit),
                    _fmt(wait),
                    wait["LIST"],
                    submit["RETRY"] + wait["RETRY"],
                    _fmt(function),
                    f"{(function['PUT'] + function['GET']) / n:.2f}",
                    seconds(submit_s),
                    seconds(wait_s),
                ]
            )
            data.append(
                {
                    "n": n,
                    "submit": submit,
                    "wait": wait,
                    "server": dict(server),
                    "function": function,
                    "submit_s": submit_s,
                    "wait_s": wait_s,
                }
            )
    finally:
        executor.close()
        stop_runners(home / "runner")
    table = markdown_table(
        [
            "N",
            "submit PUT / GET / LIST",
            "wait PUT / GET / LIST",
            "polls (= LISTs)",
            "RETRY",
            "function side PUT / GET / LIST",
            "function requests per call",
            "submit time",
            "wait time",
        ],
        rows,
    )
    note = (
        "Client counts from `executor.storage.request_counts` (`map` = submit; `get_result` = wait: the storage "
        "monitor's polls, one LIST of the job's status prefix each, a GET of each new final status, then a GET "
        "of each output). Function side = requests moto recorded in the same window minus the client's. "
        "Expected: 4 PUTs per submit whatever N (function, data, manifest, then the activation ids); one LIST "
        "per poll. On the function side each call makes "
        "3 PUTs (start, final status, output) and one ranged GET of its data; each worker process reads the "
        "function once (2 workers: +2 GETs). "
        "RETRY would show retried requests; moto answers every request, so retries only appear under faults. "
        "The recorder appends each request to a file, which slows moto a little: the times are indicative only."
    )
    return {"title": TITLE, "table": table, "note": note, "data": data, "plots": []}
