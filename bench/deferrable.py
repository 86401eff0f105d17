"""Section 6: 100 deferred PyWren tasks watched by one triggerer: its CPU time and peak RSS.

100 jobs (one call each, 100 executor ids as 100 task instances would have) are submitted
to a localhost runner with 100 workers; every call sleeps until a common moment about 20 s
later (spread over 5 s), so all 100 are running while the triggers watch them. Then a fresh
process (:mod:`bench.triggerer_child`) runs 100 ``PyWrenJobTrigger`` in Airflow's own trigger
runner (``TriggerRunnerSupervisor`` forks ``TriggerRunner``: one asyncio loop), storage
monitoring, ``poll_interval`` 1 s (the operators' default), until every trigger fired.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import airflow_pywren as pywren
from airflow_pywren.executor.jobs import job_reference
from bench.common import Context, bench_home, markdown_table, percentile, seconds, stop_runners

NAME = "deferrable"
TITLE = "Deferrable scale: 100 deferred PyWren tasks, one triggerer"
TASKS = 100
HOLD_S = 20.0
SPREAD_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[1]


def sleep_until(moment: float) -> float:
    time.sleep(max(0.0, moment - time.time()))
    return moment


def run(ctx: Context) -> dict[str, Any]:
    home = bench_home()
    tasks = 20 if ctx.quick else TASKS
    config = {"localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner"),
                            "workers": tasks}}
    try:
        with pywren.FunctionExecutor(config=config) as starter:  # starts the runner and its pool first
            starter.get_result(starter.map(noop_sleep, [0.0] * 2))
        refs, executors = [], []
        base = time.time() + HOLD_S
        for index in range(tasks):
            executor = pywren.FunctionExecutor(config=config, executor_id=f"bench-defer-{index:03d}")
            future = executor.call_async(sleep_until, base + SPREAD_S * index / tasks)
            refs.append(job_reference(executor, "call_async", [future]))
            executors.append(executor)
        (home / "refs.json").write_text(json.dumps(refs))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYWREN_CONFIG"))}
        env.update({
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_PYWREN_DEFAULT": json.dumps({"conn_type": "pywren", "extra": {"config": config}}),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        })
        (home / "airflow").mkdir()
        child_start = time.time()
        with open(home / "triggerer.log", "wb") as log:
            child = subprocess.run(
                [sys.executable, "-m", "bench.triggerer_child", str(home / "refs.json"), str(home / "result.json")],
                env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=300, check=False,
            )
        child_s = time.time() - child_start
        if child.returncode != 0 or not (home / "result.json").exists():
            tail = (home / "triggerer.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the triggerer process exited with {child.returncode}:\n{tail}")
        result = json.loads((home / "result.json").read_text())
        ends = {}
        for number, executor in enumerate(executors, 1):
            future = executor.futures[0]
            executor.wait([future])
            ends[str(number)] = future.end_time
            executor.clean()
            executor.close()
    finally:
        stop_runners(home / "runner")
    events = result["events"]
    succeeded = sum(1 for e in events.values() if e["status"] == "success")
    delays = [events[k]["time"] - ends[k] for k in events if ends.get(k) and events[k]["status"] == "success"]
    samples = result["samples"]
    idle_cpu = samples[0][1] if samples else 0.0
    runner, supervisor = result["runner"], result["supervisor"]
    first_event = min((e["time"] for e in events.values()), default=None)
    watch_s = (max(e["time"] for e in events.values()) - result["handed_at"]) if events else 0.0
    peak_threads = max((s[3] for s in samples if len(s) > 3), default=0)
    rows = [
        ["trigger runner (one asyncio loop, forked; runs all triggers)", f"{runner['cpu_s']:.2f} s",
         f"{runner['cpu_s'] / max(watch_s, 1e-9):.1%}", f"{runner['cpu_s'] / tasks * 1000:.1f} ms",
         f"{runner['peak_rss'] / 2**20:.0f} MiB", peak_threads],
        ["supervisor (this bench's stand-in; includes importing Airflow)", f"{supervisor['cpu_s']:.2f} s", "—", "—",
         f"{supervisor['peak_rss'] / 2**20:.0f} MiB", "—"],
    ]
    table = markdown_table(["process", "CPU time", "of one core while watching", "CPU per trigger", "peak RSS",
                            "peak threads"], rows)
    table += "\n\n" + markdown_table(
        ["triggers", "success events", "failed / no event", "watched for", "event after the job's end: median",
         "p95", "max"],
        [[result["triggers"], succeeded, len(result["failures"]) + result["triggers"] - len(events), seconds(watch_s),
          seconds(percentile(delays, 0.5)), seconds(percentile(delays, 0.95)), seconds(max(delays) if delays else 0)]],
    )
    note = (
        f"How it was run: {tasks} jobs (one call each, {tasks} executor ids) on a localhost runner with {tasks} "
        f"workers; every call sleeps until a common moment {HOLD_S:.0f} s after submission, spread over "
        f"{SPREAD_S:.0f} s. A fresh process then runs Airflow's `TriggerRunnerSupervisor`, which forks Airflow's "
        f"`TriggerRunner` (the asyncio loop of `airflow triggerer`) and hands it {tasks} `PyWrenJobTrigger` "
        "workloads (encrypted kwargs, as the scheduler stores them), storage monitoring, poll_interval 1 s. "
        "Not a full `airflow triggerer`: there is no metadata database, so the supervisor gets the workloads "
        "directly instead of from Trigger rows, records events in memory instead of resuming task instances, "
        "and skips heartbeats (see `bench/triggerer_child.py`). CPU time, peak RSS (VmHWM) and threads are of "
        "the trigger runner subprocess, which runs every trigger, over its whole life (it starts as a fork of "
        f"the supervisor, so its start-up costs almost nothing: {idle_cpu:.2f} s at the first sample); 'while "
        "watching' divides by the time from handing over the triggers to the last event. Each trigger runs its "
        "blocking calls (connection lookup, executor, storage LISTs) in a thread of its own, hence the thread "
        "count. Event delay = the supervisor receiving the event minus the call's end time (poll interval 1 s, "
        f"plus up to 1 s until the runner's next state sync). Whole triggerer process: {seconds(child_s)}; first "
        f"event {seconds((first_event or child_start) - child_start)} after it started."
    )
    data = {"result": {k: v for k, v in result.items() if k != "samples"}, "samples": samples, "delays": delays,
            "idle_cpu_s": idle_cpu}
    return {"title": TITLE, "table": table, "note": note, "data": data, "plots": [_plot(ctx, samples, result)]}


def noop_sleep(seconds_: float) -> float:
    time.sleep(seconds_)
    return seconds_


def _plot(ctx: Context, samples: list[list[float]], result: dict[str, Any]) -> str:
    from bench.common import pyplot

    plt = pyplot()
    figure, (cpu_axis, rss_axis) = plt.subplots(2, 1, figsize=(7, 4.8), sharex=True)
    if samples:
        origin = samples[0][0]
        times = [s[0] - origin for s in samples]
        cpu_axis.plot(times, [s[1] for s in samples], color="tab:blue")
        rss_axis.plot(times, [s[2] / 2**20 for s in samples], color="tab:green")
        event_times = sorted(e["time"] - origin for e in result["events"].values())
        for axis in (cpu_axis, rss_axis):
            axis.axvspan(event_times[0], event_times[-1], color="tab:gray", alpha=0.2, label="events fired")
    cpu_axis.set(ylabel="CPU time (s)", title=f"Trigger runner with {result['triggers']} PyWren triggers")
    rss_axis.set(ylabel="RSS (MiB)", xlabel="seconds since the runner started")
    rss_axis.set_ylim(bottom=0)
    cpu_axis.legend(fontsize=8)
    figure.tight_layout()
    name = "deferrable_triggerer.png"
    figure.savefig(ctx.results_dir / name, dpi=110)
    plt.close(figure)
    return name
