"""IBM Cloud Code Engine compute: one array job run per PyWren job, through the Code Engine REST API v2.

Submitting a job of N calls costs two requests whatever N: a generic secret holding the job's
payload (its fields, storage credentials included, and the calls' byte ranges, compressed) and a
job run of the runtime image with array indices ``0-{instances - 1}``, where
``instances = ceil(N / code_engine.calls_per_instance)``. The secret is mounted into each
instance (``run_volume_mounts``); instance ``JOB_INDEX = i`` runs calls
``[i * calls_per_instance, (i + 1) * calls_per_instance)`` with the image's command, which picks
the batch worker (:mod:`..worker.batch`). ``scale_retry_limit`` is 0 (no call runs twice),
``scale_max_execution_time`` is ``calls_per_instance * timeout + code_engine.deadline_margin``,
``run_service_account`` is ``code_engine.service_account`` (``none`` by default).

Memory and CPU: the job's ``runtime_memory`` (MB) and ``code_engine.cpu`` must be one of the
combinations Code Engine accepts (:data:`COMBINATIONS`); with no ``cpu``, the smallest CPU that
accepts the memory is used. Anything else fails at submit with the valid choices.

Authentication: an IAM bearer token for ``code_engine.iam_api_key`` (from ``iam_endpoint``),
cached until shortly before it expires and refreshed once on a 401.

Lost calls (every ``code_engine.lost_check_interval`` seconds, one GET of the job run per job
with pending calls): an index in ``status_details.failed_indices`` fails its calls with Code
Engine's ``indices_details[i].last_failure_reason`` (``OOMKilled``, ``ContainerExitedCode1``, ...);
an index that succeeded with calls still pending, an index still waiting for its image after
``code_engine.image_pull_timeout`` seconds (the run is then deleted), and a job run that no
longer exists fail theirs too. A finished run's secret is deleted at that check.
``cancel()`` deletes the unfinished job runs of the executor; ``clean()`` deletes its finished
job runs and their secrets. Names: ``{job_prefix}-{hash of executor id}-{job id}``.

This backend is verified only against the project's Code Engine API test server.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from airflow_pywren.executor.compute.base import ComputeBackend, Invocation, PendingCall
from airflow_pywren.executor.config import Config, Setting
from airflow_pywren.executor.errors import ComputeError, PyWrenConfigError
from airflow_pywren.executor.worker import batch
from airflow_pywren.version import __version__

logger = logging.getLogger(__name__)

COMBINATIONS: dict[str, tuple[int, ...]] = {
    "0.125": (256, 512, 1024),
    "0.25": (512, 1024, 2048),
    "0.5": (1024, 2048, 4096),
    "1": (2048, 4096, 8192),
    "2": (4096, 8192, 16384),
    "4": (8192, 16384, 32768),
    "6": (12288, 24576, 49152),
    "8": (16384, 32768),
    "12": (24576, 49152),
}
"""vCPU -> the memory sizes (MB) Code Engine accepts with it (its 'supported memory and CPU combinations')."""

PAYLOAD_DIR = "/var/run/airflow-pywren"
PAYLOAD_KEY = "payload"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PULL_ERRORS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"})
FINISHED = frozenset({"completed", "failed"})
IAM_REFRESH_MARGIN = 60.0
TIMEOUT = (10.0, 60.0)


def _cpu_text(cpu: Any) -> str:
    return f"{float(cpu):g}"


def resources(memory_mb: int, cpu: Any = None) -> tuple[str, str]:
    """``(scale_cpu_limit, scale_memory_limit)`` for ``memory_mb`` MB and ``cpu`` vCPU, or a clear error."""
    memory_mb = int(memory_mb)
    sizes = sorted({m for ms in COMBINATIONS.values() for m in ms})
    if cpu is None:
        cpu_text = next((c for c, ms in COMBINATIONS.items() if memory_mb in ms), None)
        if cpu_text is None:
            raise PyWrenConfigError(
                f"runtime_memory {memory_mb} MB is not a memory size Code Engine accepts; use one of "
                f"{', '.join(map(str, sizes))} MB (see its supported memory and CPU combinations)"
            )
    else:
        try:
            cpu_text = _cpu_text(cpu)
        except (TypeError, ValueError):
            cpu_text = str(cpu)
        if cpu_text not in COMBINATIONS:
            raise PyWrenConfigError(
                f"'code_engine.cpu' = {cpu!r} is not a CPU size Code Engine accepts; use one of "
                f"{', '.join(COMBINATIONS)}"
            )
        if memory_mb not in COMBINATIONS[cpu_text]:
            fits = [c for c, ms in COMBINATIONS.items() if memory_mb in ms]
            other = f"; or keep {memory_mb} MB with 'code_engine.cpu' {' or '.join(fits)}" if fits else ""
            raise PyWrenConfigError(
                f"runtime_memory {memory_mb} MB with 'code_engine.cpu' = {cpu_text} is not a combination Code Engine "
                f"accepts: with {cpu_text} vCPU use {', '.join(map(str, COMBINATIONS[cpu_text]))} MB{other}"
            )
    return cpu_text, f"{memory_mb / 1024:g}G"


def run_name(prefix: str, executor_id: str, job_id: str = "") -> str:
    """The job run (and secret) name of a job; with no job id, the prefix shared by the executor's runs."""
    base = f"{prefix}-{hashlib.sha256(executor_id.encode()).hexdigest()[:12]}-"
    return base + job_id.lower() if job_id else base


