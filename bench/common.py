"""Helpers shared by the benchmark sections: isolated config, timing, Markdown tables."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_pywren.executor.compute.localhost import stop_runners  # noqa: F401 (re-exported for the sections)

RESULTS_DIR = Path(__file__).parent / "results"
_HOMES: list[Path] = []


def noop(x: int) -> int:
    return x + 1


def bench_home() -> Path:
    """A private PyWren home (storage and runner dirs) for one bench run; removed by ``cleanup_homes``."""
    home = Path(tempfile.mkdtemp(prefix="pywren-bench-"))
    _HOMES.append(home)
    return home


def localhost_config(home: Path, workers: int = 2) -> dict[str, Any]:
    return {
        "pywren": {"monitor_interval": 0.01},
        "localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner"), "workers": workers},
    }


def cleanup_homes() -> None:
    """Stop the runners of every bench home and delete the homes."""
    while _HOMES:
        home = _HOMES.pop()
        stop_runners(home / "runner")
        shutil.rmtree(home, ignore_errors=True)


def bench_paths() -> list[str]:
    """The temporary directories of this bench run (to find processes started in them)."""
    return [str(home) for home in _HOMES]


def filesystem_of(path: Path) -> str:
    """``ext4 on /dev/vda (mounted at /)``: the filesystem holding ``path``, from /proc/mounts."""
    target = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, mount_point, fstype = line.split()[:3]
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best[0]):
                    best = (mount_point, device, fstype)
    except OSError:
        return "unknown filesystem"
    return f"{best[2]} on {best[1]} (mounted at {best[0]})"


@dataclass
class Context:
    """What every section gets: where to write plots, the servers, and the run's options."""

    results_dir: Path = RESULTS_DIR
    services: Any = None
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_of(func: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(func) for _ in range(repeats))


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
