"""IBM Cloud Functions / Apache OpenWhisk compute: activations through the OpenWhisk REST API.

Actions. One blackbox action per runtime image and memory size, named
``{action_prefix}_{image-slug}_{memory}MB`` (``pywren_airflowpywren_runtime_latest_256MB``).
Its ``exec`` is ``{"kind": "blackbox", "image": <runtime>, "code": ACTION_CODE}``: the image's
action proxy (``python -m airflow_pywren.executor.worker``) runs ``worker.handler.main``.

Deploy policy: lazy. ``check()`` only verifies the endpoint, the credentials and the
namespace (one GET of the action list). The first invocation answered 404 deploys the
action once per process (concurrent 404s wait for that one PUT) and is retried; a second
404 fails the call. ``pywren runtime deploy`` deploys ahead of time.

Invocations are non-blocking POSTs (``blocking=false`` -> 202 and an ``activationId``) fanned
out over a thread pool of ``max_concurrency`` threads sharing one pooled ``requests``
session. 429, 5xx and connection errors are retried with exponential backoff and jitter,
``invoke_retries`` times; 401/403 are not retried. A call whose invocation finally fails
gets ``Invocation(error=...)`` and the executor records it as failed in storage.

What travels where:

* Activation payload = ``{**job, **call}`` as the executor builds it: key names, byte range,
  ``extra_env``, ``extra_meta``, ``runtime_memory``, ``timeout``, ``rabbitmq`` (the notice
  queue's ``amqp_url``, when that monitor is on) and ``storage`` = ``{"backend", "settings"}``
  where ``settings`` is only what the storage backend's ``function_settings()`` returns
  (bucket, prefix, endpoint and the storage credentials the function needs). The OpenWhisk
  credential and the rest of the user's config are not in it.
* The remote invoker (``ibm_cf.remote_invoker``, maps of ``remote_invoker_threshold`` calls or
  more): one activation whose payload also has ``invoke_batch`` = the calls (zlib + base64
  JSON) and the OpenWhisk ``endpoint``, ``namespace`` and credential (``api_key`` or
  ``iam_api_key``), so that it can invoke the calls from inside the cloud. That credential
  travels only in that one payload (over TLS with a real endpoint); OpenWhisk's activation
  records hold results and logs, not parameters, and nothing of it is written to storage.
  The client stores the invoker's activation id (in the job's invocation record,
  ``keys.INVOCATION``); the invoker stores the calls' (``keys.ACTIVATIONS``). A call still without an activation id once the invoker's
  activation has ended, and not started, was never invoked: the executor fails it with the
  invoker's record as the reason.

``cancel()`` returns 0: OpenWhisk has no API to stop a running activation; activations run
until they finish or reach the action's timeout. So that a call stopped by its timeout still
records its status, the per-call timeout sent to the handler is capped below the action's
``ibm_cf.timeout`` (by 5 s, or a tenth of it if that is less). A call whose activation
OpenWhisk kills otherwise (out of memory, crashed container) records no status: the
activation's record then tells what happened, and the executor records the call as failed
with that reason (:mod:`.ibm_cf_lost`, checked every ``lost_check_interval`` seconds).

IAM (``iam_api_key`` without ``api_key``): a bearer token from ``iam_endpoint``, cached until
shortly before it expires and refreshed once on a 401; ``namespace`` is then the IAM
namespace id. No extra namespace header is sent. This path is exercised only against the
test server's token endpoint, never against IBM Cloud.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter

from airflow_pywren.executor import validation
from airflow_pywren.executor.compute.base import ComputeBackend, Invocation, PendingCall
from airflow_pywren.executor.compute.ibm_cf_lost import LostActivationFinder
from airflow_pywren.executor.config import Config, Setting
from airflow_pywren.executor.errors import ComputeError, PyWrenConfigError
from airflow_pywren.version import __version__

logger = logging.getLogger(__name__)

ACTION_CODE = "from airflow_pywren.executor.worker.handler import main  # noqa: F401\n"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE = 0.25
BACKOFF_CAP = 30.0
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
TIMEOUT_MARGIN = 5.0  # seconds (at most a tenth of it) kept between the call's timeout and the action's
IAM_REFRESH_MARGIN = 60.0
INVOKE_BATCH_MIN = 100  # calls per batch of direct invocations, at least (see invoke_batch)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class OpenWhiskError(ComputeError):
    """OpenWhisk refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def status_line(response: requests.Response) -> str:
    """``HTTP 429 Too Many Requests``."""
    return f"HTTP {response.status_code} {response.reason or ''}".rstrip()


