"""Section 6: 100 deferred PyWren tasks watched by one ``airflow triggerer``, in a running Airflow.

A small deployment (:mod:`tests.services.airflow`: API server, scheduler with the
LocalExecutor, triggerer; SQLite) runs one DAG: ``PyWrenCallAsyncOperator`` with
``deferrable=True`` mapped over 100 items, so 100 task instances each submit a call and
defer. Every call waits for a gate file, opened once all 100 task instances are deferred:
the triggerer then watches 100 running jobs at once, until each call ends, its trigger
fires and its task instance resumes and succeeds. A sampler reads the triggerer's CPU
time, RSS and threads (``psutil``) and the task-instance states (SQLite) every 0.25 s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import airflow_pywren as pywren
from airflow_pywren.operators.pywren import executor_id_for
from bench.common import Context, bench_home, markdown_table, percentile, seconds, stop_runners
from tests.services.airflow import AirflowDeployment

NAME = "deferrable"
TITLE = "Deferrable scale: 100 deferred PyWren tasks, one airflow triggerer"
TASKS = 100
DAG_ID, TASK_ID = "bench_deferred_many", "wait"
PHASE_TIMEOUT_S = 300.0
HOLD_S = 15.0
"""How long the triggerer watches all the running jobs before the gate opens."""
SAMPLE_EVERY_S = 0.25

DAG_SOURCE = """\
import os
import time

import pendulum
from airflow.sdk import dag

from airflow_pywren.operators.pywren import PyWrenCallAsyncOperator


def wait_for_gate(index):
    while not os.path.exists({gate!r}):
        time.sleep(0.05)
    return index


