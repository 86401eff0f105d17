"""Kubernetes compute: one ``batch/v1`` Job in Indexed completion mode per PyWren job.

Submitting a job of N calls costs three API requests whatever N: a Secret holding the job's
payload (its fields, storage credentials included, and the calls' byte ranges, compressed),
the Job, and a patch making the Job the Secret's owner (so deleting the Job, or its
``ttlSecondsAfterFinished``, also removes the Secret). The Job has
``ceil(N / k8s.calls_per_pod)`` completions and at most ``k8s.parallelism`` pods at once;
the pod of completion index ``i`` runs calls ``[i * calls_per_pod, (i + 1) * calls_per_pod)``
one after another with the runtime image's command (``python -m airflow_pywren.executor.worker``,
which picks the batch worker when its payload file is mounted: :mod:`..worker.batch`).

Per pod: the container memory request and limit are the job's ``runtime_memory`` (MiB), the CPU
request ``k8s.cpu``; ``activeDeadlineSeconds`` is ``calls_per_pod * timeout + k8s.deadline_margin``
(each call also stops itself at its own timeout). The Job's own ``activeDeadlineSeconds`` is one pod
deadline per wave of ``k8s.parallelism`` pods plus ``k8s.start_timeout``, so that Kubernetes ends
a Job whose pods wait for room even when no client watches it. ``backoffLimitPerIndex: 0`` and
``restartPolicy: Never``: a failed pod fails only its own index and no call runs twice.
The pods get no service account token unless ``k8s.service_account`` is set, and meet Pod Security's
``restricted`` profile (non-root user ``k8s.run_as_user``, the runtime's default seccomp profile, no
privilege escalation, no capabilities).

Labels on the Job, its pods and the Secret: ``app.kubernetes.io/managed-by=airflow-pywren``,
``airflow-pywren/executor-id`` and ``airflow-pywren/job-id``. A call's activation id is
``{job name}/{completion index}``.

Lost calls (checked every ``k8s.lost_check_interval`` seconds, two requests per job with
pending calls: GET the Job, LIST its pods by label): a pod that ended (OOMKilled, exit code,
DeadlineExceeded, Evicted, deleted) or cannot start (image pull errors, for
``k8s.image_pull_timeout`` seconds; the Job is then deleted so that it cannot run later) fails
the calls of its index that have no final status, with the pod's reason; so does a Job that
no longer exists, and a Job none of whose pods reached a node within ``k8s.start_timeout``
seconds (unschedulable, or refused by a quota or Pod Security: the Job's ``FailedCreate`` event
is quoted when the credentials may list events; the Job is deleted). ``cancel()`` deletes the
Job (and records the cancelled calls); ``clean()`` deletes the executor's finished Jobs and
their Secrets.

Credentials: ``k8s.kubeconfig_dict`` (a kubeconfig as a mapping, e.g. from an Airflow
``kubernetes`` connection), else in-cluster config (``k8s.in_cluster``, or automatically inside
a pod with no kubeconfig), else the kubeconfig file (``k8s.kubeconfig``, ``$KUBECONFIG``,
``~/.kube/config``) with ``k8s.context``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_pywren.executor.compute.base import ComputeBackend, Invocation, PendingCall
from airflow_pywren.executor.config import Config, Setting
from airflow_pywren.executor.errors import ComputeError, PyWrenConfigError
from airflow_pywren.executor.worker import batch

logger = logging.getLogger(__name__)

MANAGED_BY = "airflow-pywren"
LABEL_EXECUTOR = "airflow-pywren/executor-id"
LABEL_JOB = "airflow-pywren/job-id"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
PAYLOAD_DIR = "/var/run/airflow-pywren"
PAYLOAD_KEY = "payload"
SECRET_LIMIT = 1_000_000  # bytes: a Secret holds at most 1 MiB
CONTAINER_NAME = "pywren"
PULL_ERRORS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
PERMANENT_START_ERRORS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")

RBAC_RULES = (
    ("batch", "jobs", ("create", "get", "list", "delete")),
    ("", "pods", ("list",)),
    ("", "pods/log", ("get",)),
    ("", "secrets", ("create", "patch", "deletecollection")),
)
"""What the backend's credentials need in ``k8s.namespace`` (a namespaced Role): see the README."""
OPTIONAL_RBAC_RULES = (("", "events", ("list",)),)
"""Used when granted: the reason of a Job that creates no pod quotes its ``FailedCreate`` event."""


