"""URL routing for the test servers: a table of routes declared as path patterns.

A pattern such as ``/api/v1/namespaces/{namespace}/actions/{name}`` matches a whole path;
``{part}`` is one path segment and ``{part*}`` one or more segments (the rest of the path).
The matched parts are given to the handler unquoted, by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import unquote

TargetT = TypeVar("TargetT")

_PART = re.compile(r"\{(\w+)(\*?)\}")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a path pattern, with one named group per ``{part}``."""
    regex, end = [], 0
    for part in _PART.finditer(pattern):
        regex.append(re.escape(pattern[end : part.start()]))
        regex.append(f"(?P<{part.group(1)}>{'.+' if part.group(2) else '[^/]+'})")
        end = part.end()
    regex.append(re.escape(pattern[end:]))
    return re.compile("".join(regex))


@dataclass(frozen=True)
class Route(Generic[TargetT]):
    """Requests with one of ``methods`` to a path matching ``pattern`` go to ``target``.

    ``target`` is the server's business: a handler, or what it needs to choose one.
    """

    methods: tuple[str, ...]
    pattern: str
    target: TargetT
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_pattern(self.pattern))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The unquoted parts of ``path`` when this route takes the request, else None."""
        found = self.regex.fullmatch(path) if method in self.methods else None
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


def resolve(routes: Sequence[Route[TargetT]], method: str, path: str) -> tuple[Route[TargetT], dict[str, str]] | None:
    """The first route that takes the request, with the parts of its path; None when none does."""
    for route in routes:
        parts = route.match(method, path)
        if parts is not None:
            return route, parts
    return None


def normalized_path(path: str) -> str:
    """``path`` with one leading slash and no trailing one, as the routes are written."""
    return "/" + path.strip("/")


class APIRequestHandler(BaseHTTPRequestHandler):
    """A test server's request handler: HTTP/1.1 keep-alive, no access log, each method in ``methods`` to
    :meth:`answer` (others: 501, as the standard handler answers), and :meth:`send_body` for the answer."""

    protocol_version = "HTTP/1.1"
    methods: ClassVar[tuple[str, ...]] = ("GET", "PUT", "POST", "PATCH", "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def answer(self, method: str) -> None:
        raise NotImplementedError

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_body(
        self, status: int, data: bytes, content_type: str = "application/json", reason: str | None = None
    ) -> None:
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        if self.command in self.methods:
            self.answer(self.command)
        else:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch  # noqa: N815
