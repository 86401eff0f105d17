"""The runtime image's command: the OpenWhisk action proxy, or the batch worker.

``python -m airflow_pywren.executor.worker`` is the image's command. With ``PYWREN_PAYLOAD``
set (a Kubernetes Job or a Code Engine job run of the ``k8s`` / ``code_engine`` backends) it
runs :mod:`.batch`; otherwise it is the action proxy of OpenWhisk's ``/init`` and ``/run``
protocol (port 8080). OpenWhisk
POSTs ``/init`` once per container with the action (``{"value": {"code", "main", "env",
"binary"}}``); the code of a PyWren action imports ``worker.handler.main``. It then POSTs
``/run`` once per activation, one at a time (``{"value": <payload>, "activation_id",
"action_name", "namespace", "deadline", ...}``): every key but ``value`` is exported as
``__OW_<KEY>`` and ``main(value)`` is called. Requests are served in the main thread, so
the handler's timeout signal works. A result that is not a dict, or an exception, answers
502 ``{"error": ...}``. After each activation the proxy writes OpenWhisk's log sentinel.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

LOG_SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
MAX_BODY = 64 * 1024 * 1024


class ActionProxy:
    """Holds the initialized action's ``main`` and runs activations with it."""

    def __init__(self) -> None:
        self.main: Callable[[dict[str, Any]], Any] | None = None

    def init(self, value: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.main is not None:
            return 403, {"error": "Cannot initialize the action more than once."}
        if value.get("binary"):
            return 502, {"error": "this runtime takes Python source as action code, not a binary (zip) action"}
        for name, setting in (value.get("env") or {}).items():
            os.environ[str(name)] = str(setting)
        entry = value.get("main") or "main"
        code = value.get("code")
        if code:
            scope: dict[str, Any] = {"__name__": "__pywren_action__"}
            try:
                exec(compile(code, "<action>", "exec"), scope)
            except Exception as exc:
                return 502, {"error": f"the action code failed to load: {type(exc).__name__}: {exc}"}
            main = scope.get(entry)
        else:
            from airflow_pywren.executor.worker.handler import main
        if not callable(main):
            return 502, {"error": f"the action code defines no function {entry!r}"}
        self.main = main
        return 200, {"ok": True}

    def run(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.main is None:
            return 502, {"error": "the action has not been initialized: POST /init first"}
        for name, setting in body.items():
            if name != "value":
                os.environ[f"__OW_{name.upper()}"] = str(setting)
        try:
            result = self.main(body.get("value") or {})
        except Exception as exc:
            traceback.print_exc()
            return 502, {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for stream in (sys.stdout, sys.stderr):
                print(LOG_SENTINEL, file=stream, flush=True)
        if not isinstance(result, dict):
            return 502, {"error": "The action did not return a dictionary."}
        return 200, result


def make_handler(proxy: ActionProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": f"request body of {length} bytes is over {MAX_BODY}"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as exc:
                self._reply(400, {"error": f"request body is not JSON: {exc}"})
                return
            if self.path == "/init":
                self._reply(*proxy.init(body.get("value") or {}))
            elif self.path == "/run":
                self._reply(*proxy.run(body))
            else:
                self._reply(404, {"error": f"no route {self.path}: use /init or /run"})

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def main(argv: list[str] | None = None) -> int:
    from airflow_pywren.executor.worker import batch

    if batch.is_batch_environment():
        return batch.main()
    parser = argparse.ArgumentParser(description="airflow-pywren action proxy (OpenWhisk /init and /run)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PYWREN_PROXY_PORT", "8080")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = HTTPServer((args.host, args.port), make_handler(ActionProxy()))
    print(f"pywren action proxy listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