def _short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def job_name(prefix: str, executor_id: str, job_id: str) -> str:
    """A DNS-1123 name for the Job (and its Secret), at most 52 characters so that pod names fit."""
    raw = f"{prefix}-{executor_id}-{job_id}".lower()
    name = _NAME_CHARS.sub("-", raw).strip("-")
    if len(name) > 52 or name != raw:
        name = f"{name[:43].rstrip('-')}-{_short_hash(raw)}"
    return name


def label_value(value: str) -> str:
    """A valid label value (at most 63 characters of ``[A-Za-z0-9_.-]``); long or odd ids get a hash."""
    clean = _LABEL_CHARS.sub("-", value).strip("-_.")
    if clean == value and len(value) <= 63:
        return value
    return f"{clean[:54].strip('-_.')}-{_short_hash(value)}"


def load_api_client(settings: dict[str, Any]) -> Any:
    """A ``kubernetes.client.ApiClient`` from the ``k8s`` section's credentials (see the module docstring)."""
    try:
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException
    except ImportError as exc:
        raise PyWrenConfigError(
            "compute_backend 'k8s' needs the kubernetes client: pip install 'airflow-pywren[k8s]'"
        ) from exc
    configuration = client.Configuration()
    in_cluster = settings.get("in_cluster")
    kubeconfig = settings.get("kubeconfig") or os.environ.get("KUBECONFIG")
    default_file = os.path.expanduser("~/.kube/config")
    if in_cluster is None:
        in_cluster = (
            not settings.get("kubeconfig_dict")
            and not kubeconfig
            and not os.path.exists(default_file)
            and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        )
    try:
        if settings.get("kubeconfig_dict"):
            kube_config.load_kube_config_from_dict(
                settings["kubeconfig_dict"], context=settings.get("context"), client_configuration=configuration
            )
            source = "'k8s.kubeconfig_dict'"
        elif in_cluster:
            kube_config.load_incluster_config(client_configuration=configuration)
            source = "the in-cluster service account"
        else:
            path = os.path.expanduser(kubeconfig.split(os.pathsep)[0]) if kubeconfig else default_file
            kube_config.load_kube_config(
                config_file=path, context=settings.get("context"), client_configuration=configuration
            )
            source = f"kubeconfig {path}"
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        raise PyWrenConfigError(
            f"compute_backend 'k8s' could not load Kubernetes credentials: {exc}; set 'k8s.kubeconfig' (a file), "
            "'k8s.context', 'k8s.in_cluster: true' inside a cluster, or use an Airflow kubernetes connection"
        ) from exc
    if settings.get("verify_tls") is False:
        configuration.verify_ssl = False
        logger.warning("k8s.verify_tls is false: the API server's certificate at %s is not checked", configuration.host)
    logger.debug("kubernetes credentials from %s (%s)", source, configuration.host)
    return client.ApiClient(configuration)


def _index_ranges(text: str | None) -> set[int]:
    """``"1,3-5"`` (a Job's ``completedIndexes``/``failedIndexes``) as a set."""
    found: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


