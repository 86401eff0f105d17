"""Section 1: the localhost executor with its default configuration against ``ProcessPoolExecutor(2)``.

A no-op map at N = 1,000 → 100,000 and a ``map_reduce`` over 1,000, submit to all results,
interleaved with the process pool in one run (median of 5 runs, 2 at 100,000, with the
spread). Per N it also records what a user pays besides time: the client's peak RSS and
submission time (a fresh process per N), the files and bytes a no-op call leaves in
localhost storage, and the size of the job reference an operator pushes to XCom.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import airflow_pywren as pywren
from bench.common import Context, bench_home, filesystem_of, markdown_table, noop, pyplot, seconds, stop_runners

NAME = "executor"
TITLE = "Executor on localhost (default configuration): no-op map and map_reduce against ProcessPoolExecutor(2)"
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
TARGET_RATIO, TARGET_REDUCE_RATIO = 1.5, 2.0
REDUCE_N = 1_000
MAX_RSS_MIB, MAX_SUBMIT_S = 150.0, 1.0
PROFILE_N, SPREAD_N, SPREAD_RUNS = 10_000, 1_000, 30
BASELINE = "8789163"
"""The first release, whose per-call cost and run-to-run swings these measurements are compared against."""


def total(values: list[int]) -> int:
    return sum(values)


def _process_pool(n: int) -> None:
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        assert list(pool.map(noop, range(n)))[-1] == n


def _process_pool_reduce(n: int) -> None:
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        assert total(list(pool.map(noop, range(n)))) == n * (n + 1) // 2


def default_config(home: Path) -> dict[str, Any]:
    """The embedded default configuration, in private directories (workers and poll interval untouched)."""
    return {"localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner")}}


def _timed(func: Any) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _summary(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _spread(summary: dict[str, Any]) -> str:
    return f"{seconds(summary['median'])} ({seconds(summary['min'])}–{seconds(summary['max'])})"


def storage_cost(executor: pywren.FunctionExecutor, calls: int) -> dict[str, float]:
    """Files, bytes (apparent and allocated on disk) under the executor's storage, per call."""
    root = executor.storage.local_path(f"{executor.storage.prefix}/{executor.executor_id}")
    files = size = allocated = 0
    for directory, _, names in os.walk(root):
        for name in names:
            info = os.stat(os.path.join(directory, name))
            files, size, allocated = files + 1, size + info.st_size, allocated + info.st_blocks * 512
    return {"files_per_call": files / calls, "bytes_per_call": size / calls, "disk_bytes_per_call": allocated / calls}


def xcom_size(executor: pywren.FunctionExecutor, futures: list[Any]) -> int:
    """Bytes of the JSON job reference an operator pushes to XCom for this map."""
    from airflow_pywren.executor import jobs

    reference: Any = jobs.job_reference(executor, "map", futures)
    if hasattr(reference, "to_xcom"):
        reference = reference.to_xcom()
    return len(reference if isinstance(reference, (str, bytes)) else json.dumps(reference))


