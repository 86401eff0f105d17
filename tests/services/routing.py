"""URL routing for the test servers: a table of routes declared as path patterns.

A pattern such as ``/api/v1/namespaces/{namespace}/actions/{name}`` matches a whole path;
``{part}`` is one path segment and ``{part*}`` one or more segments (the rest of the path).
The matched parts are given to the handler unquoted, by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
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
