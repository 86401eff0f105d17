"""Timeline plots of finished calls: when each call was submitted, started and ended.

Needs matplotlib (the ``plots`` extra). Two PNGs per set of futures: a timeline (one
row per call) and the number of calls running over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from airflow_pywren.executor.future import ResponseFuture


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("timeline plots need matplotlib: pip install 'airflow-pywren[plots]'") from exc
    return plt


def call_timeline(futures: Sequence[ResponseFuture]) -> list[tuple[float, float, float]]:
    """``(submit, start, end)`` of each finished call, in seconds from the first submit."""
    times = [
        (f.host_submit_time or f.start_time, f.start_time, f.end_time)
        for f in futures
        if f.finished and f.start_time and f.end_time
    ]
    if not times:
        return []
    origin = min(submit for submit, _, _ in times)
    return [(submit - origin, start - origin, end - origin) for submit, start, end in times]


def create_timeline_plots(
    futures: Sequence[ResponseFuture], dst_dir: str | Path, dst_file_prefix: str = "timeline", title: str | None = None
) -> list[Path]:
    """Write ``{prefix}_timeline.png`` and ``{prefix}_concurrency.png`` to ``dst_dir``; return their paths."""
    timeline = call_timeline(futures)
    if not timeline:
        raise ValueError("no finished call with timings to plot: wait for the futures first")
    plt = _matplotlib()
    dst = Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    label = title or f"{len(timeline)} calls"

    figure, axis = plt.subplots(figsize=(8, 4.5))
    rows = range(len(timeline))
    axis.hlines(
        rows,
        [start for _, start, _ in timeline],
        [end for _, _, end in timeline],
        color="tab:blue",
        lw=1,
        label="running",
    )
    axis.scatter([submit for submit, _, _ in timeline], rows, s=2, color="tab:gray", label="submitted")
    axis.scatter([end for _, _, end in timeline], rows, s=2, color="tab:green", label="ended")
    axis.set(xlabel="seconds since submit", ylabel="call", title=f"Timeline: {label}")
    axis.legend(loc="lower right", markerscale=4)
    timeline_path = dst / f"{dst_file_prefix}_timeline.png"
    figure.tight_layout()
    figure.savefig(timeline_path, dpi=110)
    plt.close(figure)

    events = sorted([(start, 1) for _, start, _ in timeline] + [(end, -1) for _, _, end in timeline])
    times, running, count = [0.0], [0], 0
    for moment, delta in events:
        count += delta
        times.append(moment)
        running.append(count)
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.step(times, running, where="post", color="tab:blue")
    axis.set(xlabel="seconds since submit", ylabel="calls running", title=f"Concurrency: {label}")
    concurrency_path = dst / f"{dst_file_prefix}_concurrency.png"
    figure.tight_layout()
    figure.savefig(concurrency_path, dpi=110)
    plt.close(figure)
    return [timeline_path, concurrency_path]