def error_detail(response: requests.Response) -> str:
    """The error message in an OpenWhisk answer's body, if any."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body.get("errorMessage") or "")
    return ""


def describe(response: requests.Response) -> str:
    """``HTTP 429 Too Many Requests: <the error OpenWhisk gave>``."""
    detail = error_detail(response)
    return f"{status_line(response)}: {detail}" if detail else status_line(response)


def action_name(prefix: str, runtime: str, memory: int) -> str:
    """The action serving ``runtime`` with ``memory`` MB: ``{prefix}_{image-slug}_{memory}MB``."""
    slug = _NAME_CHARS.sub("_", runtime).strip("_.-") or "runtime"
    return f"{prefix}_{slug}_{int(memory)}MB"


def encode_calls(calls: Sequence[dict[str, Any]]) -> str:
    """The calls of a remote-invoker payload, compressed (byte ranges compress well)."""
    return base64.b64encode(zlib.compress(json.dumps(list(calls), separators=(",", ":")).encode(), 6)).decode()


def decode_calls(text: str) -> list[dict[str, Any]]:
    return json.loads(zlib.decompress(base64.b64decode(text)))


class IAMToken:
    """A bearer token for an IAM API key, fetched on demand and cached until it expires."""

    def __init__(self, api_key: str, endpoint: str, verify: bool) -> None:
        self.api_key, self.endpoint, self.verify = api_key, endpoint, verify
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def header(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.time() > self._expires - IAM_REFRESH_MARGIN:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        try:
            response = requests.post(
                self.endpoint,
                data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": self.api_key},
                headers={"Accept": "application/json"},
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                verify=self.verify,
            )
        except requests.RequestException as exc:
            raise OpenWhiskError(f"cannot reach 'ibm_cf.iam_endpoint' {self.endpoint}: {exc}") from exc
        if response.status_code in (400, 401, 403):
            raise PyWrenConfigError(
                f"IAM at {self.endpoint} rejected 'ibm_cf.iam_api_key' ({describe(response)}); check the key"
            )
        if response.status_code != 200:
            raise OpenWhiskError(
                f"IAM token request to {self.endpoint} failed: {describe(response)}", response.status_code
            )
        body = response.json()
        self._token = body["access_token"]
        self._expires = float(body.get("expiration") or time.time() + float(body.get("expires_in", 3600)))


class OpenWhiskClient:
    """The OpenWhisk REST API of one namespace: actions and non-blocking invocations."""

    def __init__(
        self,
        endpoint: str,
        namespace: str,
        api_key: str | None = None,
        iam_api_key: str | None = None,
        iam_endpoint: str = "https://iam.cloud.ibm.com/identity/token",
        max_concurrency: int = 64,
        invoke_retries: int = 8,
        verify_tls: bool = True,
        user_agent: str | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.namespace = namespace
        self.max_concurrency = max_concurrency
        self.invoke_retries = max(0, invoke_retries)
        self._credentials = {"api_key": api_key, "iam_api_key": iam_api_key, "iam_endpoint": iam_endpoint}
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max_concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.verify = verify_tls
        self.session.headers["User-Agent"] = user_agent or f"airflow-pywren/{__version__}"
        self.iam: IAMToken | None = None
        if api_key:
            user, _, password = api_key.partition(":")
            self.session.auth = (user, password)
        elif iam_api_key:
            self.iam = IAMToken(iam_api_key, iam_endpoint, verify_tls)
        else:
            raise PyWrenConfigError(
                "compute_backend 'ibm_cf' needs 'ibm_cf.api_key' ('uuid:key') or 'ibm_cf.iam_api_key'"
            )

    @classmethod
    def from_settings(cls, settings: dict[str, Any], user_agent: str | None = None) -> OpenWhiskClient:
        """A client for an ``ibm_cf`` config section (or the remote invoker's copy of it)."""
        for key in ("endpoint", "namespace"):
            if not settings.get(key):
                raise PyWrenConfigError(f"compute_backend 'ibm_cf' needs 'ibm_cf.{key}'; set it in the config")
        return cls(
            settings["endpoint"],
            settings["namespace"],
            settings.get("api_key"),
            settings.get("iam_api_key"),
            settings.get("iam_endpoint") or "https://iam.cloud.ibm.com/identity/token",
            int(settings.get("max_concurrency") or 64),
            int(settings.get("invoke_retries", 8)),
            bool(settings.get("verify_tls", True)),
            user_agent,
        )

    def remote_settings(self) -> dict[str, Any]:
        """What the remote invoker needs to invoke from inside an activation (includes the credential)."""
        return {
            "endpoint": self.endpoint,
            "namespace": self.namespace,
            **self._credentials,
            "max_concurrency": self.max_concurrency,
            "invoke_retries": self.invoke_retries,
            "verify_tls": bool(self.session.verify),
        }

    # ------------------------------------------------------------------ HTTP
    def url(self, *parts: str, **params: Any) -> str:
        path = "/".join(quote(part, safe="") for part in ("api", "v1", "namespaces", self.namespace, *parts))
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"{self.endpoint}/{path}" + (f"?{query}" if query else "")

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP request with the credentials; a 401 under IAM refreshes the token once."""
        kwargs.setdefault("timeout", (CONNECT_TIMEOUT, READ_TIMEOUT))
        for refreshed in (False, True):
            headers = self.iam.header() if self.iam else {}
            response = self.session.request(method, url, headers=headers, **kwargs)
            if response.status_code != 401 or self.iam is None or refreshed:
                return response
            self.iam.invalidate()
        return response

    def _call(self, method: str, url: str, what: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        try:
            response = self.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise OpenWhiskError(
                f"cannot reach the OpenWhisk endpoint 'ibm_cf.endpoint' {self.endpoint} to {what}: {exc}"
            ) from exc
        if response.status_code not in ok:
            raise OpenWhiskError(f"OpenWhisk refused to {what}: {describe(response)}", response.status_code)
        return response

    # --------------------------------------------------------------- actions
    def check(self) -> None:
        """Verify endpoint, credentials and namespace with one GET of the action list."""
        try:
            response = self.request("GET", self.url("actions", limit=1))
        except requests.RequestException as exc:
            raise OpenWhiskError(
                f"cannot reach the OpenWhisk endpoint 'ibm_cf.endpoint' = {self.endpoint}: {exc}; "
                "check the URL and that the service is up"
            ) from exc
        key = "ibm_cf.iam_api_key" if self.iam else "ibm_cf.api_key"
        if response.status_code == 401:
            raise PyWrenConfigError(
                f"OpenWhisk at {self.endpoint} rejected '{key}' ({describe(response)}); "
                "set the namespace's key ('ibmcloud fn property get --auth' prints it)"
            )
        if response.status_code == 403:
            raise PyWrenConfigError(
                f"'{key}' is not allowed to use namespace 'ibm_cf.namespace' = {self.namespace!r} at {self.endpoint} "
                f"({describe(response)}); use the key of that namespace or '_' for the key's own namespace"
            )
        if response.status_code == 404:
            raise PyWrenConfigError(
                f"namespace 'ibm_cf.namespace' = {self.namespace!r} not found at 'ibm_cf.endpoint' {self.endpoint} "
                f"({describe(response)}); check both ('_' means the key's own namespace)"
            )
        if response.status_code != 200:
            raise OpenWhiskError(
                f"OpenWhisk at {self.endpoint} answered the action list with {describe(response)}", response.status_code
            )

    def list_actions(self, page: int = 200) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = []
        while True:
            batch = self._call("GET", self.url("actions", limit=page, skip=len(actions)), "list actions").json()
            actions.extend(batch)
            if len(batch) < page:
                return actions

    def get_action(self, name: str) -> dict[str, Any] | None:
        response = self._call("GET", self.url("actions", name), f"read action {name}", ok=(200, 404))
        return response.json() if response.status_code == 200 else None

    def put_action(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", self.url("actions", name, overwrite="true"), f"deploy action {name}", json=body).json()

    def delete_action(self, name: str) -> bool:
        """Delete an action; False when there was none."""
        response = self._call("DELETE", self.url("actions", name), f"delete action {name}", ok=(200, 404))
        return response.status_code == 200

    # ----------------------------------------------------------- activations
    def list_activations(
        self, name: str | None = None, since: int | None = None, limit: int = 200, skip: int = 0
    ) -> list[dict[str, Any]]:
        """One page of ended activations (summaries, newest first), of action ``name`` if given,
        started at or after ``since`` (epoch milliseconds)."""
        url = self.url("activations", name=name, since=since, limit=limit, skip=skip)
        return self._call("GET", url, "list activations").json()

    def get_activation(self, activation_id: str) -> dict[str, Any] | None:
        """The record of an ended activation; None while it runs (or if OpenWhisk has none)."""
        response = self._call(
            "GET", self.url("activations", activation_id), f"read activation {activation_id}", ok=(200, 404)
        )
        return response.json() if response.status_code == 200 else None

    # ----------------------------------------------------------- invocations
    def invoke(
        self, action: str, payload: dict[str, Any], on_missing: Callable[[], None] | None = None
    ) -> tuple[str | None, str | None]:
        """Start one activation; ``(activation_id, None)``, or ``(None, reason)`` once retries are spent.

        ``on_missing`` is called on the first 404 (it deploys the action); the invocation is
        then tried again. A later 404, a 401 or a 403 fails at once.
        """
        url = self.url("actions", action, blocking="false")
        attempts = self.invoke_retries + 1
        missing_handled = on_missing is None
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                response = self.request("POST", url, json=payload)
            except requests.RequestException as exc:
                status, detail = type(exc).__name__, f": {exc}"
            else:
                if response.status_code in (200, 202):
                    return response.json()["activationId"], None
                status, detail = status_line(response), error_detail(response)
                detail = f": {detail}" if detail else ""
                if response.status_code == 404 and on_missing is not None and not missing_handled:
                    missing_handled = True
                    try:
                        on_missing()
                    except (ComputeError, PyWrenConfigError) as exc:
                        return None, f"{status} invoking action '{action}', and deploying it failed: {exc}"
                    attempt -= 1
                    continue
                if response.status_code not in RETRY_STATUSES:
                    return (
                        None,
                        f"{status} invoking action '{action}' in namespace '{self.namespace}' (not retried){detail}",
                    )
                retry_after = response.headers.get("Retry-After")
            if attempt >= attempts:
                return None, (
                    f"{status} after {attempts} attempts invoking action '{action}' "
                    f"(ibm_cf.invoke_retries={self.invoke_retries}){detail}"
                )
            time.sleep(backoff(attempt, retry_after))

    def close(self) -> None:
        self.session.close()


def backoff(attempt: int, retry_after: str | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt``: exponential with jitter, or Retry-After."""
    if retry_after:
        try:
            return min(BACKOFF_CAP, max(0.0, float(retry_after)))
        except ValueError:
            pass
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class OpenWhiskCompute(ComputeBackend):
    """Runs calls as activations of a blackbox action on IBM Cloud Functions or OpenWhisk."""

    name = "ibm_cf"
    settings_schema: ClassVar[dict[str, Setting]] = {
        "endpoint": Setting(
            (str, type(None)), None, "OpenWhisk API host, e.g. https://us-south.functions.cloud.ibm.com"
        ),
        "namespace": Setting((str, type(None)), None, "OpenWhisk namespace"),
        "api_key": Setting((str, type(None)), None, "OpenWhisk key 'uuid:key' (basic auth)"),
        "iam_api_key": Setting((str, type(None)), None, "IAM API key for IAM-based namespaces"),
        "iam_endpoint": Setting((str,), "https://iam.cloud.ibm.com/identity/token", "IAM token endpoint"),
        "runtime": Setting((str,), "airflowpywren/runtime:latest", "docker image of the action"),
        "runtime_memory": Setting(
            (int,),
            256,
            "memory of the action 'pywren runtime deploy' creates, in MB "
            "(jobs use pywren.runtime_memory or their runtime_memory argument)",
            minimum=128,
            maximum=validation.MAX_RUNTIME_MEMORY,
        ),
        "timeout": Setting((int, float), 600, "action timeout in seconds", minimum=1, maximum=validation.MAX_TIMEOUT),
        "max_concurrency": Setting((int,), 64, "invocations in flight at once", minimum=1),
        "invoke_retries": Setting((int,), 8, "retries of one invocation on 429 and 5xx", minimum=0),
        "action_prefix": Setting((str,), "pywren", "prefix of the deployed action names"),
        "remote_invoker": Setting((bool,), False, "let one activation invoke the rest of a large map"),
        "remote_invoker_threshold": Setting((int,), 500, "map size from which the remote invoker is used", minimum=1),
        "verify_tls": Setting((bool,), True, "verify the endpoint's TLS certificate"),
        "lost_check_interval": Setting(
            (int, float),
            10,
            "seconds between checks of OpenWhisk's records for calls whose activation ended without a final status",
            minimum=0,
        ),
    }

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        for key in ("endpoint", "namespace"):
            if not settings[key]:
                raise PyWrenConfigError(f"compute_backend 'ibm_cf' needs 'ibm_cf.{key}'; set it in the config")
        if not (settings["api_key"] or settings["iam_api_key"]):
            raise PyWrenConfigError(
                "compute_backend 'ibm_cf' needs 'ibm_cf.api_key' ('uuid:key') or 'ibm_cf.iam_api_key'"
            )
        if settings["api_key"] and ":" not in settings["api_key"]:
            raise PyWrenConfigError(
                "'ibm_cf.api_key' must have the form 'uuid:key' as printed by 'ibmcloud fn property get --auth'"
            )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.settings: dict[str, Any] = config["ibm_cf"]
        self.runtime: str = config["pywren"].get("runtime") or self.settings["runtime"]
        self.prefix: str = self.settings["action_prefix"]
        self.action_timeout: float = float(self.settings["timeout"])
        self.client = OpenWhiskClient.from_settings(self.settings)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._deploy_lock = threading.Lock()
        self._deploy_generation: dict[str, int] = {}
        self._deploy_error: dict[str, str] = {}
        self._job_actions: dict[tuple[str, str], tuple[str, int]] = {}
        self.lost_finder = LostActivationFinder(
            self.client, float(self.settings["lost_check_interval"]), self._job_actions
        )

    # --------------------------------------------------------------- actions
    def action_name(self, memory: int | None = None, runtime: str | None = None) -> str:
        return action_name(self.prefix, runtime or self.runtime, memory or self.settings["runtime_memory"])

    def action_body(self, memory: int, runtime: str | None = None) -> dict[str, Any]:
        """The PUT body of the action: blackbox image running the handler, with memory and timeout limits."""
        return {
            "exec": {
                "kind": "blackbox",
                "image": runtime or self.runtime,
                "code": ACTION_CODE,
                "main": "main",
                "binary": False,
            },
            "limits": {"memory": int(memory), "timeout": int(self.action_timeout * 1000)},
            "annotations": [{"key": "airflow-pywren", "value": __version__}],
        }

    def deploy(self, memory: int | None = None, runtime: str | None = None) -> str:
        """Create or update the action for ``runtime`` and ``memory``; return its name."""
        memory = memory or self.settings["runtime_memory"]
        name = self.action_name(memory, runtime)
        self.client.put_action(name, self.action_body(memory, runtime))
        logger.info(
            "deployed action %s (image %s, %d MB) in namespace %s",
            name,
            runtime or self.runtime,
            memory,
            self.client.namespace,
        )
        return name

    def list_runtimes(self) -> list[dict[str, Any]]:
        """The deployed actions of this prefix, each with its image and memory."""
        found = []
        for entry in self.client.list_actions():
            if not entry["name"].startswith(self.prefix + "_"):
                continue
            action = self.client.get_action(entry["name"]) or entry
            found.append(
                {
                    "name": entry["name"],
                    "image": (action.get("exec") or {}).get("image"),
                    "memory": (action.get("limits") or {}).get("memory"),
                }
            )
        return sorted(found, key=lambda a: a["name"])

    def delete(self, name: str) -> bool:
        return self.client.delete_action(name)

    def _deploy_missing(self, action: str, memory: int, seen_generation: int) -> None:
        """Deploy after a 404, once: callers that saw the same generation wait for one PUT."""
        with self._deploy_lock:
            generation = self._deploy_generation.get(action, 0)
            if generation == seen_generation:
                try:
                    self.deploy(memory)
                    self._deploy_error.pop(action, None)
                except (ComputeError, PyWrenConfigError) as exc:
                    self._deploy_error[action] = str(exc)
                self._deploy_generation[action] = generation + 1
            error = self._deploy_error.get(action)
        if error:
            raise OpenWhiskError(error)

    # ----------------------------------------------------------- invocation
    def check(self) -> None:
        self.client.check()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.client.max_concurrency, thread_name_prefix="pywren-invoke")
            return self._pool

    def invoke_one(self, action: str, memory: int, payload: dict[str, Any]) -> tuple[str | None, str | None]:
        """Invoke one payload, deploying the action on a first 404."""
        generation = self._deploy_generation.get(action, 0)
        try:
            return self.client.invoke(action, payload, lambda: self._deploy_missing(action, memory, generation))
        except Exception as exc:  # an answer the client could not parse: fail this call, not the whole job
            return None, f"invoking action '{action}' failed: {type(exc).__name__}: {exc}"

    def invoke_batch(self, calls: int) -> int:
        """A remote invoker takes all calls in one request; otherwise batches of a few pool-fulls, so that the
        calls a client killed while invoking never invoked are known within a batch."""
        if self.settings["remote_invoker"] and calls >= self.settings["remote_invoker_threshold"]:
            return 0
        return max(INVOKE_BATCH_MIN, 4 * self.client.max_concurrency)

    def invoke(self, job: dict[str, Any], calls: Sequence[dict[str, Any]]) -> list[Invocation]:
        memory = int(job["runtime_memory"])
        action = self.action_name(memory)
        job = self._cap_timeout(job)
        self._job_actions[(job["executor_id"], job["job_id"])] = (action, int(time.time() * 1000) - 1000)
        if self.settings["remote_invoker"] and len(calls) >= self.settings["remote_invoker_threshold"]:
            return self._invoke_remote(action, memory, job, calls)
        payloads = [{**job, **call} for call in calls]
        results = list(self._executor().map(lambda payload: self.invoke_one(action, memory, payload), payloads))
        failed = sum(error is not None for _, error in results)
        if failed:
            logger.error(
                "job %s: %d of %d invocation(s) of %s failed: %s",
                job["job_id"],
                failed,
                len(calls),
                action,
                next(error for _, error in results if error),
            )
        return [
            Invocation(call["call_id"], activation_id, error) for call, (activation_id, error) in zip(calls, results)
        ]

    def _invoke_remote(
        self, action: str, memory: int, job: dict[str, Any], calls: Sequence[dict[str, Any]]
    ) -> list[Invocation]:
        """One activation that invokes every call from inside the cloud (``worker.remote_invoker``)."""
        payload = {
            **job,
            "invoke_batch": {
                "action": action,
                "count": len(calls),
                "calls": encode_calls(calls),
                "openwhisk": self.client.remote_settings(),
            },
        }
        activation_id, error = self.invoke_one(action, memory, payload)
        if error:
            return [
                Invocation(call["call_id"], None, f"the remote invoker could not be started: {error}") for call in calls
            ]
        logger.info("job %s: remote invoker activation %s invokes %d call(s)", job["job_id"], activation_id, len(calls))
        return [Invocation(call["call_id"], None, invoker_id=activation_id) for call in calls]

    def _cap_timeout(self, job: dict[str, Any]) -> dict[str, Any]:
        """Keep the call's own timeout below the action's, so the handler records it before OpenWhisk kills it."""
        limit = self.action_timeout - min(TIMEOUT_MARGIN, self.action_timeout / 10)
        timeout = float(job.get("timeout") or 0)
        if timeout <= limit:
            return job
        log = logger.warning if timeout > self.action_timeout else logger.debug
        log(
            "job %s: timeout %s s is not below the action timeout 'ibm_cf.timeout' = %s s; calls stop after %s s",
            job["job_id"],
            job["timeout"],
            self.action_timeout,
            limit,
        )
        return {**job, "timeout": limit}

    def cancel(self, executor_id: str, job_id: str | None = None) -> int:
        """OpenWhisk cannot stop a running activation: nothing is cancelled."""
        return 0

    def lost_activations(self, pending: Sequence[PendingCall]) -> dict[str, str]:
        """Pending activations that OpenWhisk has a record of, so ended without a final status
        (crashed, killed for memory or time, platform error); see :mod:`.ibm_cf_lost`."""
        return self.lost_finder.find(pending)

    def job_link(self, executor_id: str, job_id: str) -> str | None:
        """The REST URL listing the activations of the job's action since its submission (later jobs'
        of the same action too), read with the same credentials; the namespace's activations for a
        job this process did not submit."""
        action, since = self._job_actions.get((executor_id, job_id), (None, None))
        return self.client.url("activations", name=action, since=since, docs="true" if action else None)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self.client.close()
