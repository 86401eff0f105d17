"""Section 1: a no-op map on the localhost backends against ``ProcessPoolExecutor(2)``."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import airflow_pywren as pywren
from bench.common import (
    Context,
    bench_home,
    filesystem_of,
    localhost_config,
    markdown_table,
    median_of,
    noop,
    pyplot,
    seconds,
    stop_runners,
)

NAME = "executor"
TITLE = "Executor on localhost: no-op map, submit to all results"
SIZES = (10, 100, 1_000, 10_000)
TARGET_N, TARGET_RATIO = 1_000, 3.0
TIMELINE_N = 1_000


def _process_pool(n: int) -> None:
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(noop, range(n)))


def run(ctx: Context | None = None, sizes: tuple[int, ...] = SIZES, repeats: int = 5) -> dict[str, Any]:
    ctx = ctx or Context()
    home = bench_home()
    config = localhost_config(home)
    executor = pywren.FunctionExecutor(config=config)

    def pywren_map(n: int) -> None:
        results = executor.get_result(executor.map(noop, range(n)))
        assert results[-1] == n

    try:
        cold = median_of(lambda: pywren_map(10), 1)  # includes starting the runner and its pool
        rows, data = [], []
        for n in sizes:
            reps = repeats if n <= 1_000 else 2
            pywren_time = median_of(lambda n=n: pywren_map(n), reps)
            pool_time = median_of(lambda n=n: _process_pool(n), reps)
            ratio = pywren_time / pool_time
            rows.append([f"{n:,}", seconds(pywren_time), f"{pywren_time / n * 1e6:.0f} µs", seconds(pool_time),
                         f"{ratio:.1f}x"])
            data.append({"n": n, "pywren_s": pywren_time, "pool_s": pool_time, "ratio": ratio})
            executor.clean()
        # one representative job for the timeline plots (the executor's public plot API)
        futures = executor.map(noop, range(TIMELINE_N))
        executor.get_result(futures)
        timeline = [p.name for p in executor.plot(futures, str(ctx.results_dir), f"executor_localhost_n{TIMELINE_N}")]
        executor.clean()
    finally:
        executor.close()
        stop_runners(home / "runner")
    table = markdown_table(
        ["N", "PyWren localhost (warm runner)", "per call", "ProcessPoolExecutor(2) incl. start-up", "ratio"], rows
    )
    at_target = next((d for d in data if d["n"] == TARGET_N), None)
    verdict = ""
    if at_target is not None:
        met = "met" if at_target["ratio"] <= TARGET_RATIO else "MISSED"
        verdict = f" Target ≤ {TARGET_RATIO:g}x at N={TARGET_N:,}: {met} ({at_target['ratio']:.1f}x)."
    note = (
        f"Median of {repeats} runs (2 at N=10,000); 2 workers, monitor_interval 0.01 s. "
        f"First job of the run, N=10, including the runner's start-up: {seconds(cold)}.{verdict} "
        f"Storage dir: {filesystem_of(home)} — every call writes three small files (start, status, output) "
        "with a temp file and a rename, so a disk slow at creating files slows the large maps."
    )
    plots = [_ratio_plot(ctx, data), *timeline]
    return {"title": TITLE, "table": table, "note": note, "data": data, "plots": plots}


def _ratio_plot(ctx: Context, data: list[dict[str, Any]]) -> str:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    ns = [d["n"] for d in data]
    axis.plot(ns, [d["ratio"] for d in data], marker="o", label="PyWren / ProcessPoolExecutor(2)")
    axis.axhline(TARGET_RATIO, color="tab:red", ls="--", lw=1, label=f"target {TARGET_RATIO:g}x")
    axis.set(xscale="log", xlabel="N (calls)", ylabel="time ratio", title="Localhost executor vs process pool",
             ylim=(0, max(TARGET_RATIO * 1.5, max(d["ratio"] for d in data) * 1.2)))
    axis.legend()
    figure.tight_layout()
    name = "executor_localhost_ratio.png"
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
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
