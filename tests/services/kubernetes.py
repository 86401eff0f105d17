"""A Kubernetes-API test server and its pytest fixtures. It is a test server, NOT Kubernetes.

It answers the part of the public Kubernetes REST API that the ``k8s`` backend uses, closely
enough that the official ``kubernetes`` Python client works against it unchanged (through a
kubeconfig pointing at ``http://127.0.0.1:<port>`` with a bearer token):

* ``/apis/batch/v1/namespaces/{ns}/jobs`` (GET list with ``labelSelector``/``limit``, POST,
  DELETE collection) and ``.../jobs/{name}`` (GET, DELETE with ``propagationPolicy``);
* ``/api/v1/namespaces/{ns}/pods`` (GET list), ``.../pods/{name}`` (GET, DELETE),
  ``.../pods/{name}/log`` (GET, ``tailLines``);
* ``/api/v1/namespaces/{ns}/secrets`` (GET list, POST, DELETE collection) and
  ``.../secrets/{name}`` (GET, PATCH as a JSON merge, DELETE);
* ``/api/v1/namespaces/{ns}/events`` (GET list with ``fieldSelector`` on ``involvedObject.*``);
* errors as ``Status`` objects (401, 403, 404, 409, 422), optional RBAC per token
  (``add_token(rules=...)``: ``(api group, resource, verb)`` triples, 403 otherwise).

A job controller runs Indexed Jobs (``completions``, ``parallelism``, ``backoffLimitPerIndex``,
``completedIndexes``/``failedIndexes``, ``Complete``/``Failed`` conditions,
``ttlSecondsAfterFinished``, the Job's ``activeDeadlineSeconds``: its unended pods are deleted) and owner-based garbage collection (deleting a Job deletes its
pods and the Secrets it owns). One "node" (labels ``node_labels``) runs at most ``max_pods`` pods; the others, and pods whose
``nodeSelector`` it does not match, stay ``Pending`` (``Unschedulable``, with the scheduler's
message). A namespace may enforce Pod Security's ``restricted`` level or refuse every pod (as an
exhausted ResourceQuota does): the job controller then creates no pod and records a
``FailedCreate`` event on the Job with the API's message (``create_namespace``). A pod is a subprocess of the runtime image's command
(``python -m airflow_pywren.executor.worker``) with the container's environment
(``value`` and ``secretKeyRef``), ``JOB_COMPLETION_INDEX``, and its secret volumes written to
a per-pod directory (environment values under a mount path point there). So each pod runs
the real batch worker and handler. It never pulls images: an image not in ``images`` stays in
``ErrImagePull``/``ImagePullBackOff``. It enforces the container memory limit (resident
memory sampled every ``MEMORY_POLL`` s; ``OOMKilled``, exit code 137) and the pod's
``activeDeadlineSeconds`` (``DeadlineExceeded``); ``evict()`` evicts a pod (``Evicted``).

Standalone: ``python -m tests.services.kubernetes --port 6443`` prints a kubeconfig path.
"""

from __future__ import annotations

import argparse
import base64
import copy
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.services.processes import die_with_parent, serve_until_stopped
from tests.services.routing import APIRequestHandler, Route, normalized_path, resolve

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_RUNTIME = "airflowpywren/runtime:test"
MEMORY_POLL = 0.05
CONTROLLER_TICK = 0.05
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SECRET_LIMIT = 1024 * 1024
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    415: "UnsupportedMediaType",
    422: "Invalid",
}
# The collection path of each resource, as (API group, resource); a resource's own path and its
# subresources' (only ``pods/{name}/log`` is served) extend it.
COLLECTIONS = {
    ("batch", "jobs"): "/apis/batch/v1/namespaces/{namespace}/jobs",
    ("", "pods"): "/api/v1/namespaces/{namespace}/pods",
    ("", "secrets"): "/api/v1/namespaces/{namespace}/secrets",
    ("", "events"): "/api/v1/namespaces/{namespace}/events",
}
ROUTES: list[Route[tuple[str, str]]] = [
    Route(("GET", "POST", "PATCH", "DELETE"), pattern, resource)
    for resource, collection in COLLECTIONS.items()
    for pattern in (collection, f"{collection}/{{name}}", f"{collection}/{{name}}/{{subresource}}")
]
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
EVICTED_MESSAGE = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 12Mi."
SELECTOR_MESSAGE = (
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are "
    "available: 1 Preemption is not helpful for scheduling."
)


