"""Standalone: ``python -m tests.services.openwhisk --port 3233`` prints its ``ibm_cf`` section and serves until SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tests.services.openwhisk.server import OpenWhiskTestServer
from tests.services.processes import serve_until_stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenWhisk-API test server (not OpenWhisk): for tests and benchmarks")
    parser.add_argument("--port", type=int, default=3233)
    parser.add_argument("--namespace", default="guest")
    parser.add_argument("--api-key", default=None, help="uuid:key (default: a new random key)")
    parser.add_argument("--containers", type=int, default=4)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or f"/tmp/pywren-openwhisk-{os.getpid()}")
    server = OpenWhiskTestServer(
        workdir, args.containers, port=args.port, namespace=args.namespace, api_key=args.api_key
    ).start()
    print(json.dumps({"ibm_cf": server.settings()}), flush=True)
    return serve_until_stopped(server.stop)


if __name__ == "__main__":
    sys.exit(main())
