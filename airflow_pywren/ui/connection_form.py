"""Fixes, in the API server, for how the Airflow 3 UI handles ``pywren`` connections (an ASGI middleware).

* The connection list's "Test" button sends ``port: 0`` for a connection whose port is unset
  (the ``pywren`` form hides it), and the API then refuses the test with 400 ("host or port
  ... differs from the stored connection"). For ``pywren`` connections a ``0`` port is sent
  as unset, so the test runs (``PyWrenHook.test_connection``).
* The form pre-fills the "Extra Fields JSON" editor with ``null`` for every field without a
  default: the form metadata of ``pywren`` fields leaves such values out.
* Saving a ``pywren`` connection drops ``null`` and empty extra fields, so none are stored.

Only requests about ``pywren`` connections are changed; everything else passes through.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow_pywren.hooks.connection import CONN_TYPE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONNECTIONS = "/api/v2/connections"
HOOK_META = "/ui/connections/hook_meta"


def fix_test_request(body: dict[str, Any]) -> dict[str, Any]:
    """A connection test request with the hidden port of a ``pywren`` connection left unset."""
    if body.get("conn_type") == CONN_TYPE and body.get("port") == 0:
        return {**body, "port": None}
    return body


def fix_saved_connection(body: dict[str, Any]) -> dict[str, Any]:
    """A ``pywren`` connection to save, without null or empty extra fields."""
    if body.get("conn_type") != CONN_TYPE or not isinstance(body.get("extra"), str):
        return body
    try:
        extra = json.loads(body["extra"])
    except ValueError:
        return body  # the API reports invalid JSON itself
    if not isinstance(extra, dict):
        return body
    kept = {key: value for key, value in extra.items() if value is not None and value != ""}
    return {**body, "extra": json.dumps(kept)}


def fix_hook_meta(hooks: Any) -> Any:
    """Form metadata in which ``pywren`` fields without a default carry no value (the editor shows no nulls)."""
    if not isinstance(hooks, list):
        return hooks
    for hook in hooks:
        if isinstance(hook, dict) and hook.get("connection_type") == CONN_TYPE:
            for field in (hook.get("extra_fields") or {}).values():
                if isinstance(field, dict) and field.get("value") is None:
                    field.pop("value", None)
    return hooks


class PyWrenConnectionForm:
    """The ASGI middleware applying :func:`fix_test_request`, :func:`fix_saved_connection` and :func:`fix_hook_meta`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        if method == "POST" and path.endswith(CONNECTIONS + "/test"):
            await self._rewrite_request(scope, receive, send, fix_test_request)
        elif method in ("POST", "PATCH", "PUT") and CONNECTIONS in path and not path.endswith("/test"):
            await self._rewrite_request(scope, receive, send, fix_saved_connection)
        elif method == "GET" and path.endswith(HOOK_META):
            await self._rewrite_response(scope, receive, send, fix_hook_meta)
        else:
            await self.app(scope, receive, send)

    async def _rewrite_request(self, scope: Scope, receive: Receive, send: Send, fix: Callable[[Any], Any]) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            raw = json.dumps(fix(body)).encode()
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

    async def _rewrite_response(self, scope: Scope, receive: Receive, send: Send, fix: Callable[[Any], Any]) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            raw = b"".join(chunks)
            encoded = dict(start.get("headers", [])).get(b"content-encoding")
            if start.get("status") == 200 and not encoded:
                try:
                    raw = json.dumps(fix(json.loads(raw))).encode()
                except ValueError:
                    pass
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(raw)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": raw, "more_body": False})

        await self.app(scope, receive, capture)