def settings_from_ibm_cf(ibm_cf: dict[str, Any]) -> dict[str, Any]:
    """The ``code_engine`` settings that carry over from an IBM Cloud Functions (``ibm_cf``) section."""
    carried: dict[str, Any] = {}
    endpoint = str(ibm_cf.get("endpoint") or "")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if host.endswith(".functions.cloud.ibm.com"):
        carried["region"] = host.split(".", 1)[0]
    for old, new in (
        ("iam_api_key", "iam_api_key"),
        ("iam_endpoint", "iam_endpoint"),
        ("runtime", "runtime"),
        ("verify_tls", "verify_tls"),
        ("lost_check_interval", "lost_check_interval"),
    ):
        if ibm_cf.get(old) is not None:
            carried[new] = ibm_cf[old]
    if ibm_cf.get("action_prefix"):
        carried["job_prefix"] = str(ibm_cf["action_prefix"]).lower().replace("_", "-")
    return carried


class CodeEngineClient:
    """The Code Engine API v2 of one project, with an IAM token and retries on 429/5xx."""

    def __init__(self, settings: dict[str, Any]) -> None:
        region = settings.get("region")
        self.base = (settings.get("endpoint") or f"https://api.{region}.codeengine.cloud.ibm.com/v2").rstrip("/")
        self.project_id = str(settings["project_id"])
        self.api_key = str(settings["iam_api_key"])
        self.iam_endpoint = settings["iam_endpoint"]
        self.max_retries = int(settings["max_retries"])
        self.session = requests.Session()
        self.session.verify = bool(settings["verify_tls"])
        self.session.headers["User-Agent"] = f"airflow-pywren/{__version__}"
        self.requests_sent = 0
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _bearer(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.time() > self._expires - IAM_REFRESH_MARGIN:
                try:
                    response = requests.post(
                        self.iam_endpoint,
                        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": self.api_key},
                        headers={"Accept": "application/json"},
                        timeout=TIMEOUT,
                        verify=self.session.verify,
                    )
                except requests.RequestException as exc:
                    raise ComputeError(f"cannot reach 'code_engine.iam_endpoint' {self.iam_endpoint}: {exc}") from exc
                if response.status_code in (400, 401, 403):
                    raise PyWrenConfigError(
                        f"IAM at {self.iam_endpoint} rejected 'code_engine.iam_api_key' "
                        f"(HTTP {response.status_code}); check the API key"
                    )
                if response.status_code != 200:
                    raise ComputeError(f"IAM token request to {self.iam_endpoint} failed: HTTP {response.status_code}")
                body = response.json()
                self._token = body["access_token"]
                self._expires = float(body.get("expiration") or time.time() + float(body.get("expires_in", 3600)))
            return str(self._token)

    def url(self, *parts: str) -> str:
        return "/".join([self.base, "projects", quote(self.project_id, safe=""), *(quote(p, safe="") for p in parts)])

    def request(self, method: str, url: str, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> requests.Response:
        """One API request; 429/5xx and connection errors retried with backoff, a 401 refreshes the token once."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                self.requests_sent += 1
                response = self.session.request(
                    method, url, timeout=TIMEOUT, headers={"Authorization": f"Bearer {self._bearer()}"}, **kwargs
                )
            except requests.RequestException as exc:
                if attempt > self.max_retries:
                    raise ComputeError(f"cannot reach Code Engine at {self.base}: {exc}") from exc
            else:
                if response.status_code == 401 and not refreshed:
                    refreshed = True
                    self._bearer(refresh=True)
                    continue
                if (
                    response.status_code in ok
                    or response.status_code not in RETRY_STATUSES
                    or attempt > self.max_retries
                ):
                    return response
            time.sleep(min(30.0, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))

    def close(self) -> None:
        self.session.close()


def describe(response: requests.Response) -> str:
    """``HTTP 400: <Code Engine's first error message>``."""
    try:
        errors = response.json().get("errors") or []
        message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        message = response.text[:200]
    return f"HTTP {response.status_code}" + (f": {message}" if message else "")


class CodeEngineCompute(ComputeBackend):
    """Runs each job as a Code Engine array job run; each instance runs a slice of the calls."""

    name = "code_engine"
    settings_schema: ClassVar[dict[str, Setting]] = {
        "region": Setting((str, type(None)), None, "IBM Cloud region of the project, e.g. us-south"),
        "project_id": Setting((str, type(None)), None, "Code Engine project id (ibmcloud ce project get --name P)"),
        "endpoint": Setting(
            (str, type(None)), None, "API endpoint (default: https://api.{region}.codeengine.cloud.ibm.com/v2)"
        ),
        "iam_api_key": Setting((str, type(None)), None, "IBM Cloud API key"),
        "iam_endpoint": Setting((str,), "https://iam.cloud.ibm.com/identity/token", "IAM token endpoint"),
        "runtime": Setting((str,), "airflowpywren/runtime:latest", "runtime image of the job runs"),
        "image_secret": Setting((str, type(None)), None, "registry access secret of the image, in the project"),
        "cpu": Setting(
            (str, int, float, type(None)), None, "vCPU per instance (default: the smallest that accepts the memory)"
        ),
        "calls_per_instance": Setting((int,), 10, "calls each instance runs one after another", minimum=1),
        "deadline_margin": Setting(
            (int, float),
            120,
            "seconds added to calls_per_instance x timeout for an instance's scale_max_execution_time",
            minimum=0,
        ),
        "service_account": Setting(
            (str,),
            "none",
            "service account of the instances (none, reader, writer, manager)",
            ("none", "reader", "writer", "manager"),
        ),
        "image_pull_timeout": Setting(
            (int, float), 120, "seconds an instance may fail to pull its image before its calls fail", minimum=0
        ),
        "start_timeout": Setting(
            (int, float, type(None)),
            600,
            "seconds a job run may have no instance started (the project's quota or the region's capacity used "
            "up) before its calls fail and the run is deleted (null: wait)",
            minimum=0,
        ),
        "job_prefix": Setting((str,), "pywren", "prefix of the job run names"),
        "lost_check_interval": Setting(
            (int, float), 10, "seconds between checks of the job runs of jobs with calls pending", minimum=0
        ),
        "max_retries": Setting((int,), 5, "retries of one API request on 429 and 5xx", minimum=0),
        "verify_tls": Setting((bool,), True, "verify the endpoint's TLS certificate"),
    }

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        for key in ("project_id", "iam_api_key"):
            if not settings[key]:
                raise PyWrenConfigError(
                    f"compute_backend 'code_engine' needs 'code_engine.{key}'; set it in the config"
                )
        if not (settings["region"] or settings["endpoint"]):
            raise PyWrenConfigError("compute_backend 'code_engine' needs 'code_engine.region' (e.g. us-south)")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.settings: dict[str, Any] = config["code_engine"]
        self.runtime: str = config["pywren"].get("runtime") or self.settings["runtime"]
        self.client = CodeEngineClient(self.settings)
        self.default_memory = int(config["pywren"]["runtime_memory"])
        self.interval = float(self.settings["lost_check_interval"])
        self.checks = 0
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}  # run name -> job fields and call ids (jobs invoked here)
        self._reasons: dict[str, str] = {}
        self._pull_errors: dict[str, float] = {}
        self._unstarted: dict[str, float] = {}  # job run -> when it was first seen with no instance started
        self._secrets_deleted: set[str] = set()

    def check(self) -> None:
        """The default memory and CPU are a valid combination; the project is reachable with the key."""
        resources(self.default_memory, self.settings["cpu"])
        response = self.client.request("GET", self.client.url(), ok=(200,))
        if response.status_code in (401, 403):
            raise PyWrenConfigError(
                f"Code Engine refused 'code_engine.iam_api_key' for project "
                f"{self.client.project_id!r} ({describe(response)}); the key needs Writer access to it"
            )
        if response.status_code == 404:
            raise PyWrenConfigError(
                f"Code Engine project 'code_engine.project_id' = {self.client.project_id!r} not found "
                f"at {self.client.base} ({describe(response)}); check the project id and the region"
            )
        if response.status_code != 200:
            raise ComputeError(f"Code Engine answered the project lookup with {describe(response)}")

    # ------------------------------------------------------------- invoke
    def run_body(self, name: str, job: dict[str, Any], calls: int) -> dict[str, Any]:
        per = int(self.settings["calls_per_instance"])
        instances = math.ceil(calls / per)
        cpu, memory = resources(int(job["runtime_memory"]), self.settings["cpu"])
        deadline = int(math.ceil(per * float(job.get("timeout") or 0) + float(self.settings["deadline_margin"])))
        body: dict[str, Any] = {
            "name": name,
            "image_reference": self.runtime,
            "run_mode": "task",
            "scale_array_spec": f"0-{instances - 1}",
            "scale_cpu_limit": cpu,
            "scale_memory_limit": memory,
            "scale_max_execution_time": max(1, deadline),
            "scale_retry_limit": 0,
            "run_service_account": self.settings["service_account"],
            "run_env_variables": [
                {"type": "literal", "name": batch.PAYLOAD_FILE_ENV, "value": f"{PAYLOAD_DIR}/{PAYLOAD_KEY}"}
            ],
            "run_volume_mounts": [{"type": "secret", "name": "payload", "reference": name, "mount_path": PAYLOAD_DIR}],
        }
        if self.settings["image_secret"]:
            body["image_secret"] = self.settings["image_secret"]
        return body

    def invoke(self, job: dict[str, Any], calls: Sequence[dict[str, Any]]) -> list[Invocation]:
        """Create the job's secret and array job run (two requests)."""
        name = run_name(self.settings["job_prefix"], job["executor_id"], job["job_id"])
        per = int(self.settings["calls_per_instance"])
        body = self.run_body(name, job, len(calls))  # validates memory and CPU before anything is created
        payload = batch.encode_payload(job, calls, per, name)
        secret = self.client.request(
            "POST", self.client.url("secrets"), json={"name": name, "format": "generic", "data": {PAYLOAD_KEY: payload}}
        )
        if secret.status_code not in (200, 201):
            raise ComputeError(
                f"Code Engine refused to create secret {name} of job {job['job_id']}: {describe(secret)}"
            )
        run = self.client.request("POST", self.client.url("job_runs"), json=body)
        if run.status_code not in (200, 201, 202):
            self.client.request("DELETE", self.client.url("secrets", name), ok=(200, 202, 204, 404))
            raise ComputeError(f"Code Engine refused the job run {name} of job {job['job_id']}: {describe(run)}")
        with self._lock:
            self._jobs[name] = {"job": job, "calls": [c["call_id"] for c in calls]}
        logger.info(
            "job %s: Code Engine job run %s, %d instance(s) of up to %d call(s)",
            job["job_id"],
            name,
            math.ceil(len(calls) / per),
            per,
        )
        return [
            Invocation(call["call_id"], batch.activation_id(name, index // per)) for index, call in enumerate(calls)
        ]

    # --------------------------------------------------------- lost calls
    def lost_activations(self, pending: Sequence[PendingCall]) -> dict[str, str]:
        """Pending calls whose instance failed, ended, cannot start, or whose run is gone: ``{activation_id: reason}``."""
        wanted: dict[str, set[int]] = {}
        for call in pending:
            name, _, index = (call.activation_id or "").rpartition("/")
            if name and index.isdigit():
                wanted.setdefault(name, set()).add(int(index))
        if not wanted or time.monotonic() < self._next_check:
            return {}
        self._next_check = time.monotonic() + self.interval
        self.checks += 1
        found: dict[str, str] = {}
        for name, indexes in wanted.items():
            try:
                found.update(self._check_run(name, indexes))
            except (ComputeError, PyWrenConfigError, ValueError, KeyError) as exc:
                logger.warning(
                    "could not check Code Engine job run %s for lost calls (next try in %g s): %s",
                    name,
                    self.interval,
                    exc,
                )
        return found

    def _check_run(self, name: str, indexes: set[int]) -> dict[str, str]:
        ids = {i: batch.activation_id(name, i) for i in indexes}
        if all(aid in self._reasons for aid in ids.values()):
            return {aid: self._reasons[aid] for aid in ids.values()}
        response = self.client.request("GET", self.client.url("job_runs", name), ok=(200, 404))
        if response.status_code == 404:
            gone = (
                f"Code Engine job run {name} no longer exists (deleted by cancel() or in the console) and these "
                "calls wrote no final status; submit them again"
            )
            return {aid: self._reasons.setdefault(aid, gone) for aid in ids.values()}
        if response.status_code != 200:
            raise ComputeError(f"Code Engine answered GET job run {name} with {describe(response)}")
        run = response.json()
        details = run.get("status_details") or {}
        failed = _index_ranges(details.get("failed_indices"))
        succeeded = _index_ranges(details.get("succeeded_indices"))
        per_index = details.get("indices_details") or {}
        found: dict[str, str] = {}
        delete_run = False
        for index, aid in ids.items():
            if aid in self._reasons:
                found[aid] = self._reasons[aid]
                continue
            detail = per_index.get(str(index)) or {}
            why = str(detail.get("last_failure_reason") or "")
            reason = None
            if index in failed:
                reason = self._failure(name, index, why, run)
            elif index in succeeded:
                reason = (
                    f"instance {index} of job run {name} exited successfully but these calls wrote no final status "
                    "(the process exited early, e.g. os._exit(0)); check that instances write to the storage "
                    "this client reads"
                )
            elif why in PULL_ERRORS:
                first = self._pull_errors.setdefault(aid, time.monotonic())
                if time.monotonic() - first >= float(self.settings["image_pull_timeout"]):
                    reason = (
                        f"instance {index} of job run {name} cannot start: {why}. Check the image "
                        f"{run.get('image_reference') or self.runtime!r} ('code_engine.runtime') and "
                        "'code_engine.image_secret'; the job run was deleted so that it cannot run later"
                    )
                    delete_run = True
            elif run.get("status") in FINISHED:
                reason = f"job run {name} ended ({run.get('status')}) before instance {index} ran these calls"
            if reason:
                found[aid] = self._reasons[aid] = reason
        pulling = any(str((d or {}).get("last_failure_reason") or "") in PULL_ERRORS for d in per_index.values())
        stalled = (
            None if run.get("status") in FINISHED or pulling else self._start_stalled(name, details, succeeded, failed)
        )
        if stalled:
            for aid in ids.values():
                found.setdefault(aid, self._reasons.setdefault(aid, stalled))
            delete_run = True
        if delete_run:
            self.client.request("DELETE", self.client.url("job_runs", name), ok=(200, 202, 204, 404))
        if (run.get("status") in FINISHED or delete_run) and name not in self._secrets_deleted:
            self._delete_secret(name)
        return found

    def _start_stalled(self, name: str, details: dict[str, Any], succeeded: set[int], failed: set[int]) -> str | None:
        """Why no instance of the run started within ``code_engine.start_timeout`` seconds, once none has; else None."""
        limit = self.settings["start_timeout"]
        if limit is None or int(details.get("running") or 0) or succeeded or failed:
            self._unstarted.pop(name, None)
            return None
        first = self._unstarted.setdefault(name, time.monotonic())
        if time.monotonic() - first < float(limit):
            return None
        return (
            f"no instance of job run {name} started within 'code_engine.start_timeout' = {float(limit):g} s "
            f"({details.get('pending', '?')} pending of {details.get('requested', '?')}): the project's quota or "
            "the region's capacity is used up (`ibmcloud ce jobrun get --name "
            f"{name}` shows why); free it or raise 'code_engine.start_timeout'. The job run was deleted so that it "
            "cannot run later"
        )

    def _failure(self, name: str, index: int, why: str, run: dict[str, Any]) -> str:
        memory = run.get("scale_memory_limit")
        head = f"Code Engine reports instance {index} of job run {name} failed ({why or 'no reason given'})"
        if why == "OOMKilled":
            return (
                f"{head}: the calls needed more than the instance memory of {memory}; raise runtime_memory "
                "(with a CPU size that accepts it, 'code_engine.cpu')"
            )
        if why in ("DeadlineExceeded", "ExceededMaxExecutionTime"):
            return (
                f"{head}: it ran past scale_max_execution_time of {run.get('scale_max_execution_time')} s "
                "(calls_per_instance x timeout + deadline_margin); raise the timeout or lower "
                "'code_engine.calls_per_instance'"
            )
        if why.startswith("ContainerExitedCode"):
            return (
                f"{head}: the process exited before these calls wrote a final status (os._exit, a fatal signal, or "
                f"memory beyond {memory})"
            )
        return f"{head} before these calls wrote a final status; submit them again"

    # -------------------------------------------------- cancel and clean
    def _delete_secret(self, name: str) -> None:
        response = self.client.request("DELETE", self.client.url("secrets", name), ok=(200, 202, 204, 404))
        if response.status_code in (200, 202, 204, 404):
            self._secrets_deleted.add(name)

    def _runs_of(self, executor_id: str, job_id: str | None = None) -> list[dict[str, Any]]:
        prefix = run_name(self.settings["job_prefix"], executor_id, job_id or "")
        runs: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            params = {"limit": 100, **({"start": start} if start else {})}
            response = self.client.request("GET", self.client.url("job_runs"), ok=(200,), params=params)
            if response.status_code != 200:
                raise ComputeError(f"Code Engine answered the job run list with {describe(response)}")
            body = response.json()
            runs.extend(r for r in body.get("job_runs") or [] if str(r.get("name", "")).startswith(prefix))
            start = (body.get("next") or {}).get("start")
            if not start:
                return runs

    def cancel(self, executor_id: str, job_id: str | None = None) -> int:
        """Delete the unfinished job runs; record their calls without a final status as cancelled."""
        cancelled = 0
        for run in self._runs_of(executor_id, job_id):
            if run.get("status") in FINISHED:
                continue
            name = run["name"]
            self.client.request("DELETE", self.client.url("job_runs", name), ok=(200, 202, 204, 404))
            self._delete_secret(name)
            cancelled += 1
            with self._lock:
                entry = self._jobs.get(name)
            if entry is not None:
                batch.record_cancelled(
                    entry["job"],
                    entry["calls"],
                    int(self.settings["calls_per_instance"]),
                    name,
                    f"Code Engine job run {name} deleted",
                )
        return cancelled

    def clean(self, executor_id: str) -> int:
        """Delete this executor's finished job runs and their secrets; how many runs."""
        try:
            runs = self._runs_of(executor_id)
        except (ComputeError, PyWrenConfigError) as exc:
            logger.warning("could not list the Code Engine job runs of executor %s: %s", executor_id, exc)
            return 0
        removed = 0
        for run in runs:
            if run.get("status") in FINISHED:
                self.client.request("DELETE", self.client.url("job_runs", run["name"]), ok=(200, 202, 204, 404))
                self._delete_secret(run["name"])
                removed += 1
        return removed

    def close(self) -> None:
        self.client.close()


def _index_ranges(text: str | None) -> set[int]:
    found: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if part:
            first, _, last = part.partition("-")
            found.update(range(int(first), int(last or first) + 1))
    return found