class APIError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def now_text(moment: float | None = None) -> str:
    return datetime.fromtimestamp(moment or time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_memory(quantity: str) -> int:
    """Bytes of a Kubernetes quantity (``256Mi``, ``1Gi``, ``500M``, ``1e9``)."""
    units = {
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
        "Ti": 1024**4,
        "k": 1000,
        "M": 1000**2,
        "G": 1000**3,
        "T": 1000**4,
    }
    match = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)([A-Za-z]*)", str(quantity).strip())
    if not match or (match.group(2) and match.group(2) not in units):
        raise APIError(422, f"quantities must match the regular expression: {quantity!r}")
    return int(float(match.group(1)) * units.get(match.group(2), 1))


def matches(labels: dict[str, str], selector: str | None) -> bool:
    for term in (selector or "").split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif labels.get(term) is None:
            return False
    return True


def field_matches(obj: dict[str, Any], selector: str | None) -> bool:
    """``involvedObject.kind=Job,involvedObject.name=x`` (a ``fieldSelector``) against an object."""
    for term in (selector or "").split(","):
        if "=" not in term:
            continue
        path, value = term.replace("==", "=").split("=", 1)
        found: Any = obj
        for part in path.strip().split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if str(found if found is not None else "") != value.strip():
            return False
    return True


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """What a pod spec lacks for Pod Security's ``restricted`` level (its checks on these fields, in its words)."""
    pod_security = pod_spec.get("securityContext") or {}
    found = []
    for container in pod_spec.get("containers") or []:
        name, security = container.get("name"), container.get("securityContext") or {}
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(
                f'allowPrivilegeEscalation != false (container "{name}" must set '
                "securityContext.allowPrivilegeEscalation=false)"
            )
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            found.append(
                f'unrestricted capabilities (container "{name}" must set securityContext.capabilities.drop=["ALL"])'
            )
        if not (security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))):
            found.append(f'runAsNonRoot != true (pod or container "{name}" must set securityContext.runAsNonRoot=true)')
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f'runAsUser=0 (container "{name}" must not set runAsUser=0)')
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(
                f'seccompProfile (pod or container "{name}" must set securityContext.seccompProfile.type to '
                '"RuntimeDefault" or "Localhost")'
            )
    return found


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def index_ranges(indexes: set[int]) -> str | None:
    """``{1, 3, 4, 5}`` -> ``"1,3-5"`` (the format of ``completedIndexes``)."""
    if not indexes:
        return None
    parts, ordered = [], sorted(indexes)
    start = prev = ordered[0]
    for value in ordered[1:] + [None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


class Pod:
    """One pod of a Job: its object and, once scheduled, its process."""

    def __init__(self, server: KubernetesTestServer, job: dict[str, Any], index: int) -> None:
        self.server = server
        self.job_uid = job["metadata"]["uid"]
        self.namespace = job["metadata"]["namespace"]
        self.index = index
        template = copy.deepcopy(job["spec"]["template"])
        name = f"{job['metadata']['name']}-{index}-{secrets.token_hex(3)[:5]}"
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "job-name": job["metadata"]["name"],
            "batch.kubernetes.io/job-name": job["metadata"]["name"],
            "controller-uid": self.job_uid,
            "batch.kubernetes.io/controller-uid": self.job_uid,
            "batch.kubernetes.io/job-completion-index": str(index),
        }
        annotations = {
            **(template.get("metadata", {}).get("annotations") or {}),
            "batch.kubernetes.io/job-completion-index": str(index),
        }
        self.created = time.time()
        self.obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "uid": str(uuid.uuid4()),
                "labels": labels,
                "annotations": annotations,
                "creationTimestamp": now_text(self.created),
                "resourceVersion": str(server.next_version()),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job["metadata"]["name"],
                        "uid": self.job_uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template["spec"], "nodeName": None, "hostname": f"{job['metadata']['name']}-{index}"},
            "status": {
                "phase": "Pending",
                "qosClass": "Burstable",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Too many pods.",
                    }
                ],
            },
        }
        self.name = name
        self.process: subprocess.Popen | None = None
        self.started: float | None = None
        self.ended = False
        self.kill_reason: tuple[str, ...] | None = None  # why the server killed it
        self.log_path = server.workdir / f"pod-{name}.log"

    @property
    def container(self) -> dict[str, Any]:
        return self.obj["spec"]["containers"][0]

    @property
    def phase(self) -> str:
        return self.obj["status"]["phase"]

    def container_status(self, state: dict[str, Any], ready: bool = False) -> list[dict[str, Any]]:
        return [
            {
                "name": self.container["name"],
                "image": self.container["image"],
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": ready,
                "state": state,
            }
        ]

    def set_waiting(self, reason: str, message: str) -> None:
        status = self.obj["status"]
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        ]
        status["containerStatuses"] = self.container_status({"waiting": {"reason": reason, "message": message}})
        status.setdefault("startTime", now_text())
        self.obj["spec"]["nodeName"] = "test-node"

    def start(self) -> None:
        """Schedule the pod: start its process, or leave it waiting for an image it cannot pull."""
        image = self.container["image"]
        self.started = time.time()
        if image not in self.server.images:
            self.set_waiting(
                "ErrImagePull",
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found',
            )
            return
        pod_dir = self.server.workdir / f"pod-{self.name}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYWREN_", "JOB_", "KUBERNETES_"))}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        env["HOME"] = str(pod_dir)
        env["HOSTNAME"] = self.obj["spec"]["hostname"]
        env["JOB_COMPLETION_INDEX"] = str(self.index)
        mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in self.obj["spec"].get("volumes") or []}
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            target = pod_dir / "mounts" / mount["name"]
            target.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                secret = self.server.secret(self.namespace, volume["secret"]["secretName"])
                if secret is None:
                    self.set_waiting(
                        "CreateContainerConfigError", f'secret "{volume["secret"]["secretName"]}" not found'
                    )
                    self.started = None
                    return
                for key, value in (secret.get("data") or {}).items():
                    (target / key).write_bytes(base64.b64decode(value))
            mounts[mount["mountPath"].rstrip("/")] = target
        for var in self.container.get("env") or []:
            if "value" in var:
                value = str(var["value"])
                for path, target in mounts.items():
                    if value == path or value.startswith(path + "/"):
                        value = str(target) + value[len(path) :]
                env[var["name"]] = value
            elif "secretKeyRef" in (var.get("valueFrom") or {}):
                ref = var["valueFrom"]["secretKeyRef"]
                secret = self.server.secret(self.namespace, ref["name"])
                if secret is None or ref["key"] not in (secret.get("data") or {}):
                    self.set_waiting("CreateContainerConfigError", f'secret "{ref["name"]}" not found')
                    self.started = None
                    return
                env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        command = [sys.executable, "-m", "airflow_pywren.executor.worker"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=pod_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.server.pods_started += 1
        status = self.obj["status"]
        status.update(
            {
                "phase": "Running",
                "startTime": now_text(self.started),
                "podIP": "127.0.0.1",
                "hostIP": "127.0.0.1",
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                "containerStatuses": self.container_status(
                    {"running": {"startedAt": now_text(self.started)}}, ready=True
                ),
            }
        )
        self.obj["spec"]["nodeName"] = "test-node"
        limit = ((self.container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit:
            threading.Thread(
                target=self._watch_memory, args=(parse_memory(limit),), daemon=True, name=f"k8s-pod-{self.name}-memory"
            ).start()

    def _watch_memory(self, limit: int) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while self.process is not None and self.process.poll() is None:
            try:
                with open(f"/proc/{self.process.pid}/statm") as statm:
                    resident = int(statm.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                return
            if resident > limit:
                self.kill(("OOMKilled",))
                return
            time.sleep(MEMORY_POLL)

    def kill(self, reason: tuple[str, ...]) -> None:
        """Stop the process; ``reason`` says how the pod ends (OOMKilled, DeadlineExceeded, Evicted, Deleted)."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def poll(self) -> bool:
        """Update the status of a running pod; True once it has ended."""
        if self.ended:
            return True
        deadline = self.obj["spec"].get("activeDeadlineSeconds")
        if self.started is not None and deadline and time.time() - self.started > float(deadline):
            if self.process is None:
                self.finish(None)  # still waiting for its image
                self.kill_reason = ("DeadlineExceeded",)
                self._end_with_reason()
                return True
            self.kill(("DeadlineExceeded",))
        if self.process is None:
            if self.kill_reason is not None:
                self._end_with_reason()
                return True
            return False
        code = self.process.poll()
        if code is None:
            return False
        self.finish(code)
        return True

    def finish(self, code: int | None) -> None:
        self.ended = True
        end = now_text()
        status = self.obj["status"]
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: the shell's convention Kubernetes reports
        reason = (self.kill_reason or ("",))[0]
        terminated = {
            "exitCode": code if code is not None else 137,
            "startedAt": status.get("startTime") or end,
            "finishedAt": end,
            "reason": "Completed" if code == 0 else "Error",
        }
        if reason == "OOMKilled":
            terminated["reason"] = "OOMKilled"
        status["containerStatuses"] = self.container_status({"terminated": terminated})
        status["phase"] = "Succeeded" if code == 0 and not reason else "Failed"
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "PodCompleted"},
        ]
        self._end_with_reason()

    def _end_with_reason(self) -> None:
        self.ended = True
        status = self.obj["status"]
        reason = (self.kill_reason or ("",))[0]
        if reason == "DeadlineExceeded":
            status.update({"phase": "Failed", "reason": "DeadlineExceeded", "message": DEADLINE_MESSAGE})
        elif reason == "Evicted":
            status.update({"phase": "Failed", "reason": "Evicted", "message": EVICTED_MESSAGE})
            status["conditions"].append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": EVICTED_MESSAGE,
                }
            )
        elif reason == "Deleted":
            status["phase"] = "Failed"
        self.obj["metadata"]["resourceVersion"] = str(self.server.next_version())

    def log_tail(self, lines: int | None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        if lines:
            text = "\n".join(text.splitlines()[-lines:]) + "\n"
        return text


class KubernetesTestServer:
    """HTTP front end, objects by namespace, a job controller and one node of ``max_pods`` pods."""

    def __init__(self, workdir: Path, max_pods: int = 8, host: str = "127.0.0.1", port: int = 0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.max_pods = max_pods
        self.lock = threading.RLock()
        self.namespaces: set[str] = {"default"}
        self.admission: dict[str, dict[str, str | None]] = {}  # namespace -> pod_security, refuse_pods
        self.node_labels = {"kubernetes.io/hostname": "test-node", "kubernetes.io/os": "linux", "pool": "batch"}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.job_state: dict[str, dict[str, Any]] = {}  # job uid -> indexes started, succeeded, failed
        self.images: set[str] = {TEST_RUNTIME, "airflowpywren/runtime:latest"}
        self.tokens: dict[str, set[tuple[str, str, str]] | None] = {}
        self.default_token = self.add_token()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, namespace)
        self.pods_started = 0
        self._versions = itertools.count(1)
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self.endpoint = f"http://{host}:{self.httpd.server_address[1]}"
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> KubernetesTestServer:
        for target, name in ((self.httpd.serve_forever, "k8s-api"), (self._control_loop, "k8s-controller")):
            thread = threading.Thread(target=target, daemon=True, name=name)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            pod.kill(("Deleted",))

    def next_version(self) -> int:
        return next(self._versions)

    # ------------------------------------------------------------- helpers
    def add_token(self, rules: set[tuple[str, str, str]] | None = None) -> str:
        """A bearer token; with ``rules`` it may do only those ``(group, resource, verb)``."""
        token = secrets.token_hex(16)
        self.tokens[token] = rules
        return token

    def create_namespace(
        self, name: str | None = None, pod_security: str | None = None, refuse_pods: str | None = None
    ) -> str:
        """A namespace; ``pod_security="restricted"`` enforces that level, ``refuse_pods`` refuses every pod
        with that reason (``exceeded quota: ...``)."""
        name = name or f"ns-{secrets.token_hex(4)}"
        with self.lock:
            self.namespaces.add(name)
            self.admission[name] = {"pod_security": pod_security, "refuse_pods": refuse_pods}
        return name

    def refusal(self, namespace: str, pod_name: str, pod_spec: dict[str, Any]) -> str | None:
        """Why the API refuses to create this pod in ``namespace``, in its words; None if it accepts it."""
        rules = self.admission.get(namespace) or {}
        if rules.get("refuse_pods"):
            return f'pods "{pod_name}" is forbidden: {rules["refuse_pods"]}'
        if rules.get("pod_security") == "restricted":
            violations = restricted_violations(pod_spec)
            if violations:
                return f'pods "{pod_name}" is forbidden: violates PodSecurity "restricted:latest": ' + ", ".join(
                    violations
                )
        return None

    def record_event(self, job: dict[str, Any], reason: str, message: str) -> None:
        """A Warning event on the Job (counted, as the API aggregates repeats)."""
        namespace, name = job["metadata"]["namespace"], f"{job['metadata']['name']}.{reason.lower()}"
        event = self.events.get((namespace, name))
        if event is not None:
            event.update({"count": event["count"] + 1, "lastTimestamp": now_text(), "message": message})
            return
        self.events[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_text(),
            },
            "involvedObject": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job["metadata"]["name"],
                "namespace": namespace,
                "uid": job["metadata"]["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "count": 1,
            "firstTimestamp": now_text(),
            "lastTimestamp": now_text(),
            "source": {"component": "job-controller"},
        }

    def kubeconfig(self, namespace: str = "default", token: str | None = None) -> dict[str, Any]:
        """A kubeconfig (as a mapping) for this server."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.endpoint}}],
            "users": [{"name": "test", "user": {"token": token or self.default_token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
        }

    def write_kubeconfig(self, path: Path, namespace: str = "default", token: str | None = None) -> Path:
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace, token)))
        return path

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.secrets.get((namespace, name)))

    def pods_of(self, namespace: str, job: str | None = None) -> list[Pod]:
        with self.lock:
            return [
                p
                for (ns, _), p in self.pods.items()
                if ns == namespace and (job is None or p.obj["metadata"]["labels"].get("job-name") == job)
            ]

    def wait_for_pod(self, namespace: str, phase: str = "Running", timeout: float = 60, job: str | None = None) -> Pod:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for pod in self.pods_of(namespace, job):
                if pod.phase == phase:
                    return pod
            time.sleep(0.05)
        raise TimeoutError(f"no pod in phase {phase} in namespace {namespace}")

    def jobs_in(self, namespace: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(j) for (ns, _), j in self.jobs.items() if ns == namespace]

    def evict(self, namespace: str, pod_name: str) -> None:
        """Evict a pod as the kubelet does under memory pressure."""
        with self.lock:
            pod = self.pods[(namespace, pod_name)]
        pod.kill(("Evicted",))

    def requests_in(self, namespace: str) -> Counter[str]:
        with self.lock:
            return Counter(f"{m} {p}" for m, p, ns in self.requests if ns == namespace)

    def reset_stats(self) -> None:
        with self.lock:
            self.requests.clear()
            self.pods_started = 0

    def wait_idle(self, timeout: float = 60) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if all(p.ended or p.process is None for p in self.pods.values()):
                    return True
            time.sleep(0.05)
        return False

    # ----------------------------------------------------------- controller
    def _control_loop(self) -> None:
        while not self._stop.wait(CONTROLLER_TICK):
            try:
                self._reconcile()
            except Exception as exc:  # keep the controller alive; the test sees the effect
                print(f"k8s test server controller error: {exc!r}", file=sys.stderr)

    def _reconcile(self) -> None:
        with self.lock:
            running = sum(1 for p in self.pods.values() if p.started is not None and not p.ended)
            for pod in sorted(self.pods.values(), key=lambda p: p.created):
                if pod.started is not None or pod.ended:
                    continue
                selector = pod.obj["spec"].get("nodeSelector") or {}
                if any(self.node_labels.get(k) != v for k, v in selector.items()):
                    pod.obj["status"]["conditions"][0]["message"] = SELECTOR_MESSAGE
                elif running < self.max_pods:
                    pod.start()
                    running += 1
            for pod in list(self.pods.values()):
                if not pod.ended:
                    pod.poll()
            for pod in self.pods.values():
                waiting = ((pod.obj["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting")
                if (
                    waiting
                    and waiting.get("reason") == "ErrImagePull"
                    and pod.started
                    and time.time() - pod.started > 0.5
                ):
                    waiting.update(
                        {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{pod.container["image"]}"'}
                    )
            for key, job in list(self.jobs.items()):
                self._reconcile_job(key, job)

    def _reconcile_job(self, key: tuple[str, str], job: dict[str, Any]) -> None:
        spec, status = job["spec"], job["status"]
        state = self.job_state[job["metadata"]["uid"]]
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions", [])):
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and time.time() - state["finished"] >= ttl:
                self._delete_job(key, "Background")
            return
        pods = [p for p in self.pods.values() if p.job_uid == job["metadata"]["uid"]]
        for pod in pods:
            if pod.ended and pod.index not in state["succeeded"] and pod.index not in state["failed"]:
                (state["succeeded"] if pod.phase == "Succeeded" else state["failed"]).add(pod.index)
        active = [p for p in pods if not p.ended]
        completions = int(spec["completions"])
        done = state["succeeded"] | state["failed"]
        deadline = spec.get("activeDeadlineSeconds")
        if deadline and time.time() - state["start"] > float(deadline):
            for pod in active:  # the Job controller deletes the Job's pods that have not ended
                self.pods.pop((pod.namespace, pod.name), None)
                pod.kill(("Deleted",))
            self._finish_job(job, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            return
        for index in range(completions):
            if len(active) >= int(spec.get("parallelism", 1)):
                break
            if index in done or index in state["started"]:
                continue
            pod = Pod(self, job, index)
            refused = self.refusal(pod.namespace, pod.name, pod.obj["spec"])
            if refused is not None:
                self.record_event(job, "FailedCreate", f"Error creating: {refused}")
                break
            self.pods[(pod.namespace, pod.name)] = pod
            state["started"].add(index)
            active.append(pod)
        status.update(
            {
                "active": len(active),
                "succeeded": len(state["succeeded"]),
                "failed": len(state["failed"]),
                "ready": sum(p.phase == "Running" for p in active),
                "completedIndexes": index_ranges(state["succeeded"]),
                "failedIndexes": index_ranges(state["failed"])
                if spec.get("backoffLimitPerIndex") is not None
                else None,
                "uncountedTerminatedPods": {},
            }
        )
        if len(done) >= completions and not active:
            if state["failed"]:
                self._finish_job(job, "Failed", "FailedIndexes", "Job has failed indexes")
            else:
                self._finish_job(job, "Complete", None, None)

    def _finish_job(self, job: dict[str, Any], kind: str, reason: str | None, message: str | None) -> None:
        moment = now_text()
        condition = {"type": kind, "status": "True", "lastProbeTime": moment, "lastTransitionTime": moment}
        if reason:
            condition.update({"reason": reason, "message": message})
        job["status"].setdefault("conditions", []).append(condition)
        if kind == "Complete":
            job["status"]["completionTime"] = moment
        job["status"]["active"] = 0
        self.job_state[job["metadata"]["uid"]]["finished"] = time.time()
        job["metadata"]["resourceVersion"] = str(self.next_version())

    def _delete_job(self, key: tuple[str, str], propagation: str | None) -> dict[str, Any]:
        job = self.jobs.pop(key)
        uid = job["metadata"]["uid"]
        if propagation in ("Background", "Foreground"):
            for pod_key, pod in list(self.pods.items()):
                if pod.job_uid == uid:
                    pod.kill(("Deleted",))
                    del self.pods[pod_key]
            for secret_key, secret in list(self.secrets.items()):
                owners = secret["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    del self.secrets[secret_key]
        else:
            for pod in self.pods.values():
                if pod.job_uid == uid:
                    pod.obj["metadata"]["ownerReferences"] = []
        self.job_state.pop(uid, None)
        return job

    # ---------------------------------------------------------------- API
    def authorize(self, header: str | None, group: str, resource: str, verb: str, namespace: str) -> None:
        token = (header or "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise APIError(401, "Unauthorized")
        rules = self.tokens[token]
        if rules is not None and (group, resource, verb) not in rules:
            what = f"{resource}.{group}" if group else resource
            raise APIError(
                403,
                f'{what} is forbidden: User "test-user" cannot {verb} resource "{resource}" in API '
                f'group "{group}" in the namespace "{namespace}"',
            )

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, auth: str | None) -> tuple[int, Any]:
        resolved = resolve(ROUTES, method, normalized_path(path))
        if resolved is None:
            raise APIError(404, f"the server could not find the requested resource ({path})")
        (group, resource), parts = resolved[0].target, resolved[1]
        namespace, name, sub = parts["namespace"], parts.get("name"), parts.get("subresource")
        verb = {
            "GET": "get" if name else "list",
            "POST": "create",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        full_resource = f"{resource}/{sub}" if sub else resource
        self.authorize(auth, group, full_resource, verb, namespace)
        with self.lock:
            self.requests.append((method, f"{group}/{full_resource}".lstrip("/"), namespace))
            store: dict[tuple[str, str], Any] = {
                "jobs": self.jobs,
                "pods": self.pods,
                "secrets": self.secrets,
                "events": self.events,
            }[resource]
            if resource == "events" and (method != "GET" or name is not None):
                raise APIError(405, "events are recorded by the controllers here; list them")
            if sub == "log" and method == "GET":
                pod = self.pods.get((namespace, name or ""))
                if pod is None:
                    raise APIError(404, f'pods "{name}" not found')
                tail = int(query["tailLines"]) if query.get("tailLines") else None
                return 200, pod.log_tail(tail)
            if sub:
                raise APIError(404, f"the server could not find the requested resource ({path})")
            if method == "GET" and name is None:
                items = [
                    self._obj(v)
                    for (ns, _), v in sorted(store.items(), key=lambda kv: kv[0])
                    if ns == namespace
                    and matches(self._obj(v)["metadata"].get("labels") or {}, query.get("labelSelector"))
                    and field_matches(self._obj(v), query.get("fieldSelector"))
                ]
                if query.get("limit"):
                    items = items[: int(query["limit"])]
                kind = {"jobs": "JobList", "pods": "PodList", "secrets": "SecretList", "events": "EventList"}[resource]
                return 200, {
                    "kind": kind,
                    "apiVersion": "batch/v1" if group else "v1",
                    "metadata": {"resourceVersion": str(self.next_version())},
                    "items": items,
                }
            if method == "GET":
                if (namespace, name) not in store:
                    raise APIError(404, f'{resource}{"." + group if group else ""} "{name}" not found')
                return 200, self._obj(store[(namespace, name)])
            if method == "POST":
                return 201, self._create(resource, namespace, body)
            if method == "PATCH":
                if resource != "secrets" or (namespace, name) not in store:
                    raise APIError(404, f'{resource} "{name}" not found')
                if not isinstance(body, dict):
                    raise APIError(415, "the body of the request was in an unknown format")
                patched = merge_patch(store[(namespace, name)], body)
                patched["metadata"]["resourceVersion"] = str(self.next_version())
                store[(namespace, name)] = patched
                return 200, copy.deepcopy(patched)
            propagation = (body or {}).get("propagationPolicy") if isinstance(body, dict) else None
            propagation = propagation or query.get("propagationPolicy")
            if name is not None:
                if (namespace, name) not in store:
                    raise APIError(404, f'{resource}{"." + group if group else ""} "{name}" not found')
                return 200, self._delete(resource, namespace, name, propagation)
            doomed = [
                n
                for (ns, n), v in list(store.items())
                if ns == namespace and matches(self._obj(v)["metadata"].get("labels") or {}, query.get("labelSelector"))
            ]
            for doomed_name in doomed:
                self._delete(resource, namespace, doomed_name, propagation)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _obj(self, value: Any) -> dict[str, Any]:
        return copy.deepcopy(value.obj if isinstance(value, Pod) else value)

    def _delete(self, resource: str, namespace: str, name: str, propagation: str | None) -> dict[str, Any]:
        if resource == "jobs":
            job = self._delete_job((namespace, name), propagation)
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]},
            }
        if resource == "pods":
            pod = self.pods.pop((namespace, name))
            pod.kill(("Deleted",))
            state = self.job_state.get(pod.job_uid)
            if state is not None and not pod.ended:
                state["failed"].add(pod.index)  # backoffLimitPerIndex 0: the index fails, no replacement
            return pod.obj
        return self.secrets.pop((namespace, name))

    def _create(self, resource: str, namespace: str, body: Any) -> dict[str, Any]:
        if namespace not in self.namespaces:
            raise APIError(404, f'namespaces "{namespace}" not found')
        if not isinstance(body, dict):
            raise APIError(400, "the body must be an object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or ""
        if not NAME_PATTERN.match(name) or len(name) > 63:
            raise APIError(
                422,
                f'{resource} "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase '
                "RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            )
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                raise APIError(422, f'metadata.labels: Invalid value: "{value}" (label {key})')
        store = {"jobs": self.jobs, "secrets": self.secrets, "pods": self.pods}[resource]
        if (namespace, name) in store:
            raise APIError(409, f'{resource}{".batch" if resource == "jobs" else ""} "{name}" already exists')
        meta.update(
            {
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_text(),
                "resourceVersion": str(self.next_version()),
            }
        )
        if resource == "secrets":
            data = dict(obj.get("data") or {})
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
            if sum(len(base64.b64decode(v)) for v in data.values()) > SECRET_LIMIT:
                raise APIError(
                    422, f'Secret "{name}" is invalid: data: Too long: must have at most {SECRET_LIMIT} bytes'
                )
            self.secrets[(namespace, name)] = obj
            return copy.deepcopy(obj)
        if resource != "jobs":
            raise APIError(405, "pods are created by the job controller here")
        self._validate_job(obj)
        obj["status"] = {"startTime": now_text(), "active": 0}
        self.jobs[(namespace, name)] = obj
        self.job_state[meta["uid"]] = {
            "started": set(),
            "succeeded": set(),
            "failed": set(),
            "start": time.time(),
            "finished": None,
        }
        return copy.deepcopy(obj)

    def _validate_job(self, job: dict[str, Any]) -> None:
        spec = job.get("spec") or {}
        template = spec.get("template") or {}
        pod_spec = template.get("spec") or {}
        containers = pod_spec.get("containers") or []
        problems = []
        if spec.get("completionMode") == "Indexed" and not spec.get("completions"):
            problems.append("spec.completions: Required value: when completion mode is Indexed")
        if spec.get("backoffLimitPerIndex") is not None and spec.get("completionMode") != "Indexed":
            problems.append("spec.backoffLimitPerIndex: requires indexed completion mode")
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append('spec.template.spec.restartPolicy: Unsupported value: must be "OnFailure" or "Never"')
        if spec.get("backoffLimitPerIndex") is not None and pod_spec.get("restartPolicy") != "Never":
            problems.append("spec.backoffLimitPerIndex: requires restartPolicy Never")
        if not containers or not all(c.get("name") and c.get("image") for c in containers):
            problems.append("spec.template.spec.containers: Required value (name and image)")
        for container in containers:
            for kind in ("requests", "limits"):
                for quantity in ((container.get("resources") or {}).get(kind) or {}).values():
                    if kind == "limits" or not str(quantity).replace(".", "").replace("m", "").isdigit():
                        parse_memory(str(quantity).removesuffix("m"))
        deadline = pod_spec.get("activeDeadlineSeconds")
        if deadline is not None and (not isinstance(deadline, int) or deadline < 1):
            problems.append("spec.template.spec.activeDeadlineSeconds: must be a positive integer")
        if problems:
            raise APIError(422, f'Job.batch "{job["metadata"]["name"]}" is invalid: ' + "; ".join(problems))


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "InternalError"),
        "code": code,
    }


def _make_handler(server: KubernetesTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(APIRequestHandler):
        methods = ("GET", "POST", "PATCH", "DELETE")

        def answer(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            raw = self.read_body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._reply(400, _status(400, "the request body is not JSON"))
                return
            try:
                code, answer = server.handle(method, split.path, query, body, self.headers.get("Authorization"))
            except APIError as exc:
                code, answer = exc.code, _status(exc.code, exc.message)
            except Exception as exc:  # a bug of the test server: answer like an API server would
                code, answer = 500, _status(500, f"{type(exc).__name__}: {exc}")
            self._reply(code, answer)

        def _reply(self, code: int, answer: Any) -> None:
            if isinstance(answer, str):
                self.send_body(code, answer.encode(), "text/plain")
            else:
                self.send_body(code, json.dumps(answer).encode())

    return Handler


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def k8s_server(tmp_path_factory: pytest.TempPathFactory):
    """The Kubernetes-API test server (not Kubernetes) on 127.0.0.1, for the whole session."""
    server = KubernetesTestServer(tmp_path_factory.mktemp("kubernetes"), max_pods=6).start()
    yield server
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Kubernetes-API test server (not Kubernetes): for tests and benchmarks"
    )
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--max-pods", type=int, default=8)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or f"/tmp/pywren-kubernetes-{os.getpid()}")
    server = KubernetesTestServer(workdir, args.max_pods, port=args.port).start()
    path = server.write_kubeconfig(workdir / "kubeconfig")
    print(json.dumps({"k8s": {"kubeconfig": str(path)}}), flush=True)
    return serve_until_stopped(server.stop)


if __name__ == "__main__":
    sys.exit(main())
