"""The REST API of the OpenWhisk-API test server: its routes, authentication and handlers.

Every ``/api/v1`` request is authenticated first (401), then routed by the table ``ROUTES``;
a route whose path names a ``{namespace}`` also checks that the caller may use it (``_`` is
the caller's own; 404 unknown, 403 another key's). Handlers answer ``(status, body)`` or raise
``HTTPError``, which the server answers as ``{"error", "code"}``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tests.services.openwhisk.activations import Activation
from tests.services.routing import Route, resolve

if TYPE_CHECKING:
    from tests.services.openwhisk.server import Namespace, OpenWhiskTestServer

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_@.\- ]{0,255}$")
MEMORY_RANGE = (128, 2048)
TIMEOUT_RANGE_MS = (100, 600_000)
SUPPORTED_KINDS = ("blackbox", "python:3")
BLOCKING_WAIT = 60.0
LIST_LIMIT_MAX = 200
NOT_FOUND = "The requested resource could not be found."
DOES_NOT_EXIST = "The requested resource does not exist."


class HTTPError(Exception):
    """An error answer: its HTTP status and OpenWhisk's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    """What a handler needs of one HTTP request, with the parts its route matched."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    client_port: int
    parts: dict[str, str] = field(default_factory=dict)
    caller: Namespace | None = None  # whose key authenticated the request
    namespace: Namespace | None = None  # the namespace the path names, once the caller may use it

    def json(self) -> Any:
        """The body as JSON (``{}`` when empty); 400 when it is not JSON."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, f"The request content was malformed: {exc}") from None

    @property
    def space(self) -> Namespace:
        """The namespace the path names, for handlers of routes with a ``{namespace}``."""
        assert self.namespace is not None, f"the route of {self.path} names no namespace"
        return self.namespace


Handler = Callable[["OpenWhiskTestServer", Request], tuple[int, Any]]


def answer(server: OpenWhiskTestServer, request: Request) -> tuple[Route[Handler] | None, int, Any]:
    """The route that took the request (None if none did) and the answer, as status and JSON body."""
    resolved = resolve(ROUTES, request.method, request.path)
    try:
        if request.path == "/api/v1" or request.path.startswith("/api/v1/"):
            request.caller = authenticate(server, request.headers.get("Authorization"))
        if resolved is None:
            raise HTTPError(404, NOT_FOUND)
        route, request.parts = resolved
        if "namespace" in request.parts:
            assert request.caller is not None
            request.namespace = namespace_for(server, request.caller, request.parts["namespace"])
        status, body = route.target(server, request)
    except HTTPError as exc:
        status, body = exc.status, {"error": exc.message, "code": uuid.uuid4().hex[:8]}
    return (resolved[0] if resolved else None), status, body


# ---------------------------------------------------------------- authentication
def authenticate(server: OpenWhiskTestServer, header: str | None) -> Namespace:
    """The namespace whose ``uuid:key`` (basic auth) or IAM bearer token the request carries."""
    if header and header.startswith("Basic "):
        try:
            supplied = base64.b64decode(header[6:]).decode()
        except ValueError:
            supplied = ""
        for space in server.namespaces.values():
            if space.api_key and secrets.compare_digest(space.api_key, supplied):
                return space
    elif header and header.startswith("Bearer "):
        owner, expires = server.tokens.get(header[7:], (None, 0.0))
        if owner is not None and time.time() < expires:
            return server.namespaces[owner]
    raise HTTPError(401, "The supplied authentication is invalid.")


def namespace_for(server: OpenWhiskTestServer, caller: Namespace, name: str) -> Namespace:
    if name == "_":
        return caller
    space = server.namespaces.get(name)
    if space is None:
        raise HTTPError(404, DOES_NOT_EXIST)
    if space is not caller:
        raise HTTPError(403, f"The supplied authentication is not authorized to access '{name}'.")
    return space


def issue_token(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    """``POST /identity/token``: a bearer token for a namespace registered with this IAM API key."""
    form = parse_qs(request.body.decode())
    key = (form.get("apikey") or [""])[0]
    if (form.get("grant_type") or [""])[0] != "urn:ibm:params:oauth:grant-type:apikey":
        raise HTTPError(400, "grant_type must be urn:ibm:params:oauth:grant-type:apikey")
    with server.lock:
        server.token_requests += 1
        owner = next((s.name for s in server.namespaces.values() if s.iam_api_key and s.iam_api_key == key), None)
        if owner is None:
            raise HTTPError(400, "Provided API key could not be found.")
        token = secrets.token_urlsafe(32)
        expires = time.time() + server.token_ttl
        server.tokens[token] = (owner, expires)
    return 200, {
        "access_token": token,
        "refresh_token": "not_supported",
        "token_type": "Bearer",
        "expires_in": int(server.token_ttl),
        "expiration": int(expires),
    }


# ---------------------------------------------------------------- namespaces and actions
def list_namespaces(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    assert request.caller is not None
    return 200, [request.caller.name]


def list_actions(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    """Newest update first, ``skip``/``limit`` pages (0 = 200), without the actions' code."""
    with server.lock:
        actions = sorted(request.space.actions.values(), key=lambda a: -a["updated"])
    skip, limit = int(request.query.get("skip") or 0), int(request.query.get("limit") or 30)
    return 200, [
        {k: a[k] for k in ("namespace", "name", "version", "publish", "annotations", "limits", "updated")}
        for a in actions[skip : skip + (limit or 200)]
    ]


