"""Small HTTP servers for the COS tests: a fault-injecting proxy and an IAM token endpoint."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)


class FaultProxy(_Server):
    """Forwards HTTP requests to ``upstream``; fails chosen requests first.

    ``fail_next(n, methods, how)`` makes the next ``n`` requests with one of ``methods``
    fail: ``how="503"`` answers 503 SlowDown, ``how="reset"`` closes the connection
    without an answer, ``how="truncate"`` forwards the request but cuts the answer's
    body in half. ``injected`` counts the failures, ``forwarded`` the requests
    passed on, ``authorizations`` the Authorization headers seen.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(_ProxyHandler)
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.lock = threading.Lock()
        self.pending_failures = 0
        self.fail_methods: frozenset[str] = frozenset()
        self.how = "503"
        self.injected: list[tuple[str, str, str]] = []
        self.forwarded: list[tuple[str, str]] = []
        self.authorizations: list[str] = []

    def fail_next(
        self, count: int, methods: tuple[str, ...] = ("GET", "PUT", "POST", "HEAD", "DELETE"), how: str = "503"
    ) -> None:
        with self.lock:
            self.pending_failures, self.fail_methods, self.how = count, frozenset(methods), how

    def take_failure(self, method: str) -> str | None:
        with self.lock:
            if self.pending_failures > 0 and method in self.fail_methods:
                self.pending_failures -= 1
                return self.how
            return None


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" at once, keeps connections open

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        body = _read_body(self)
        proxy = self.server
        with proxy.lock:
            proxy.authorizations.append(self.headers.get("Authorization", ""))
        failure = proxy.take_failure(self.command)
        if failure is not None and failure != "truncate":
            with proxy.lock:
                proxy.injected.append((self.command, self.path, failure))
            if failure == "reset":
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        with proxy.lock:
            proxy.forwarded.append((self.command, self.path))
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if failure == "truncate":
            with proxy.lock:
                proxy.injected.append((self.command, self.path, failure))
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class IAMTokenServer(_Server):
    """An IAM token endpoint: API key ``good_key`` gets a bearer token, any other a 400."""

    def __init__(self, good_key: str) -> None:
        super().__init__(_IAMHandler)
        self.good_key = good_key
        self.token = "local-test-token"
        self.requests: list[dict[str, list[str]]] = []

    @property
    def token_url(self) -> str:
        return f"{self.url}/identity/token"


class _IAMHandler(BaseHTTPRequestHandler):
    server: IAMTokenServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        form = urllib.parse.parse_qs(_read_body(self).decode())
        self.server.requests.append(form)
        if self.path == "/identity/token" and form.get("apikey") == [self.server.good_key]:
            status, reply = (
                200,
                {
                    "access_token": self.server.token,
                    "refresh_token": "local-refresh-token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "expiration": int(time.time()) + 3600,
                },
            )
        else:
            status, reply = 400, {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
