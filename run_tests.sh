#!/usr/bin/env bash
# Set up everything (venv, packages, rabbitmq-server) and run the linter, the type checker and the test suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --with-services
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