def client_footprint(home: Path, n: int) -> dict[str, float]:
    """Peak RSS and submission time of a fresh client process mapping a no-op over ``n`` items."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.executor_client", json.dumps(default_config(home)), str(n)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(ctx: Context | None = None, sizes: tuple[int, ...] | None = None, repeats: int = 5) -> dict[str, Any]:
    ctx = ctx or Context()
    sizes = sizes or (QUICK_SIZES if ctx.quick else SIZES)
    home = bench_home()
    config = default_config(home)
    executor = pywren.FunctionExecutor(config=config)
    data: list[dict[str, Any]] = []

    def pywren_map(n: int, futures_out: list[Any]) -> None:
        futures = executor.map(noop, range(n))
        assert executor.get_result(futures)[-1] == n
        futures_out[:] = futures

    try:
        cold = _timed(lambda: executor.get_result(executor.map(noop, range(10))))  # includes the runner's start-up
        executor.clean()
        for n in sizes:
            reps = repeats if n <= 10_000 else 2
            pywren_times, pool_times, cost, reference = [], [], {}, 0
            for rep in range(reps):  # interleaved, so both see the same machine
                futures: list[Any] = []
                pywren_times.append(_timed(lambda n=n, futures=futures: pywren_map(n, futures)))
                pool_times.append(_timed(lambda n=n: _process_pool(n)))
                if rep == 0:
                    cost, reference = storage_cost(executor, n), xcom_size(executor, futures)
                del futures
                executor.clean()
            row = {
                "n": n,
                "pywren": _summary(pywren_times),
                "pool": _summary(pool_times),
                **cost,
                "xcom_bytes": reference,
            }
            row["ratio"] = row["pywren"]["median"] / row["pool"]["median"]
            row.update(client_footprint(home, n))
            data.append(row)
        reduce_times, reduce_pool = [], []
        for _ in range(repeats):
            reduce_times.append(_timed(lambda: executor.get_result(executor.map_reduce(noop, range(REDUCE_N), total))))
            reduce_pool.append(_timed(lambda: _process_pool_reduce(REDUCE_N)))
            executor.clean()
        reduce = {"pywren": _summary(reduce_times), "pool": _summary(reduce_pool)}
        reduce["ratio"] = reduce["pywren"]["median"] / reduce["pool"]["median"]
        futures = executor.map(noop, range(1_000))
        executor.get_result(futures)
        timeline = [p.name for p in executor.plot(futures, str(ctx.results_dir), "executor_localhost_n1000")]
        executor.clean()
    finally:
        executor.close()
        stop_runners(home / "runner")
    rows = [
        [
            f"{d['n']:,}",
            _spread(d["pywren"]),
            f"{d['pywren']['median'] / d['n'] * 1e6:.0f} µs",
            _spread(d["pool"]),
            f"{d['ratio']:.2f}x",
            f"{d['files_per_call']:.3f}",
            f"{d['bytes_per_call']:.0f} B / {d['disk_bytes_per_call']:.0f} B",
            f"{d['peak_rss_mib']:.0f} MiB",
            seconds(d["submit_s"]),
            f"{d['xcom_bytes']:,} B",
        ]
        for d in data
    ]
    rows.append(
        [
            f"map_reduce {REDUCE_N:,}",
            _spread(reduce["pywren"]),
            "—",
            _spread(reduce["pool"]),
            f"{reduce['ratio']:.2f}x",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    table = markdown_table(
        [
            "N",
            "PyWren: median (min–max)",
            "per call",
            "ProcessPoolExecutor(2) incl. start-up",
            "ratio",
            "files per call",
            "bytes per call (apparent / on disk)",
            "client peak RSS",
            "submit",
            "XCom reference",
        ],
        rows,
    )
    verdicts = [f"N={d['n']:,} {d['ratio']:.2f}x ({'met' if d['ratio'] <= TARGET_RATIO else 'MISSED'})" for d in data]
    verdicts.append(
        f"map_reduce {reduce['ratio']:.2f}x (≤ {TARGET_REDUCE_RATIO:g}x "
        f"{'met' if reduce['ratio'] <= TARGET_REDUCE_RATIO else 'MISSED'})"
    )
    largest = data[-1]
    load = os.getloadavg()
    note = (
        f"Default configuration: {pywren.FunctionExecutor(config=config).config['localhost']['workers']} workers, "
        f"monitor_interval {pywren.FunctionExecutor(config=config).config['pywren']['monitor_interval']} s; private "
        f"storage and runner directories ({filesystem_of(home)}). Median of {repeats} runs (2 at 100,000), each PyWren "
        "run followed by a process-pool run; in brackets the fastest and slowest. "
        f"First job of the run, N=10, including the runner's start-up: {seconds(cold)}. "
        f"Targets ≤ {TARGET_RATIO:g}x: " + "; ".join(verdicts) + ". "
        f"Client peak RSS and submit time from a fresh process per N (target at {largest['n']:,}: ≤ {MAX_RSS_MIB:g} MiB and "
        f"≤ {MAX_SUBMIT_S:g} s). Files and bytes per call: everything the job left in storage (job objects included), "
        f"divided by N. Load average at the end: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (2 cores)."
    )
    where, where_data = ("", {}) if ctx.quick else where_time_goes()
    plots = [_cost_plot(ctx, data), _footprint_plot(ctx, data), *timeline]
    return {
        "title": TITLE,
        "table": table,
        "note": note + where,
        "data": {"sizes": data, "map_reduce": reduce, "cold_s": cold, **where_data},
        "plots": plots,
    }


def where_time_goes() -> tuple[str, dict[str, Any]]:
    """py-spy profiles at N=10,000 and the run-to-run spread at N=1,000, this version against ``BASELINE``."""
    import tempfile

    from bench import executor_profile

    trees = {"this version": executor_profile.REPO}
    baseline_dir = Path(tempfile.mkdtemp(prefix="pywren-bench-baseline-"))
    missing = ""
    try:
        trees[f"first release ({BASELINE})"] = executor_profile.baseline_tree(BASELINE, baseline_dir)
    except (OSError, subprocess.SubprocessError) as exc:  # a copy without the repository's history
        missing = f"The baseline {BASELINE} could not be checked out ({exc}); only this version is shown. "
    profiles, spreads = {}, {}
    try:
        for name, tree in trees.items():
            profiles[name] = executor_profile.profile_tree(tree, PROFILE_N)
            spreads[name] = executor_profile.job_phases(tree, SPREAD_N, SPREAD_RUNS)
    finally:
        for tree in list(trees.values())[1:]:
            executor_profile.drop_tree(tree)
        shutil.rmtree(baseline_dir, ignore_errors=True)
    profile_rows = [
        [name, f"{profile.get('elapsed_s', float('nan')):.2f} s", *row]
        for name, profile in profiles.items()
        for row in executor_profile.summary(profile)
    ]
    spread_rows = []
    for name, runs in spreads.items():
        elapsed = [r["elapsed_s"] for r in runs]
        slowest = max(runs, key=lambda r: r["elapsed_s"])
        running = [r["last_end_s"] - r["first_start_s"] for r in runs]
        seen = [r["elapsed_s"] - r["last_end_s"] for r in runs]
        spread_rows.append(
            [
                name,
                f"{seconds(statistics.median(elapsed))} ({seconds(min(elapsed))}–{seconds(max(elapsed))})",
                f"{max(elapsed) / min(elapsed):.1f}x",
                f"{seconds(min(running))}–{seconds(max(running))}",
                f"{seconds(min(seen))}–{seconds(max(seen))}",
                f"{seconds(slowest['submit_s'])} / {seconds(slowest['last_end_s'] - slowest['first_start_s'])} / "
                f"{seconds(slowest['elapsed_s'] - slowest['last_end_s'])}",
            ]
        )
    text = (
        f"\n\n**Where the time goes.** {missing}CPU profile (py-spy, {executor_profile.RATE} Hz) of one no-op map "
        f"over {PROFILE_N:,} items in a fresh client, with a second py-spy following the localhost runner and its "
        "workers; each sample is charged to the innermost airflow_pywren function on its stack (the library calls it "
        "made included); 'start-up and imports' has no package frame.\n\n"
        + markdown_table(
            ["version", "map (under py-spy)", "process", "CPU", "top functions (share of the process)"], profile_rows
        )
        + f"\n\n**Run-to-run spread.** {SPREAD_RUNS} no-op maps over {SPREAD_N:,} items one after another in one "
        "client, per version: the whole map, the calls' own run (first start to last end, from their stored "
        "times), and how long after the last call ended the client had every result.\n\n"
        + markdown_table(
            [
                "version",
                "map: median (min–max)",
                "slowest / fastest",
                "calls running",
                "results seen after the last end",
                "slowest run: submit / calls running / seen after",
            ],
            spread_rows,
        )
        + "\n\n"
        + _spread_findings(profiles, spreads)
    )
    return text, {"profiles": profiles, "spread": spreads}


def _spread_findings(profiles: dict[str, dict[str, Any]], spreads: dict[str, list[dict[str, float]]]) -> str:
    """Where the run-to-run differences lie, per version, and what the profile says competes for the cores."""
    lines = []
    now_where = "unknown"
    for name, runs in spreads.items():
        fastest, slowest = min(runs, key=lambda r: r["elapsed_s"]), max(runs, key=lambda r: r["elapsed_s"])

        def phases(run: dict[str, float]) -> tuple[float, float, float]:
            return run["submit_s"], run["last_end_s"] - run["first_start_s"], run["elapsed_s"] - run["last_end_s"]

        gap = slowest["elapsed_s"] - fastest["elapsed_s"]
        deltas = [b - a for a, b in zip(phases(fastest), phases(slowest))]
        where = max(range(3), key=lambda i: deltas[i])
        labels = ("submitting", "the calls' own run", "seeing the results after the last call ended")
        processes = profiles.get(name, {}).get("processes", {})
        client = sum(processes.get("client", {}).values())
        pool = sum(processes.get("runner", {}).values()) + sum(processes.get("workers", {}).values())
        share = f"; in its profile the client used {client / (client + pool):.0%} of the CPU" if client + pool else ""
        if name == "this version":
            now_where = (
                "in submitting",
                "in the calls' own run (the workers)",
                "how long after the last call the next poll comes (`pywren.monitor_interval`)",
            )[where]
        lines.append(
            f"{name}: the slowest run took {seconds(gap)} longer than the fastest, {seconds(deltas[where])} of it "
            f"in {labels[where]}{share}"
        )
    return (
        "**Why runs swing.** "
        + "; ".join(lines)
        + ". On 2 cores the client shares the CPU with the runner's 2 workers: whatever the client does per poll "
        "(in the first release it listed and read every call's status files and rescanned every pending call, "
        "O(N) per poll, and each call wrote three files) is taken from the calls' run, so a run's length depended on "
        "how its polls fell; this version's client does O(new records) work per poll, and the largest part of its "
        f"remaining swing is {now_where}."
    )


def _cost_plot(ctx: Context, data: list[dict[str, Any]]) -> str:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    ns = [d["n"] for d in data]
    for key, label in (
        ("pywren", "PyWren map (localhost, default config)"),
        ("pool", "ProcessPoolExecutor(2) incl. start-up"),
    ):
        medians = [d[key]["median"] / d["n"] * 1e6 for d in data]
        low = [m - d[key]["min"] / d["n"] * 1e6 for m, d in zip(medians, data)]
        high = [d[key]["max"] / d["n"] * 1e6 - m for m, d in zip(medians, data)]
        axis.errorbar(ns, medians, yerr=[low, high], marker="o", capsize=3, label=label)
    axis.set(
        xscale="log",
        xlabel="N (calls)",
        ylabel="µs per call (median, min–max)",
        title="Per-call cost of a no-op map",
        ylim=(0, None),
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    name = "executor_localhost_per_call.png"
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    figure.savefig(ctx.results_dir / name, dpi=110)
    plt.close(figure)
    return name


def _footprint_plot(ctx: Context, data: list[dict[str, Any]]) -> str:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    ns = [d["n"] for d in data]
    axes[0].plot(ns, [d["peak_rss_mib"] for d in data], marker="o")
    axes[0].axhline(MAX_RSS_MIB, color="tab:red", ls="--", lw=1, label=f"{MAX_RSS_MIB:g} MiB")
    axes[0].set(xscale="log", xlabel="N (calls)", ylabel="MiB", title="Client peak RSS (fresh process)")
    axes[0].legend(fontsize=8)
    axes[1].plot(ns, [d["files_per_call"] for d in data], marker="o", label="files per call")
    axes[1].plot(ns, [d["disk_bytes_per_call"] / 1024 for d in data], marker="s", label="KiB on disk per call")
    axes[1].axhline(1.0, color="tab:red", ls="--", lw=1, label="target 1")
    axes[1].set(xscale="log", xlabel="N (calls)", title="Localhost storage per no-op call", ylim=(0, None))
    axes[1].legend(fontsize=8)
    axes[2].plot(ns, [d["xcom_bytes"] for d in data], marker="o")
    axes[2].set(xscale="log", yscale="log", xlabel="N (calls)", ylabel="bytes", title="Job reference pushed to XCom")
    figure.tight_layout()
    name = "executor_localhost_footprint.png"
    figure.savefig(ctx.results_dir / name, dpi=110)
    plt.close(figure)
    return name


if __name__ == "__main__":
    from bench.common import cleanup_homes

    try:
        report = run()
    finally:
        cleanup_homes()
    print(report["table"])
    print(report["note"])
