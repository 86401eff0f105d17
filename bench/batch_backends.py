"""Section 7: 1,000 calls on the Kubernetes and Code Engine test servers against ibm_cf on the OpenWhisk one.

Each backend runs the same no-op map of 1,000 calls with ``ibm_cos`` storage on moto, in one
run: ``submit`` is the time ``map`` takes (stage the job, create the Job / job run, or invoke
every activation), ``end to end`` adds ``get_result``. Pods (instances, containers) created
and the API requests the client made to the compute service for the job come from the test
servers' own records. Every server runs in a child process with the same number of
execution slots.

Where the default ``k8s.calls_per_pod`` comes from: a sweep of it on the same server measures
the time of one wave of pods (all slots busy) as ``S + c * t``, a pod's start-up ``S`` plus ``c``
calls of ``t`` each, fitted by least squares. With ``P`` pods at once, ``N`` calls in pods of ``c``
take ``ceil(ceil(N / c) / P)`` waves: while there is more than one wave the time
``~ (N / P) * (S / c + t)`` falls as ``c`` grows, and once ``c >= N / P`` (one wave) it is
``S + c * t`` and rises, so ``c = ceil(N / P)`` is fastest whatever ``S`` and ``t`` are. The model
table applies the fitted ``S`` and ``t`` at the backend's default parallelism.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import airflow_pywren as pywren
from bench.common import Context, markdown_table, noop, seconds

NAME = "batch"
TITLE = "1,000 calls on the Kubernetes and Code Engine test servers, against ibm_cf on the OpenWhisk one"
N = 1_000
SLOTS = 4  # pods / instances / action containers running at once on each test server
SWEEP = ((40, 1), (40, 2), (40, 5), (40, 10), (200, 50))  # (N, calls per pod) on SLOTS pods at once
QUICK_SWEEP = ((8, 1), (8, 2), (16, 4))
MODEL_SIZES = (100, 1_000, 10_000)
MODEL_CALLS_PER_POD = (1, 2, 5, 10, 20, 50, 100)
REPO_ROOT = Path(__file__).resolve().parents[1]


class BatchServer:
    """A Kubernetes or Code Engine test server in a child process (``python -m bench.batch_backends serve``)."""

    def __init__(self, kind: str, workdir: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.batch_backends", "serve", kind, str(workdir)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lock = threading.Lock()
        self.info = json.loads(self.process.stdout.readline() or "{}")
        if not self.info:
            raise RuntimeError(f"the {kind} test server did not start; see {workdir}/{kind}.log")

    def command(self, op: str, **params: Any) -> dict[str, Any]:
        with self.lock:
            self.process.stdin.write(json.dumps({"op": op, **params}) + "\n")
            self.process.stdin.flush()
            return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _serve(kind: str, workdir: Path) -> None:
    from bench.services import _command_loop
    from tests.services.processes import die_with_parent

    die_with_parent()
    if kind == "k8s":
        from tests.services.kubernetes import KubernetesTestServer

        server: Any = KubernetesTestServer(workdir / "k8s", max_pods=SLOTS).start()
        namespace = server.create_namespace("bench")
        ready = {"kubeconfig": str(server.write_kubeconfig(workdir / "kubeconfig", namespace)), "namespace": namespace}
        scope = namespace
    else:
        from tests.services.code_engine import CodeEngineTestServer

        server = CodeEngineTestServer(workdir / "ce", max_instances=SLOTS).start()
        project, _ = server.add_project()
        ready = server.settings(project)
        scope = project

    def handle(op: str, params: dict[str, Any]) -> dict[str, Any]:
        if op == "reset":
            with server.lock:
                server.requests.clear()
                if kind == "k8s":
                    server.pods_started = 0
                else:
                    server.instances_started = 0
            return {}
        if op == "stats":
            requests = dict(server.requests_in(scope))
            started = server.pods_started if kind == "k8s" else server.instances_started
            return {"requests": requests, "started": started}
        raise ValueError(f"unknown op {op!r}")

    try:
        _command_loop(ready, handle)
    finally:
        server.stop()


def _measure(executor: pywren.FunctionExecutor, n: int) -> tuple[float, float]:
    start = time.perf_counter()
    futures = executor.map(noop, range(n))
    submit = time.perf_counter() - start
    results = executor.get_result(futures)
    total = time.perf_counter() - start
    assert results == [x + 1 for x in range(n)], "wrong results"
    return submit, total


def run(ctx: Context) -> dict[str, Any]:
    from tests.services.s3 import cos_section

    s3 = ctx.services.s3()
    storage = {
        "pywren": {"storage_backend": "ibm_cos"},
        "ibm_cos": cos_section(s3.info["endpoint"], s3.command("bucket")["bucket"]),
    }
    workdir = Path(tempfile.mkdtemp(prefix="pywren-bench-batch-"))
    n = 100 if ctx.quick else N
    rows, data = [], []
    openwhisk = ctx.services.openwhisk(containers=SLOTS)
    k8s = BatchServer("k8s", workdir)
    ce = BatchServer("code_engine", workdir)
    try:
        configs = {
            "ibm_cf": {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": dict(openwhisk.info["ibm_cf"])},
            "k8s": {"pywren": {"compute_backend": "k8s"}, "k8s": {**k8s.info, "runtime": "airflowpywren/runtime:test"}},
            "code_engine": {
                "pywren": {"compute_backend": "code_engine"},
                "code_engine": {**ce.info, "runtime": "airflowpywren/runtime:test"},
            },
        }
        for backend, compute in configs.items():
            config = {**storage, **compute, "pywren": {**storage["pywren"], **compute["pywren"]}}
            with pywren.FunctionExecutor(config=config) as executor:
                executor.get_result(executor.map(noop, range(SLOTS)))  # warm-up: deploys the action on ibm_cf
                if backend == "ibm_cf":
                    openwhisk.command("wait_idle")
                    openwhisk.command("reset")
                else:
                    (k8s if backend == "k8s" else ce).command("reset")
                submit, total = _measure(executor, n)
                if backend == "ibm_cf":
                    stats = openwhisk.command("stats")
                    started, requests = stats["containers_started"], {"POST invoke": stats["attempts"]}
                else:
                    stats = (k8s if backend == "k8s" else ce).command("stats")
                    started, requests = stats["started"], stats["requests"]
                executor.clean()
            per = {
                "ibm_cf": "1 (one activation per call)",
                "k8s": "10 (k8s.calls_per_pod)",
                "code_engine": "10 (code_engine.calls_per_instance)",
            }[backend]
            rows.append(
                [
                    backend,
                    f"{n:,}",
                    seconds(submit),
                    f"{n / submit:,.0f}",
                    seconds(total),
                    f"{n / total:,.0f}",
                    per,
                    started,
                    sum(requests.values()),
                    ", ".join(f"{k} {v}" for k, v in sorted(requests.items())),
                ]
            )
            data.append(
                {
                    "backend": backend,
                    "n": n,
                    "submit_s": submit,
                    "total_s": total,
                    "started": started,
                    "requests": requests,
                }
            )
        sweep_rows = []
        for size, per in QUICK_SWEEP if ctx.quick else SWEEP:
            config = {
                **storage,
                "pywren": {**storage["pywren"], "compute_backend": "k8s"},
                "k8s": {**k8s.info, "runtime": "airflowpywren/runtime:test", "calls_per_pod": per},
            }
            with pywren.FunctionExecutor(config=config) as executor:
                k8s.command("reset")
                submit, total = _measure(executor, size)
                stats = k8s.command("stats")
                executor.clean()
            waves = math.ceil(stats["started"] / SLOTS)
            sweep_rows.append(
                [
                    f"{size:,}",
                    per,
                    stats["started"],
                    waves,
                    seconds(submit),
                    seconds(total),
                    seconds(total / waves),
                ]
            )
            data.append(
                {
                    "sweep": True,
                    "n": size,
                    "calls_per_pod": per,
                    "pods": stats["started"],
                    "waves": waves,
                    "submit_s": submit,
                    "total_s": total,
                }
            )
    finally:
        k8s.stop()
        ce.stop()
    table = markdown_table(
        [
            "backend",
            "N",
            "submit",
            "calls/s submitted",
            "end to end",
            "calls/s end to end",
            "calls per pod",
            "pods / instances / containers started",
            "compute API requests",
            "by kind",
        ],
        rows,
    )
    sweep = markdown_table(
        ["N", "k8s.calls_per_pod", "pods", f"waves of {SLOTS}", "submit", "end to end", "per wave"], sweep_rows
    )
    model = calls_per_pod_model([d for d in data if d.get("sweep")], next(d for d in data if d.get("backend") == "k8s"))
    note = (
        f"Each test server (not the real service) runs at most {SLOTS} pods, instances or action containers at once "
        "as local processes running the real handler, in its own process; storage is moto's S3 server. Product "
        "defaults otherwise (lost-call checks every 10 s). On ibm_cf every call is an invocation POST and "
        "containers stay warm; on k8s and code_engine the job costs a fixed handful of requests whatever N "
        "(k8s: Secret, Job, owner patch, then one GET Job and one LIST pods per check; code_engine: secret, job "
        "run, one GET per check), and each pod pays a process start.\n\n"
        "Sweep of `k8s.calls_per_pod` (same server):\n\n" + sweep + "\n\n" + model["text"]
    )
    data.append({"model": True, "startup_s": model["startup_s"], "per_call_s": model["per_call_s"]})
    return {"title": TITLE, "table": table, "note": note, "data": data, "plots": []}


def calls_per_pod_model(sweep: list[dict[str, Any]], check: dict[str, Any]) -> dict[str, Any]:
    """Fit one wave's time as ``S + c * t`` and predict end-to-end times at the default parallelism.

    ``check`` is the k8s row of the main table, measured apart from the fit: the model's prediction for it.
    """
    from airflow_pywren.executor.compute.k8s import KubernetesCompute

    settings = KubernetesCompute.settings_schema
    parallelism = int(settings["parallelism"].default)
    default = int(settings["calls_per_pod"].default)
    fit = statistics.linear_regression([d["calls_per_pod"] for d in sweep], [d["total_s"] / d["waves"] for d in sweep])
    startup, per_call = fit.intercept, fit.slope

    def predicted(n: int, per: int, slots: int = parallelism) -> float:
        return math.ceil(math.ceil(n / per) / slots) * (startup + per * per_call)

    expected = predicted(check["n"], default, SLOTS)

    rows = []
    for n in MODEL_SIZES:
        best = min(MODEL_CALLS_PER_POD, key=lambda per: predicted(n, per))
        for per in MODEL_CALLS_PER_POD:
            pods = math.ceil(n / per)
            tags = ", ".join(tag for tag, on in (("fastest", per == best), ("default", per == default)) if on)
            rows.append(
                [
                    f"{n:,}",
                    f"{per} ({tags})" if tags else str(per),
                    f"{pods:,}",
                    math.ceil(pods / parallelism),
                    seconds(predicted(n, per)),
                ]
            )
    table = markdown_table(["N", "calls per pod", "pods", f"waves of {parallelism}", "predicted end to end"], rows)
    text = (
        f"Fitted on the sweep: a pod's start-up S = {seconds(startup)} (process start, imports, storage client: "
        f"on a real cluster scheduling and container start add to it) and t = {seconds(per_call)} per call "
        f"(no-op, statuses and results on moto). For the k8s row above ({check['n']:,} calls, {default} per pod, "
        f"{SLOTS} pods at once) the model predicts {seconds(expected)}; measured {seconds(check['total_s'])}. "
        f"Predicted at `k8s.parallelism` = {parallelism} (default):\n\n"
        + table
        + f"\n\nThe fastest number of calls per pod is ceil(N / {parallelism}): {default} for a 1,000-call map, "
        f"the default. Smaller maps run fastest with fewer calls per pod and larger ones with more (set "
        f"`k8s.calls_per_pod` to ceil(N / parallelism)); the default stays at {default} because a pod that fails "
        "fails all its calls, and its deadline is calls_per_pod x timeout."
    )
    return {"text": text, "startup_s": startup, "per_call_s": per_call}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(sys.argv[2], Path(sys.argv[3]))