def method_not_allowed(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    raise HTTPError(405, "method not allowed")


def get_action(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    action = request.space.actions.get(request.parts["name"])
    if action is None:
        raise HTTPError(404, DOES_NOT_EXIST)
    return 200, action


def delete_action(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    with server.lock:
        action = request.space.actions.pop(request.parts["name"], None)
    if action is None:
        raise HTTPError(404, DOES_NOT_EXIST)
    return 200, action


def put_action(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    """Create an action, or replace it with ``overwrite=true`` (409 otherwise), its version bumped."""
    space, name, body = request.space, request.parts["name"], request.json()
    if not NAME_PATTERN.match(name):
        raise HTTPError(400, f"The name '{name}' is not valid.")
    with server.lock:
        existing = space.actions.get(name)
        if existing is not None and request.query.get("overwrite") != "true":
            raise HTTPError(409, "resource already exists")
        exec_ = body.get("exec")
        if not isinstance(exec_, dict) or "kind" not in exec_:
            raise HTTPError(400, "The request content was malformed: 'exec' with a 'kind' is required.")
        if not exec_["kind"].startswith(SUPPORTED_KINDS):
            raise HTTPError(400, f"kind '{exec_['kind']}' is not supported by this test server (blackbox, python:3*)")
        if exec_["kind"] == "blackbox" and not exec_.get("image"):
            raise HTTPError(400, "The request content was malformed: a blackbox action needs an 'image'.")
        limits = {"memory": 256, "timeout": 60_000, "logs": 10, "concurrency": 1, **(body.get("limits") or {})}
        if not MEMORY_RANGE[0] <= int(limits["memory"]) <= MEMORY_RANGE[1]:
            raise HTTPError(400, f"memory {limits['memory']} MB exceeds allowed threshold of {MEMORY_RANGE} MB")
        if not TIMEOUT_RANGE_MS[0] <= int(limits["timeout"]) <= TIMEOUT_RANGE_MS[1]:
            raise HTTPError(
                400, f"duration {limits['timeout']} milliseconds exceeds allowed threshold of {TIMEOUT_RANGE_MS}"
            )
        version = f"0.0.{int(existing['version'].rsplit('.', 1)[1]) + 1}" if existing else "0.0.1"
        action = {
            "namespace": space.name,
            "name": name,
            "version": version,
            "publish": False,
            "exec": {
                "kind": exec_["kind"],
                "image": exec_.get("image"),
                "code": exec_.get("code") or "",
                "main": exec_.get("main") or "main",
                "binary": bool(exec_.get("binary")),
            },
            "limits": limits,
            "parameters": body.get("parameters") or [],
            "annotations": [*(body.get("annotations") or []), {"key": "exec", "value": exec_["kind"]}],
            "updated": int(time.time() * 1000),
        }
        space.actions[name] = action
        server.puts[name] += 1
    return 200, action


def invoke_action(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    """Invoke: ``blocking=false`` 202 ``{"activationId"}``; ``blocking=true`` waits (``result=true``: the result only)."""
    params = request.json()
    with server.lock:
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)
        server.connections.add(request.client_port)
    try:
        if server.invoke_delay:
            time.sleep(server.invoke_delay)
        activation = _accept_invocation(server, request, params)
        if request.query.get("blocking") != "true" or not activation.done.wait(BLOCKING_WAIT):
            return 202, {"activationId": activation.activation_id}
    finally:
        with server.lock:
            server.in_flight -= 1
    record = activation.record()
    status = 200 if record["response"]["success"] else 502
    return status, (record["response"]["result"] if request.query.get("result") == "true" else record)


def _accept_invocation(server: OpenWhiskTestServer, request: Request, params: Any) -> Activation:
    """An injected fault's error, or a new activation of the action, recorded and queued."""
    space, name = request.space, request.parts["name"]
    user_agent = request.headers.get("User-Agent", "")
    with server.lock:
        server.attempts[name] += 1
        fault = next((f for f in server.faults if f[1] in (None, space.name) and (f[2] or "") in user_agent), None)
        if fault is not None:
            server.faults.remove(fault)
    if fault is not None:
        raise HTTPError(fault[0], "Too many requests in the last minute." if fault[0] == 429 else "injected failure")
    action = space.actions.get(name)
    if action is None:
        raise HTTPError(404, DOES_NOT_EXIST)
    if not isinstance(params, dict):
        raise HTTPError(400, "The request content was malformed: parameters must be a JSON object.")
    merged = {p["key"]: p["value"] for p in action["parameters"]}
    merged.update(params)
    activation = Activation(uuid.uuid4().hex, space.name, action, merged)
    auth_scheme = (request.headers.get("Authorization") or " ").split()[0]
    server.accept(activation, user_agent=user_agent, auth=auth_scheme)
    return activation


# ---------------------------------------------------------------- activations
def list_activations(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    """Ended activations, newest start first, as OpenWhisk's list: summaries unless ``docs=true``."""
    query, space = request.query, request.space
    server.record_activation_request(space.name, None, query)
    skip, limit = _integer(query, "skip", 0), _integer(query, "limit", 30)
    if skip < 0:
        raise HTTPError(400, f"The value '{skip}' is not greater than or equal to 0 for activations.")
    if not 0 <= limit <= LIST_LIMIT_MAX:
        raise HTTPError(400, f"The value '{limit}' is not in the range of 0 to {LIST_LIMIT_MAX} for activations.")
    name = query.get("name") or None
    since, upto = _integer(query, "since", 0), _integer(query, "upto", 0)
    with server.lock:
        found = [
            a
            for a in server.activations.values()
            if a.namespace == space.name
            and a.done.is_set()
            and (name is None or a.action["name"] == name.rsplit("/", 1)[-1])
            and since <= a.start_ms()
            and (not upto or a.start_ms() <= upto)
        ]
    if query.get("count") == "true":
        if query.get("docs") == "true":
            raise HTTPError(400, "The parameter 'docs' is not permitted with 'count'.")
        return 200, {"activations": len(found[skip:])}
    found.sort(key=Activation.start_ms, reverse=True)
    page = found[skip : skip + (limit or LIST_LIMIT_MAX)]
    return 200, [a.record() if query.get("docs") == "true" else a.summary() for a in page]


def get_activation(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    """An ended activation's record; 404 until it has ended."""
    activation_id, space = request.parts["activation_id"], request.space
    server.record_activation_request(space.name, activation_id, request.query)
    activation = server.activation(activation_id)
    if activation is None or activation.namespace != space.name or not activation.done.is_set():
        raise HTTPError(404, DOES_NOT_EXIST)
    return 200, activation.record()


def not_found(server: OpenWhiskTestServer, request: Request) -> tuple[int, Any]:
    raise HTTPError(404, NOT_FOUND)


def _integer(query: dict[str, str], key: str, default: int) -> int:
    try:
        return int(query.get(key) or default)
    except ValueError:
        raise HTTPError(400, f"The value '{query[key]}' is not an integer for activations.") from None


NAMESPACE = "/api/v1/namespaces/{namespace}"
ACTIONS = f"{NAMESPACE}/actions"
ACTION = f"{ACTIONS}/{{name}}"
ACTIVATIONS = f"{NAMESPACE}/activations"
ALL_METHODS = ("GET", "PUT", "POST", "DELETE")
INVOKE_ROUTE: Route[Handler] = Route(("POST",), ACTION, invoke_action)  # its answers are tallied

# Tried in order; the first route whose methods and pattern match takes the request.
ROUTES: list[Route[Handler]] = [
    Route(("POST",), "/identity/token", issue_token),
    Route(("GET",), "/api/v1/namespaces", list_namespaces),
    Route(("GET",), ACTIONS, list_actions),
    Route(("PUT", "POST", "DELETE"), ACTIONS, method_not_allowed),
    Route(("GET",), ACTION, get_action),
    Route(("PUT",), ACTION, put_action),
    Route(("DELETE",), ACTION, delete_action),
    INVOKE_ROUTE,
    Route(("GET",), ACTIVATIONS, list_activations),
    Route(("GET",), f"{ACTIVATIONS}/{{activation_id}}", get_activation),
    # any other resource of a namespace: 404, once the caller may use the namespace
    Route(ALL_METHODS, f"{NAMESPACE}/{{resource*}}", not_found),
]
