#!/usr/bin/env bash
# Set up everything (venv, packages, rabbitmq-server) and run the linter and the test suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --with-services
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
