"""A small HTTP file server on 127.0.0.1 that answers HEAD and Range GETs, with ETags.

``ranges=False`` makes it ignore Range headers (answering 200 with the whole body, no
``Accept-Ranges``), as some servers do; ``requests`` counts requests by method and path.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class HTTPFiles:
    """Files served from memory: ``files[path] = bytes``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.requests: Counter[tuple[str, str]] = Counter()
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                server_self.requests[(self.command, self.path)] += 1
                data = server_self.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.md5(data).hexdigest() + '"'
                match = _RANGE.match(self.headers.get("Range", "")) if server_self.ranges else None
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)) + 1 if match.group(2) else len(data), len(data))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    payload = data[start:end]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                else:
                    payload = data
                    self.send_response(200)
                if server_self.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(payload)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_files() -> Iterator[HTTPFiles]:
    """A fresh HTTP file server on 127.0.0.1 for one test."""
    server = HTTPFiles()
    server.start()
    try:
        yield server
    finally:
        server.stop()