@dag(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def bench_deferred_many():
    PyWrenCallAsyncOperator.partial(task_id={task_id!r}, func=wait_for_gate, deferrable=True).expand(
        data=list(range({tasks}))
    )


bench_deferred_many()
"""


class Sampler(threading.Thread):
    """Samples the triggerer (its process and children) and the task-instance states until stopped."""

    def __init__(self, deployment: AirflowDeployment) -> None:
        super().__init__(daemon=True)
        import psutil

        self.deployment = deployment
        self.triggerer = psutil.Process(deployment.pid("triggerer"))
        self.samples: list[dict[str, Any]] = []
        self.peak_rss: dict[int, int] = {}
        self.halt = threading.Event()

    def processes(self) -> list[Any]:
        import psutil

        try:
            return [self.triggerer, *self.triggerer.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the triggerer and its living children so far."""
        import psutil

        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        import psutil

        while not self.halt.is_set():
            rss = threads = 0
            for process in self.processes():
                try:
                    memory = process.memory_info().rss
                    rss += memory
                    threads += process.num_threads()
                    self.peak_rss[process.pid] = max(self.peak_rss.get(process.pid, 0), _vm_hwm(process.pid) or memory)
                except psutil.Error:
                    pass
            try:
                states = dict(
                    self.deployment.query(
                        "SELECT COALESCE(state, 'none'), COUNT(*) FROM task_instance WHERE dag_id = ? GROUP BY state",
                        DAG_ID,
                    )
                )
            except Exception:  # the database is briefly locked: keep the previous counts
                states = self.samples[-1]["states"] if self.samples else {}
            self.samples.append(
                {"time": time.time(), "cpu_s": self.cpu_seconds(), "rss": rss, "threads": threads, "states": states}
            )
            self.halt.wait(SAMPLE_EVERY_S)


def _vm_hwm(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run(ctx: Context) -> dict[str, Any]:
    home = bench_home()
    tasks = 20 if ctx.quick else TASKS
    gate = home / "gate"
    config = {"localhost": {"storage_dir": str(home / "storage"), "runner_dir": str(home / "runner"), "workers": tasks}}
    (home / "dags").mkdir()
    (home / "dags" / f"{DAG_ID}.py").write_text(
        DAG_SOURCE.format(gate=str(gate), dag_id=DAG_ID, task_id=TASK_ID, tasks=tasks)
    )
    (home / "airflow").mkdir()
    deployment = AirflowDeployment(
        home / "airflow", home / "dags", {"pywren_default": {"conn_type": "pywren", "extra": {"config": config}}}
    )
    try:
        with pywren.FunctionExecutor(config=config) as starter:  # the runner and its pool of `tasks` workers
            starter.get_result(starter.map(_noop, range(2)))
        started = time.time()
        deployment.start()
        boot_s = time.time() - started
        sampler = Sampler(deployment)
        sampler.start()
        deployment.cli("dags", "unpause", DAG_ID)
        deployment.cli("dags", "trigger", DAG_ID)
        triggered = time.time()
        deployment.wait_for(
            f"SELECT COUNT(*) FROM task_instance WHERE dag_id = '{DAG_ID}' AND state = 'deferred'",
            lambda rows: rows[0][0] == tasks,
            PHASE_TIMEOUT_S,
        )
        all_deferred = time.time()
        cpu_at_deferred = sampler.cpu_seconds()
        triggers = deployment.query('SELECT COUNT(*), COUNT(DISTINCT triggerer_id) FROM "trigger"')[0]
        time.sleep(HOLD_S)
        gate.touch()
        opened = time.time()
        deployment.wait_for(
            f"SELECT state FROM dag_run WHERE dag_id = '{DAG_ID}'",
            lambda rows: rows and rows[0][0] in ("success", "failed"),
            PHASE_TIMEOUT_S,
        )
        finished = time.time()
        cpu_at_end = sampler.cpu_seconds()
        sampler.halt.set()
        sampler.join()
        run_row = deployment.query(f"SELECT run_id, state FROM dag_run WHERE dag_id = '{DAG_ID}'")[0]
        instances = deployment.query(
            f"SELECT map_index, state, end_date, scheduled_dttm FROM task_instance WHERE dag_id = '{DAG_ID}'"
        )
        call_ends = _call_ends(config, run_row[0], [row[0] for row in instances])
    finally:
        deployment.stop()
        stop_runners(home / "runner")
    delays = [
        _epoch(end) - call_ends[index]
        for index, state, end, _ in instances
        if state == "success" and end and call_ends.get(index)
    ]
    fired = [
        _epoch(scheduled) - call_ends[index]
        for index, state, _, scheduled in instances
        if state == "success" and scheduled and call_ends.get(index)
    ]
    succeeded = sum(1 for _, state, _, _ in instances if state == "success")
    peak_threads = max((s["threads"] for s in sampler.samples), default=0)
    watch_s = finished - all_deferred
    watch_cpu = cpu_at_end - cpu_at_deferred
    rows = [
        [
            "`airflow triggerer` (supervisor + trigger runner)",
            f"{cpu_at_end:.2f} s",
            f"{watch_cpu:.2f} s",
            f"{watch_cpu / max(watch_s, 1e-9):.1%}",
            f"{watch_cpu / tasks * 1000:.1f} ms",
            f"{sum(sampler.peak_rss.values()) / 2**20:.0f} MiB",
            peak_threads,
        ]
    ]
    table = markdown_table(
        [
            "process",
            "CPU time, whole life",
            "CPU while watching",
            "of one core while watching",
            "CPU per deferred task",
            "peak RSS (sum of VmHWM)",
            "peak threads",
        ],
        rows,
    )
    table += "\n\n" + markdown_table(
        [
            "deferred tasks",
            "triggers at once / triggerers",
            "task instances succeeded",
            "DAG run",
            "all deferred after trigger",
            "gate to all succeeded",
            "event recorded after its call ended: median / p95",
            "task done after its call ended: median",
            "p95",
            "max",
        ],
        [
            [
                tasks,
                f"{triggers[0]} / {triggers[1]}",
                f"{succeeded} of {len(instances)}",
                run_row[1],
                seconds(all_deferred - triggered),
                seconds(finished - opened),
                f"{seconds(percentile(fired, 0.5))} / {seconds(percentile(fired, 0.95))}" if fired else "—",
                seconds(percentile(delays, 0.5)),
                seconds(percentile(delays, 0.95)),
                seconds(max(delays) if delays else 0),
            ]
        ],
    )
    note = (
        f"A running Airflow: `airflow api-server --apps execution`, `airflow scheduler` (LocalExecutor, parallelism "
        f"16) and `airflow triggerer`, SQLite, all on 127.0.0.1 (started in {seconds(boot_s)}; see "
        "`tests/services/airflow.py`). One DAG run of `PyWrenCallAsyncOperator(deferrable=True)` mapped over "
        f"{tasks} items: each task instance submits one call to the localhost runner ({tasks} workers) and defers "
        "to `PyWrenJobTrigger` (storage monitoring, poll_interval 1 s). Every call waits for a gate file, opened "
        f"{HOLD_S:g} s "
        f"after all {tasks} task instances were deferred, so the triggerer watched {tasks} running jobs at once. "
        "'While watching' = from all deferred to the DAG run's end; CPU and peak RSS are of the triggerer process and "
        "its children (the trigger runner is a forked child that runs every trigger on one asyncio loop; each "
        "trigger runs its blocking calls, connection lookup and storage LISTs, in a thread of its own, hence the "
        "threads). Event recorded = the moment the triggerer set the task instance back to scheduled "
        "(`scheduled_dttm`) minus its call's end time in storage: the trigger's poll (1 s) and the triggerer "
        "handing the event to the database. Task done = its end date minus the call's end: adds waiting for a "
        "LocalExecutor slot (16 for 100 resumed tasks on 2 cores) and the task resuming."
    )
    data = {
        "samples": sampler.samples,
        "delays": delays,
        "fired": fired,
        "instances": instances,
        "boot_s": boot_s,
        "triggered": triggered,
        "all_deferred": all_deferred,
        "opened": opened,
        "finished": finished,
        "cpu_at_deferred": cpu_at_deferred,
        "cpu_at_end": cpu_at_end,
        "peak_rss": sampler.peak_rss,
    }
    return {
        "title": TITLE,
        "table": table,
        "note": note,
        "data": data,
        "plots": [_plot(ctx, sampler.samples, triggered, opened, tasks)],
    }


def _noop(x: int) -> int:
    return x


def _epoch(text: str) -> float:
    from datetime import datetime, timezone

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _call_ends(config: dict[str, Any], run_id: str, map_indexes: list[int]) -> dict[int, float]:
    """The end time of each task instance's call, read from storage (the task's executor id follows from it)."""
    ends = {}
    for index in map_indexes:
        executor = pywren.FunctionExecutor(config=config, executor_id=executor_id_for(DAG_ID, run_id, TASK_ID, index))
        try:
            job_ids = executor.job_ids()
            if job_ids:
                futures = executor.job_futures(job_ids[-1])
                executor.wait(futures, timeout=5)
                if futures[0].done() and futures[0].end_time:
                    ends[index] = futures[0].end_time
        finally:
            executor.close()
    return ends


def _plot(ctx: Context, samples: list[dict[str, Any]], triggered: float, opened: float, tasks: int) -> str:
    from bench.common import pyplot

    plt = pyplot()
    figure, (state_axis, cpu_axis, rss_axis) = plt.subplots(3, 1, figsize=(7, 6.2), sharex=True)
    times = [s["time"] - triggered for s in samples]
    for state, color in (("deferred", "tab:purple"), ("success", "tab:green")):
        state_axis.plot(times, [s["states"].get(state, 0) for s in samples], color=color, label=state)
    rate = [0.0] + [
        (b["cpu_s"] - a["cpu_s"]) / max(b["time"] - a["time"], 1e-9) * 100 for a, b in zip(samples, samples[1:])
    ]
    cpu_axis.plot(times, rate, color="tab:blue")
    rss_axis.plot(times, [s["rss"] / 2**20 for s in samples], color="tab:orange")
    for axis in (state_axis, cpu_axis, rss_axis):
        axis.axvline(opened - triggered, color="tab:gray", ls="--", lw=1)
    state_axis.set(
        ylabel="task instances", title=f"{tasks} deferred PyWren tasks, one airflow triggerer (dashed: gate opened)"
    )
    state_axis.legend(fontsize=8)
    cpu_axis.set(ylabel="triggerer CPU (% of a core)")
    rss_axis.set(ylabel="triggerer RSS (MiB)", xlabel="seconds since the DAG run was triggered")
    rss_axis.set_ylim(bottom=0)
    figure.tight_layout()
    name = "deferrable_triggerer.png"
    figure.savefig(ctx.results_dir / name, dpi=110)
    plt.close(figure)
    return name
