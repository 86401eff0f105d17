"""The Markdown report: one section per benchmark, from the JSON results in ``bench/results``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR


def save_section(name: str, result: dict[str, Any], results_dir: Path = RESULTS_DIR) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


def load_section(name: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any] | None:
    path = results_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine() -> str:
    import airflow_pywren

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    try:
        from importlib.metadata import version

        airflow = version("apache-airflow")
    except Exception:
        airflow = "not installed"
    return (
        f"{cpus} CPUs, {platform.machine()}, Linux {platform.release()}, Python {sys.version.split()[0]}, "
        f"Airflow {airflow}, airflow-pywren {getattr(airflow_pywren, '__version__', '?')}"
        + (f" (commit {commit})" if commit else "")
    )


def _previous_sections(path: Path) -> dict[str, str]:
    """The body of each section of an existing report, by title: kept for sections not run this time."""
    import re

    if not path.exists():
        return {}
    sections: dict[str, str] = {}
    parts = re.split(r"^## \d+\. (.+)$", path.read_text(), flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2]):
        sections[title.strip()] = body.strip()
    return sections


def write_report(order: list[tuple[str, str]], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``report.md`` from the saved section results, in ``order`` ((name, title) pairs)."""
    lines = [
        "# airflow-pywren benchmarks",
        "",
        "Produced by `.venv/bin/python -m bench` (see `bench/`). Every server runs on 127.0.0.1 and is "
        "started and stopped by the bench.",
        "",
    ]
    previous = _previous_sections(results_dir / "report.md")
    for number, (name, title) in enumerate(order, 1):
        result = load_section(name, results_dir)
        lines += [f"## {number}. {result['title'] if result else title}", ""]
        if result is None:
            kept = previous.get(title)
            lines += [kept, ""] if kept else ["Not run yet (`python -m bench --only " + name + "`).", ""]
            continue
        lines += [
            f"*Run {result.get('finished', '?')} in {result.get('elapsed_s', 0):.0f} s on "
            f"{result.get('machine', '?')}.*",
            "",
        ]
        if result.get("error"):
            lines += [f"**Failed:** `{result['error']}`", ""]
        if result.get("table"):
            lines += [result["table"], ""]
        if result.get("note"):
            lines += [result["note"], ""]
        for extra in result.get("findings", []):
            lines += [extra, ""]
        for plot in result.get("plots", []):
            lines += [f"![{plot}]({plot})", ""]
    path = results_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
