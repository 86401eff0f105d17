"""Helpers shared by the benchmark sections: isolated config, timing, Markdown tables."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def noop(x: int) -> int:
    return x + 1


def bench_home() -> Path:
    """A private PyWren home (storage and runner dirs) for one bench run."""
    return Path(tempfile.mkdtemp(prefix="pywren-bench-"))


def localhost_config(home: Path, workers: int = 2) -> dict[str, Any]:
    return {
        "pywren": {"monitor_interval": 0.01},
        "localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner"), "workers": workers},
    }


def timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_of(func: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(func) for _ in range(repeats))


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