class KubernetesCompute(ComputeBackend):
    """Runs each job as an Indexed Kubernetes Job; each pod runs a slice of the calls."""

    name = "k8s"
    settings_schema: ClassVar[dict[str, Setting]] = {
        "kubeconfig": Setting((str, type(None)), None, "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"),
        "context": Setting((str, type(None)), None, "kubeconfig context (default: the current context)"),
        "kubeconfig_dict": Setting(
            (dict, type(None)), None, "a kubeconfig as a mapping (an Airflow kubernetes connection's)"
        ),
        "in_cluster": Setting(
            (bool, type(None)), None, "use the pod's service account (default: when in a pod with no kubeconfig)"
        ),
        "namespace": Setting((str,), "default", "namespace of the Jobs"),
        "verify_tls": Setting((bool,), True, "verify the API server's TLS certificate (false only for test clusters)"),
        "runtime": Setting((str,), "airflowpywren/runtime:latest", "runtime image of the pods"),
        "image_pull_policy": Setting(
            (str, type(None)),
            None,
            "Always, IfNotPresent or Never (default: Kubernetes')",
            ("Always", "IfNotPresent", "Never"),
        ),
        "image_pull_secret": Setting((str, type(None)), None, "Secret with the registry credentials of the image"),
        "service_account": Setting(
            (str, type(None)), None, "service account of the pods (default: none, no API token)"
        ),
        "node_selector": Setting((dict, type(None)), None, "node labels the pods must run on"),
        "cpu": Setting((str, int, float), "1", "CPU request of each pod"),
        "calls_per_pod": Setting((int,), 10, "calls each pod runs one after another", minimum=1),
        "parallelism": Setting((int,), 100, "pods of one job running at once", minimum=1),
        "deadline_margin": Setting(
            (int, float),
            120,
            "seconds added to calls_per_pod x timeout for a pod's activeDeadlineSeconds (start-up, image pull)",
            minimum=0,
        ),
        "image_pull_timeout": Setting(
            (int, float), 120, "seconds a pod may fail to pull its image before its calls fail", minimum=0
        ),
        "start_timeout": Setting(
            (int, float, type(None)),
            600,
            "seconds a Job may have no pod on a node (unschedulable, or its pods refused: a quota, Pod Security) "
            "before its calls fail; also the Job's own deadline beyond its pods' (null: wait, no Job deadline)",
            minimum=0,
        ),
        "run_as_user": Setting(
            (int, type(None)), 1000, "user id of the pods' container (null: the image's user, which must not be root)"
        ),
        "ttl_after_finished": Setting(
            (int, type(None)), 3600, "seconds Kubernetes keeps a finished Job (null: until clean())", minimum=0
        ),
        "job_prefix": Setting((str,), "pywren", "prefix of the Job names"),
        "lost_check_interval": Setting(
            (int, float), 10, "seconds between checks of the pods of jobs with calls pending", minimum=0
        ),
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.settings: dict[str, Any] = config["k8s"]
        self.namespace: str = self.settings["namespace"]
        self.runtime: str = config["pywren"].get("runtime") or self.settings["runtime"]
        self.api_client = load_api_client(self.settings)
        from kubernetes import client

        self.batch_api: Any = client.BatchV1Api(self.api_client)  # dict bodies, objects read loosely
        self.core_api: Any = client.CoreV1Api(self.api_client)
        self.interval = float(self.settings["lost_check_interval"])
        self.checks = 0
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}  # jobs invoked here: payload fields and calls
        self._reasons: dict[str, str] = {}  # activation id -> reason, once a pod's end is known
        self._pull_errors: dict[str, float] = {}  # pod name -> when a start error was first seen
        self._unplaced: dict[str, float] = {}  # Job name -> when it was first seen with no pod on a node

    # ------------------------------------------------------------- errors
    def _api_error(self, exc: Exception, what: str) -> Exception:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException):
            detail = _status_message(exc)
            if exc.status == 401:
                return PyWrenConfigError(
                    f"Kubernetes at {self.api_client.configuration.host} rejected the credentials "
                    f"to {what} ({detail}); check 'k8s.kubeconfig' / 'k8s.context'"
                )
            if exc.status == 403:
                return PyWrenConfigError(
                    f"the Kubernetes credentials may not {what} in namespace {self.namespace!r} ({detail}); grant the "
                    "Role in the README (jobs: create/get/list/delete; pods: list; pods/log: get; "
                    "secrets: create/patch/deletecollection)"
                )
            return ComputeError(f"Kubernetes refused to {what}: HTTP {exc.status} {detail}")
        return ComputeError(f"cannot reach Kubernetes at {self.api_client.configuration.host} to {what}: {exc}")

    # ------------------------------------------------------------- checks
    def check(self) -> None:
        """One LIST of this executor's Jobs: verifies the endpoint, credentials, namespace and RBAC."""
        try:
            self.batch_api.list_namespaced_job(
                self.namespace, label_selector=f"{LABEL_MANAGED}={MANAGED_BY}", limit=1, _request_timeout=30
            )
        except Exception as exc:
            raise self._api_error(exc, "list Jobs") from exc

    # ----------------------------------------------------------- invoke
    def labels(self, executor_id: str, job_id: str) -> dict[str, str]:
        return {LABEL_MANAGED: MANAGED_BY, LABEL_EXECUTOR: label_value(executor_id), LABEL_JOB: label_value(job_id)}

    def selector(self, executor_id: str, job_id: str | None = None) -> str:
        labels = self.labels(executor_id, job_id or "")
        if job_id is None:
            labels.pop(LABEL_JOB)
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def job_body(self, name: str, job: dict[str, Any], calls: int, labels: dict[str, str]) -> dict[str, Any]:
        """The Job of a PyWren job of ``calls`` calls."""
        per = int(self.settings["calls_per_pod"])
        pods = math.ceil(calls / per)
        memory = int(job["runtime_memory"])
        deadline = int(math.ceil(per * float(job.get("timeout") or 0) + float(self.settings["deadline_margin"])))
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": self.runtime,
            "env": [{"name": batch.PAYLOAD_FILE_ENV, "value": f"{PAYLOAD_DIR}/{PAYLOAD_KEY}"}],
            "resources": {
                "requests": {"memory": f"{memory}Mi", "cpu": str(self.settings["cpu"])},
                "limits": {"memory": f"{memory}Mi"},
            },
            "volumeMounts": [{"name": "payload", "mountPath": PAYLOAD_DIR, "readOnly": True}],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
        if self.settings["image_pull_policy"]:
            container["imagePullPolicy"] = self.settings["image_pull_policy"]
        security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        if self.settings["run_as_user"] is not None:
            security["runAsUser"] = int(self.settings["run_as_user"])
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": max(1, deadline),
            "securityContext": security,  # Pod Security's "restricted" profile
            "containers": [container],
            "volumes": [{"name": "payload", "secret": {"secretName": name}}],
        }
        if self.settings["service_account"]:
            pod_spec["serviceAccountName"] = self.settings["service_account"]
        else:
            pod_spec["automountServiceAccountToken"] = False
        if self.settings["image_pull_secret"]:
            pod_spec["imagePullSecrets"] = [{"name": self.settings["image_pull_secret"]}]
        if self.settings["node_selector"]:
            pod_spec["nodeSelector"] = {str(k): str(v) for k, v in self.settings["node_selector"].items()}
        annotations = {
            LABEL_EXECUTOR: job["executor_id"],
            LABEL_JOB: job["job_id"],
            "airflow-pywren/calls": str(calls),
            "airflow-pywren/calls-per-pod": str(per),
        }
        parallelism = min(pods, int(self.settings["parallelism"]))
        spec: dict[str, Any] = {
            "completionMode": "Indexed",
            "completions": pods,
            "parallelism": parallelism,
            "backoffLimitPerIndex": 0,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        }
        if self.settings["start_timeout"] is not None:
            # Kubernetes itself ends the Job, with or without a client watching it
            waves = math.ceil(pods / parallelism)
            spec["activeDeadlineSeconds"] = waves * max(1, deadline) + int(math.ceil(self.settings["start_timeout"]))
        if self.settings["ttl_after_finished"] is not None:
            spec["ttlSecondsAfterFinished"] = int(self.settings["ttl_after_finished"])
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels, "annotations": annotations},
            "spec": spec,
        }

    def invoke(self, job: dict[str, Any], calls: Sequence[dict[str, Any]]) -> list[Invocation]:
        """Create the job's Secret and Job (three requests); one activation id per completion index."""
        executor_id, job_id = job["executor_id"], job["job_id"]
        name = job_name(self.settings["job_prefix"], executor_id, job_id)
        per = int(self.settings["calls_per_pod"])
        payload = batch.encode_payload(job, calls, per, name)
        if len(payload) > SECRET_LIMIT:
            raise ComputeError(
                f"job {job_id} of {len(calls)} calls needs a payload of {len(payload)} bytes, more than "
                f"a Kubernetes Secret holds ({SECRET_LIMIT}); split the map into smaller maps"
            )
        labels = self.labels(executor_id, job_id)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "stringData": {PAYLOAD_KEY: payload},
        }
        try:
            self.core_api.create_namespaced_secret(self.namespace, secret, _request_timeout=60)
            created = self.batch_api.create_namespaced_job(
                self.namespace, self.job_body(name, job, len(calls), labels), _request_timeout=60
            )
        except Exception as exc:
            self._delete_secrets(self.selector(executor_id, job_id))
            raise self._api_error(exc, f"create Job {name}") from exc
        owner = {
            "metadata": {
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": created.metadata.uid,
                        "blockOwnerDeletion": False,
                    }
                ]
            }
        }
        try:
            self.core_api.patch_namespaced_secret(name, self.namespace, owner, _request_timeout=60)
        except Exception as exc:  # the Job runs anyway; clean() removes the Secret by its labels
            logger.warning("could not make Job %s the owner of its Secret: %s", name, self._api_error(exc, "patch"))
        with self._lock:
            self._jobs[(executor_id, job_id)] = {"job": job, "calls": [c["call_id"] for c in calls], "name": name}
        pods = math.ceil(len(calls) / per)
        logger.info(
            "job %s: Kubernetes Job %s in namespace %s, %d pod(s) of up to %d call(s)",
            job_id,
            name,
            self.namespace,
            pods,
            per,
        )
        return [
            Invocation(call["call_id"], batch.activation_id(name, index // per)) for index, call in enumerate(calls)
        ]

    # ---------------------------------------------------------- lost calls
    def lost_activations(self, pending: Sequence[PendingCall]) -> dict[str, str]:
        """Pending calls whose pod ended, was deleted or cannot start, or whose Job is gone: ``{activation_id: reason}``."""
        wanted: dict[str, set[int]] = {}
        for call in pending:
            if not call.activation_id or "/" not in call.activation_id:
                continue
            name, _, index = call.activation_id.rpartition("/")
            if index.isdigit():
                wanted.setdefault(name, set()).add(int(index))
        if not wanted or time.monotonic() < self._next_check:
            return {}
        self._next_check = time.monotonic() + self.interval
        self.checks += 1
        reasons: dict[str, str] = {}
        for name, indexes in wanted.items():
            try:
                reasons.update(self._check_job(name, indexes))
            except Exception as exc:
                logger.warning(
                    "could not check Kubernetes Job %s for lost calls (next try in %g s): %s",
                    name,
                    self.interval,
                    self._api_error(exc, f"read Job {name}"),
                )
        return reasons

    def _check_job(self, name: str, indexes: set[int]) -> dict[str, str]:
        from kubernetes.client.exceptions import ApiException

        known = {
            i: self._reasons[batch.activation_id(name, i)]
            for i in indexes
            if batch.activation_id(name, i) in self._reasons
        }
        if len(known) == len(indexes):
            return {batch.activation_id(name, i): r for i, r in known.items()}
        try:
            job = self.batch_api.read_namespaced_job(name, self.namespace, _request_timeout=30)
        except ApiException as exc:
            if exc.status != 404:
                raise
            gone = (
                f"Kubernetes Job {name} no longer exists in namespace {self.namespace} (deleted by cancel(), "
                "kubectl delete or its ttlSecondsAfterFinished) and these calls wrote no final status; "
                "submit them again"
            )
            return {batch.activation_id(name, i): known.get(i, gone) for i in indexes}
        pods = self.core_api.list_namespaced_pod(
            self.namespace, label_selector=f"job-name={name}", _request_timeout=30
        ).items
        by_index: dict[int, list[Any]] = {}
        for pod in pods:
            index = (pod.metadata.annotations or {}).get(INDEX_ANNOTATION)
            if index is not None and str(index).isdigit():
                by_index.setdefault(int(index), []).append(pod)
        status = job.status
        failed_indexes = _index_ranges(getattr(status, "failed_indexes", None))
        completed = _index_ranges(getattr(status, "completed_indexes", None))
        finished = _job_finished(job)
        found: dict[str, str] = {}
        start_failed = False
        for index in indexes:
            aid = batch.activation_id(name, index)
            if index in known:
                found[aid] = known[index]
                continue
            candidates = by_index.get(index, [])
            reason: str | None = None
            for pod in sorted(candidates, key=lambda p: p.metadata.creation_timestamp or 0, reverse=True):
                reason, permanent_start = self._pod_reason(pod, job)
                start_failed = start_failed or permanent_start
                if reason:
                    break
            if reason is None and not candidates:
                if finished == JOB_DEADLINE_EXCEEDED:  # its controller deleted the pods that had not ended
                    reason = _job_deadline_reason(name, job)
                elif index in failed_indexes:
                    reason = (
                        f"the pod of index {index} of Job {name} was deleted before its calls ended "
                        "(the Job lists the index as failed); submit the calls again"
                    )
                elif index in completed:
                    reason = (
                        f"the pod of index {index} of Job {name} succeeded but these calls wrote no final status, "
                        "and the pod is gone; check that the pods write to the storage this client reads"
                    )
                elif finished:
                    reason = f"Job {name} ended ({finished}) before the pod of index {index} ran these calls"
            if reason:
                found[aid] = self._reasons[aid] = reason
        waiting = [i for i in indexes if batch.activation_id(name, i) not in found]
        if waiting and not start_failed and not finished:
            stalled = self._start_stalled(name, job, pods, failed_indexes | completed)
            if stalled:
                for index in waiting:
                    aid = batch.activation_id(name, index)
                    found[aid] = self._reasons[aid] = stalled
                start_failed = True
        if start_failed:
            self._delete_job(name)
        return found

    def _start_stalled(self, name: str, job: Any, pods: list[Any], ended: set[int]) -> str | None:
        """Why no pod of the Job reached a node within ``k8s.start_timeout`` seconds, once it has not; else None.

        Pods waiting for room while others of the Job run (or ran) are not counted: the cluster is busy, not
        unable. A Job none of whose pods is placed is: no node fits them (node selector, memory or CPU
        requests, taints), or the API refuses to create them (a ResourceQuota, a LimitRange, Pod Security).
        """
        limit = self.settings["start_timeout"]
        placed = bool(ended) or any(pod.spec.node_name or pod.status.phase not in ("Pending", None) for pod in pods)
        if limit is None or placed:
            self._unplaced.pop(name, None)
            return None
        first = self._unplaced.setdefault(name, time.monotonic())
        if time.monotonic() - first < float(limit):
            return None
        pending = next(iter(sorted(pods, key=lambda p: p.metadata.name)), None)
        if pending is not None:
            scheduled = next((c for c in pending.status.conditions or [] if c.type == "PodScheduled"), None)
            spec = job.spec.template.spec
            container = spec.containers[0]
            requests = (container.resources.requests or {}) if container.resources else {}
            why = (
                f"pod {pending.metadata.name} is Pending ({getattr(scheduled, 'reason', None) or 'not scheduled'}: "
                f"{getattr(scheduled, 'message', None) or 'no message'}); check 'k8s.node_selector' "
                f"({spec.node_selector or 'none'}) and that a node can fit a pod requesting "
                f"{requests.get('memory', '?')} memory (runtime_memory) and {requests.get('cpu', '?')} CPU ('k8s.cpu')"
            )
        else:
            event = self._failed_create_event(name)
            why = (
                f"the Job created no pod ({event})"
                if event
                else "the Job created no pod: the API refuses them (a ResourceQuota, a LimitRange or the namespace's "
                f"Pod Security level; `kubectl describe job {name} -n {self.namespace}` shows why, and allowing "
                "'list' on events lets this message quote it)"
            )
        return (
            f"no pod of Job {name} reached a node within 'k8s.start_timeout' = {float(limit):g} s: {why}; or raise "
            "'k8s.start_timeout'. The Job was deleted so that it cannot run later"
        )

    def _failed_create_event(self, name: str) -> str | None:
        """The newest ``FailedCreate`` event of the Job (its message says why its pods are refused), if readable."""
        try:
            events = self.core_api.list_namespaced_event(
                self.namespace,
                field_selector=f"involvedObject.kind=Job,involvedObject.name={name}",
                _request_timeout=30,
            ).items
        except Exception as exc:  # the Role need not allow it
            logger.debug("could not read the events of Job %s: %s", name, exc)
            return None
        refused = [e for e in events if e.reason == "FailedCreate"]
        if not refused:
            return None
        newest = max(
            refused, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or "")
        )
        return f"FailedCreate: {newest.message}"

    def _pod_reason(self, pod: Any, job: Any) -> tuple[str | None, bool]:
        """Why this pod's calls will never write their statuses, if they will not; and whether it cannot start."""
        status = pod.status
        name = pod.metadata.name
        phase = status.phase
        container = next(iter(status.container_statuses or []), None)
        state = container.state if container is not None else None
        if phase in ("Pending", None) and state is not None and state.waiting is not None:
            waiting = state.waiting
            if waiting.reason in PULL_ERRORS:
                first = self._pull_errors.setdefault(name, time.monotonic())
                permanent = waiting.reason in PERMANENT_START_ERRORS
                if permanent or time.monotonic() - first >= float(self.settings["image_pull_timeout"]):
                    image = getattr(container, "image", None) or self.runtime
                    return (
                        f"pod {name} cannot start: {waiting.reason}: {waiting.message or ''}".rstrip(": ")
                        + f". Check the image {image!r} ('k8s.runtime' / the runtime argument) and "
                        "'k8s.image_pull_secret'; the Job was deleted so that it cannot run later",
                        True,
                    )
            return None, False
        if phase not in ("Failed", "Succeeded"):
            return None, False
        terminated = state.terminated if state is not None else None
        disruption = next(
            (c for c in (status.conditions or []) if c.type == "DisruptionTarget" and c.status == "True"), None
        )
        memory = _memory_limit(pod)
        if terminated is not None and terminated.reason == "OOMKilled":
            return (
                f"Kubernetes killed pod {name} (OOMKilled, exit code {terminated.exit_code}): the calls needed more "
                f"than the container memory limit of {memory}; raise runtime_memory",
                False,
            )
        if status.reason == "DeadlineExceeded":
            deadline = pod.spec.active_deadline_seconds
            return (
                f"pod {name} ran past its activeDeadlineSeconds of {deadline} s (k8s.calls_per_pod x timeout + "
                f"k8s.deadline_margin) and was stopped (DeadlineExceeded: {status.message or ''}); raise the "
                "timeout, k8s.deadline_margin, or lower k8s.calls_per_pod",
                False,
            )
        if status.reason == "Evicted":
            return (
                f"pod {name} was evicted ({status.message or 'no message'}); submit the calls again, or give the "
                "pods more room (runtime_memory, nodes with more free memory or disk)",
                False,
            )
        if disruption is not None:
            return (
                f"pod {name} was stopped by Kubernetes ({disruption.reason}: {disruption.message or ''}) before "
                "these calls ended; submit them again",
                False,
            )
        if terminated is not None:
            code = terminated.exit_code
            detail = f"exit code {code}" + (f", {terminated.reason}" if terminated.reason else "")
            tail = self._log_tail(name) if code else ""
            return (
                f"pod {name} exited ({detail}) before these calls wrote a final status (the process exited or was "
                f"killed: os._exit, a fatal signal, or memory beyond {memory})"
                + (f". Last log lines: {tail}" if tail else ""),
                False,
            )
        return (
            f"pod {name} ended ({phase}: {status.reason or ''} {status.message or ''}) before these calls wrote a "
            "final status",
            False,
        )

    def _log_tail(self, pod_name: str) -> str:
        try:
            text = self.core_api.read_namespaced_pod_log(
                pod_name, self.namespace, container=CONTAINER_NAME, tail_lines=5, _request_timeout=30
            )
        except Exception:
            return ""
        return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())[-800:]

    # ------------------------------------------------------ cancel, clean
    def _delete_job(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch_api.delete_namespaced_job(
                name, self.namespace, propagation_policy="Background", _request_timeout=60
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._api_error(exc, f"delete Job {name}") from exc

    def _delete_secrets(self, selector: str) -> None:
        try:
            self.core_api.delete_collection_namespaced_secret(
                self.namespace, label_selector=selector, _request_timeout=60
            )
        except Exception as exc:
            logger.warning("could not delete Secrets %s: %s", selector, exc)

    def cancel(self, executor_id: str, job_id: str | None = None) -> int:
        """Delete the unfinished Jobs (their pods stop); record their calls without a final status as cancelled."""
        try:
            jobs = self.batch_api.list_namespaced_job(
                self.namespace, label_selector=self.selector(executor_id, job_id), _request_timeout=60
            ).items
        except Exception as exc:
            raise self._api_error(exc, "list Jobs") from exc
        cancelled = 0
        for job in jobs:
            if _job_finished(job):
                continue
            annotations = job.metadata.annotations or {}
            if self._delete_job(job.metadata.name):
                cancelled += 1
                self._record_cancelled(annotations.get(LABEL_EXECUTOR, executor_id), annotations.get(LABEL_JOB, ""))
        return cancelled

    def _record_cancelled(self, executor_id: str, job_id: str) -> None:
        """Fail the calls of a deleted Job invoked here that have no final status yet (CallCancelledError)."""
        with self._lock:
            entry = self._jobs.get((executor_id, job_id))
        if entry is not None:  # invoked elsewhere: the lost-call check reports the deleted Job
            batch.record_cancelled(
                entry["job"],
                entry["calls"],
                int(self.settings["calls_per_pod"]),
                entry["name"],
                f"Kubernetes Job {entry['name']} deleted",
            )

    def clean(self, executor_id: str) -> int:
        """Delete this executor's finished Jobs (with their pods) and its Secrets; how many Jobs."""
        selector = self.selector(executor_id)
        try:
            jobs = self.batch_api.list_namespaced_job(
                self.namespace, label_selector=selector, _request_timeout=60
            ).items
        except Exception as exc:
            logger.warning("could not list the Kubernetes Jobs of executor %s: %s", executor_id, exc)
            return 0
        removed = 0
        for job in jobs:
            if _job_finished(job) and self._delete_job(job.metadata.name):
                removed += 1
        if removed == len(jobs):
            self._delete_secrets(selector)
        return removed

    def close(self) -> None:
        self.api_client.close()


JOB_DEADLINE_EXCEEDED = "Failed: DeadlineExceeded"


def _job_deadline_reason(name: str, job: Any) -> str:
    return (
        f"Kubernetes stopped Job {name} at its activeDeadlineSeconds of {job.spec.active_deadline_seconds} s "
        "(each wave of 'k8s.parallelism' pods at its pods' deadline, plus 'k8s.start_timeout') before these calls "
        "ran: its pods waited that long for room on the cluster. Give the namespace room for 'k8s.parallelism' "
        "pods, or raise 'k8s.start_timeout'"
    )


def _job_finished(job: Any) -> str | None:
    """``"Complete"`` or ``"Failed: <reason>"`` once the Job has ended, else None."""
    for condition in (job.status.conditions or []) if job.status is not None else []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return condition.type if condition.type == "Complete" else f"Failed: {condition.reason}"
    return None


def _memory_limit(pod: Any) -> str:
    for container in pod.spec.containers or []:
        limits = (container.resources.limits or {}) if container.resources else {}
        if limits.get("memory"):
            return f"{limits['memory']}"
    return "the node's memory"


def _status_message(exc: Any) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.reason or "")
    return str(body.get("message") or exc.reason or "")
