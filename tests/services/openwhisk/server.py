"""The OpenWhisk-API test server: its state, its HTTP front end and their lifecycle.

``OpenWhiskTestServer`` holds the namespaces (keys, actions), IAM tokens, injected faults and
the records tests read; ``start()`` serves HTTP on 127.0.0.1 (each request answered by
:mod:`.routes`) and starts the :class:`~.activations.ActivationRunner`; ``stop()`` ends both.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.services.openwhisk import routes
from tests.services.openwhisk.activations import Activation, ActivationRunner, ContainerPool
from tests.services.routing import APIRequestHandler, normalized_path

TEST_RUNTIME = "airflowpywren/runtime:test"
RECORD_LIMIT = 50_000
ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Namespace:
    name: str
    api_key: str | None
    iam_api_key: str | None = None
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)


class OpenWhiskTestServer:
    """The test server: HTTP front end, namespaces and actions, activation records and their runner."""

    def __init__(
        self,
        workdir: Path,
        containers: int = 4,
        host: str = "127.0.0.1",
        port: int = 0,
        namespace: str = "pywren-test",
        api_key: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.namespaces: dict[str, Namespace] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.token_ttl = 3600.0
        self.token_requests = 0
        self.default_namespace, self.default_key = self.add_namespace(namespace, api_key)
        self.activations: collections.OrderedDict[str, Activation] = collections.OrderedDict()
        self.faults: collections.deque[tuple[int, str | None, str | None]] = collections.deque()
        self.invoke_delay = 0.0
        self.reset_stats()
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.pool = ContainerPool(containers, self.workdir, self.url)
        self.runner = ActivationRunner(self.pool, containers, self.lock)
        self._serve: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> OpenWhiskTestServer:
        self._serve = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="ow-http"
        )
        self._serve.start()
        self.runner.start()
        return self

    def stop(self) -> None:
        self.runner.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._serve is not None:
            self._serve.join(timeout=10)

    # ---------------------------------------------------------------- control
    def add_namespace(
        self, name: str | None = None, api_key: str | None = None, iam_api_key: str | None = None
    ) -> tuple[str, str | None]:
        """Register a namespace; returns ``(name, api_key)`` (a new ``uuid:key`` unless IAM-only)."""
        name = name or f"ns-{uuid.uuid4().hex[:10]}"
        if api_key is None and iam_api_key is None:
            api_key = f"{uuid.uuid4()}:{secrets.token_urlsafe(48)}"
        with self.lock:
            self.namespaces[name] = Namespace(name, api_key, iam_api_key)
        return name, api_key

    def settings(self, namespace: str | None = None, **overrides: Any) -> dict[str, Any]:
        """An ``ibm_cf`` config section for a namespace of this server."""
        space = self.namespaces[namespace or self.default_namespace]
        section = {
            "endpoint": self.url,
            "namespace": space.name,
            "runtime": TEST_RUNTIME,
            "max_concurrency": 16,
            "invoke_retries": 4,
        }
        if space.api_key:
            section["api_key"] = space.api_key
        else:
            section.update(iam_api_key=space.iam_api_key, iam_endpoint=f"{self.url}/identity/token")
        section.update(overrides)
        return section

    def inject(self, status: int, count: int = 1, namespace: str | None = None, user_agent: str | None = None) -> None:
        """The next ``count`` invocations (of ``namespace``, from a User-Agent containing ``user_agent``) answer ``status``."""
        with self.lock:
            self.faults.extend([(status, namespace, user_agent)] * count)

    def fail_activations(
        self,
        count: int = 1,
        status: str = "whisk internal error",
        error: str = "Failed to provision resources to run the action.",
        namespace: str | None = None,
    ) -> None:
        """The next ``count`` activations (of ``namespace``) end with ``status`` and ``error`` without running."""
        self.runner.fail_next(count, status, error, namespace)

    def reset_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.runner.faults.clear()
            self.invoke_delay = 0.0

    def reset_stats(self) -> None:
        with self.lock:
            self.invocations: list[dict[str, Any]] = []
            self.attempts: collections.Counter[str] = collections.Counter()
            self.puts: collections.Counter[str] = collections.Counter()
            self.answers: collections.Counter[int] = collections.Counter()
            self.in_flight = 0
            self.max_in_flight = 0
            self.connections: set[int] = set()
            self.activation_requests: list[dict[str, Any]] = []

    def invocations_of(self, namespace: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r
                for r in self.invocations
                if (namespace is None or r["namespace"] == namespace) and (action is None or r["action"] == action)
            ]

    def invocation_counts(self, namespace: str | None = None) -> collections.Counter[str]:
        """Accepted invocations per action."""
        return collections.Counter(r["action"] for r in self.invocations_of(namespace))

    def wait_idle(self, timeout: float = 60) -> bool:
        """Wait until no activation is queued or running."""
        return self.runner.wait_idle(timeout)

    def activation(self, activation_id: str) -> Activation | None:
        with self.lock:
            return self.activations.get(activation_id)

    # ---------------------------------------------------------------- records
    def accept(self, activation: Activation, user_agent: str, auth: str) -> None:
        """Record an accepted invocation (``auth``: the scheme of its credentials) and queue its activation."""
        with self.lock:
            self.activations[activation.activation_id] = activation
            while len(self.activations) > RECORD_LIMIT:
                self.activations.popitem(last=False)
            self.invocations.append(
                {
                    "namespace": activation.namespace,
                    "action": activation.action["name"],
                    "activation_id": activation.activation_id,
                    "payload": activation.params,
                    "user_agent": user_agent,
                    "auth": auth,
                    "time": time.time(),
                }
            )
            del self.invocations[:-RECORD_LIMIT]
            self.runner.submit(activation)

    def record_activation_request(self, namespace: str, activation_id: str | None, query: dict[str, str]) -> None:
        """Record a request for one activation record, or for the list (``activation_id`` None)."""
        with self.lock:
            self.activation_requests.append(
                {"namespace": namespace, "activation_id": activation_id, "query": dict(query), "time": time.time()}
            )


def _make_handler(server: OpenWhiskTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(APIRequestHandler):
        methods = ("GET", "PUT", "POST", "DELETE")

        def answer(self, method: str) -> None:
            url = urlsplit(self.path)
            request = routes.Request(
                method=method,
                path=normalized_path(url.path),
                query={k: v[-1] for k, v in parse_qs(url.query).items()},
                headers=self.headers,
                body=self.read_body(),
                client_port=self.client_address[1],
            )
            route, status, body = routes.answer(server, request)
            if route is routes.INVOKE_ROUTE:
                with server.lock:
                    server.answers[status] += 1
            self.send_body(status, json.dumps(body).encode(), reason=ERRORS.get(status))

    return Handler
