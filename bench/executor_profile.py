"""Where a no-op map's time goes on localhost: py-spy CPU profiles of the client, the runner and its workers.

For a source tree (this one, and a baseline commit checked out with ``git worktree`` into a
temporary directory, run with the same interpreter), a warm-up process starts the tree's
localhost runner; one py-spy then follows the runner and its worker processes while another
runs a fresh client that maps a no-op over N items. Each sample is charged to its process
(client, runner, worker) and to the innermost ``airflow_pywren`` function on its stack (what
the package was doing, including the library calls it made); samples with no package frame
on the stack are the interpreter's start-up and imports.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_home, stop_runners

RATE = 100  # samples per second and process
REPO = Path(__file__).resolve().parents[1]

CLIENT = """\
import json, sys, time
import airflow_pywren as pywren

def noop(x):
    return x + 1

config, n, runs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
executor = pywren.FunctionExecutor(config=config)
if n == 0:  # warm-up: start the runner, which outlives this process
    executor.get_result(executor.map(noop, range(2)))
    executor.clean()
    sys.exit(0)
for _ in range(runs):
    wall, start = time.time(), time.perf_counter()
    futures = executor.map(noop, range(n))
    submitted = time.perf_counter() - start
    assert executor.get_result(futures)[-1] == n
    elapsed = time.perf_counter() - start
    first_start = min(f.start_time for f in futures) - wall
    last_end = max(f.end_time for f in futures) - wall
    print(json.dumps({"submit_s": submitted, "elapsed_s": elapsed, "first_start_s": first_start,
                      "last_end_s": last_end}))
    executor.clean()
"""


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def baseline_tree(commit: str, into: Path) -> Path:
    """A detached checkout of ``commit`` under ``into`` (removed with :func:`drop_tree`)."""
    tree = into / f"tree-{commit.replace('^', '-parent')}"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(tree), commit],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tree


def drop_tree(tree: Path) -> None:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True, timeout=60
    )


def _runner_pid(runner_dir: Path) -> int:
    import psutil

    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if "localhost_runner" in cmdline and str(runner_dir) in (process.info.get("cwd") or "") + cmdline:
            return int(process.info["pid"])
    raise RuntimeError(f"no localhost runner found for {runner_dir}")


def _client(tree: Path) -> tuple[Path, list[str], dict[str, str]]:
    """A private PyWren home, and the command and environment that run :data:`CLIENT` with ``tree``'s package."""
    home = bench_home()
    config = {"localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner")}}
    script = home / "client.py"
    script.write_text(CLIENT)
    return home, [sys.executable, str(script), json.dumps(config)], {**os.environ, "PYTHONPATH": str(tree)}


def profile_tree(tree: Path, n: int) -> dict[str, Any]:
    """Run a no-op map over ``n`` items with ``tree``'s package under py-spy; CPU seconds by process and function."""
    spy = py_spy()
    if spy is None:
        return {"error": "py-spy is not installed"}
    home, command, env = _client(tree)
    subprocess.run([*command, "0", "0"], env=env, cwd=home, check=True, timeout=300, capture_output=True)
    runner = _runner_pid(home / "runner")
    runner_out, client_out = home / "runner.txt", home / "client.txt"
    follow = subprocess.Popen(
        [spy, "record", "-r", str(RATE), "--format", "raw", "-o", str(runner_out), "--subprocesses"]
        + ["--pid", str(runner)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attached to the runner and found its workers
    try:
        done = subprocess.run(
            [spy, "record", "-r", str(RATE), "--format", "raw", "-o", str(client_out), "--", *command, str(n), "1"],
            env=env,
            cwd=home,
            check=True,
            timeout=1800,
            capture_output=True,
            text=True,
        )
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=60)
        stop_runners(home / "runner")
    timing = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    profile = _charge(client_out, {}, "client")
    _charge(runner_out, profile, "workers", runner_pid=runner)
    return {"n": n, **timing, "processes": profile}


def job_phases(tree: Path, n: int, runs: int) -> list[dict[str, float]]:
    """``runs`` no-op maps over ``n`` items, one after another in one client of ``tree``'s package: for each,
    submit time, when the first call started and the last one ended, and when the client had all results."""
    home, command, env = _client(tree)
    try:
        subprocess.run([*command, "0", "0"], env=env, cwd=home, check=True, timeout=300, capture_output=True)
        done = subprocess.run(
            [*command, str(n), str(runs)], env=env, cwd=home, check=True, timeout=1800, capture_output=True, text=True
        )
    finally:
        stop_runners(home / "runner")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _charge(
    path: Path, into: dict[str, dict[str, float]], default_role: str, runner_pid: int | None = None
) -> dict[str, dict[str, float]]:
    """Add the raw py-spy samples in ``path`` to ``{role: {function: CPU seconds}}``."""
    if not path.exists():
        return into
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        role = default_role
        pid = None
        while frames and frames[0].startswith("process "):  # a child's samples carry its parents' frames first
            pid = int(frames[0].split()[1].split(":")[0])
            frames = frames[1:]
        if pid is not None and pid == runner_pid:
            role = "runner"
        function = "start-up and imports"
        for frame in reversed(frames):
            name, _, where = frame.partition(" (")
            if "airflow_pywren" in where:
                module = where.split("airflow_pywren/")[-1].split(":")[0].removesuffix(".py").replace("/", ".")
                function = f"{module}.{name}"
                break
        bucket = into.setdefault(role, collections.Counter())
        bucket[function] += int(count) / RATE
    return into


def summary(profile: dict[str, Any], top: int = 6) -> list[list[str]]:
    """Rows: process, CPU seconds, its ``top`` functions with their share."""
    rows = []
    for role in ("client", "runner", "workers"):
        functions = profile.get("processes", {}).get(role)
        if not functions:
            continue
        total = sum(functions.values())
        ranked = sorted(functions.items(), key=lambda item: -item[1])[:top]
        rows.append([role, f"{total:.2f} s", "; ".join(f"`{name}` {value / total:.0%}" for name, value in ranked)])
    return rows


if __name__ == "__main__":
    from bench.common import cleanup_homes

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    trees = [REPO] + [baseline_tree(commit, Path(tempfile.mkdtemp())) for commit in sys.argv[2:]]
    try:
        for tree in trees:
            print(tree, json.dumps(profile_tree(tree, n), indent=1, default=dict))
    finally:
        cleanup_homes()
        for tree in trees[1:]:
            drop_tree(tree)
