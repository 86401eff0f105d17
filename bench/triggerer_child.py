"""One triggerer, in this fresh process: Airflow's own TriggerRunnerSupervisor and TriggerRunner.

``python -m bench.triggerer_child REFS OUT``: runs one ``PyWrenJobTrigger`` per job reference
in ``REFS`` (JSON list) in Airflow's trigger runner subprocess (one asyncio loop, forked by
the supervisor exactly as ``airflow triggerer`` does), until every trigger fired or failed,
then writes the measurements to ``OUT`` (JSON).

What is left out of a real ``airflow triggerer``: the metadata database. The supervisor here
hands the runner the trigger workloads directly (instead of reading Trigger rows assigned to
its Job) and records the events in memory (instead of resuming task instances); heartbeats
and unused-trigger cleanup, which are DB writes, are skipped. The runner subprocess, its
event loop, the workload messages, kwargs encryption and the trigger code are Airflow's
and the product's, unchanged. The connection comes from ``AIRFLOW_CONN_PYWREN_DEFAULT``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

DEADLINE_S = 180.0
SAMPLE_S = 0.25


def _vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main(refs_path: str, out_path: str) -> int:
    import psutil
    from airflow.executors.workloads.trigger import RunTrigger
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor
    from airflow.models.trigger import Trigger

    from airflow_pywren.triggers.pywren import PyWrenJobTrigger

    refs = json.loads(Path(refs_path).read_text())
    workloads = []
    for number, ref in enumerate(refs, 1):
        classpath, kwargs = PyWrenJobTrigger(job_ref=ref, poll_interval=1.0).serialize()
        workloads.append(RunTrigger(id=number, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs)))
    events: dict[int, dict[str, Any]] = {}
    failures: dict[int, Any] = {}
    samples: list[tuple[float, float, int, int]] = []  # (time, runner cpu s, rss bytes, threads)
    state = {"loaded": False, "last_sample": 0.0}

    class BenchTriggerSupervisor(TriggerRunnerSupervisor):
        """Airflow's supervisor with the database left out (see the module docs)."""

        def load_triggers(self) -> None:
            if not state["loaded"]:
                state["loaded"] = True
                state["handed"] = time.time()
                self.creating_triggers.extend(workloads)

        def heartbeat(self) -> None:
            now = time.monotonic()
            if now - state["last_sample"] >= SAMPLE_S:
                state["last_sample"] = now
                try:
                    process = psutil.Process(self.pid)
                    cpu = process.cpu_times()
                    samples.append((time.time(), cpu.user + cpu.system, process.memory_info().rss,
                                    process.num_threads()))
                except psutil.Error:
                    pass

        def metric_tags(self) -> dict[str, str]:
            return {"hostname": "bench"}

        def on_trigger_event(self, trigger_id: int, event: Any) -> None:
            payload = event.payload if hasattr(event, "payload") else event
            events[trigger_id] = {"time": time.time(), "status": (payload or {}).get("status"),
                                  "message": (payload or {}).get("message", "")[:300]}

        def on_trigger_failure(self, trigger_id: int, exc: list[str] | None) -> None:
            failures[trigger_id] = "".join(exc or [])[-2000:]

        def clean_unused(self) -> None:
            pass

        def should_stop(self) -> bool:
            return (self.stop or len(events) + len(failures) >= len(workloads)
                    or time.monotonic() - started > DEADLINE_S)

    started = time.monotonic()
    supervisor = BenchTriggerSupervisor.start(job=None, capacity=len(workloads) + 10)
    runner = psutil.Process(supervisor.pid)
    try:
        supervisor.run()
        cpu = runner.cpu_times()
        runner_cpu = cpu.user + cpu.system
        runner_peak = _vm_hwm_kib(supervisor.pid) * 1024
        runner_rss = runner.memory_info().rss
        threads = runner.num_threads()
    finally:
        supervisor.kill(escalation_delay=10, force=True)
    own = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "triggers": len(workloads), "events": events, "failures": failures,
        "runner": {"pid": supervisor.pid, "cpu_s": runner_cpu, "peak_rss": runner_peak, "final_rss": runner_rss,
                   "threads_at_end": threads},
        "supervisor": {"cpu_s": own.ru_utime + own.ru_stime, "peak_rss": own.ru_maxrss * 1024},
        "handed_at": state.get("handed"), "samples": samples, "timed_out": len(events) + len(failures) < len(workloads),
    }
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
