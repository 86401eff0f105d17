#!/usr/bin/env bash
# Prepare this checkout: a .venv with the package (editable) and the "dev" dependency group of
# pyproject.toml (tests, linters, bench tools), and with --with-services (as root on Debian)
# rabbitmq-server for the RabbitMQ tests and chromium + chromium-driver for the UI tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      rm -rf .venv
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
      "$PYTHON" -m venv .venv
    else
      echo "cannot create .venv: install Python's venv module (Debian: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
stamp=.venv/.airflow-pywren-installed
# the versions the tests last passed with (see its header); AIRFLOW_PYWREN_CONSTRAINTS= installs the newest
constraints=${AIRFLOW_PYWREN_CONSTRAINTS-scripts/constraints.txt}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$constraints" ] && [ "$constraints" -nt "$stamp" ]; }; then
  .venv/bin/python -m pip install --quiet --upgrade pip  # dependency groups (--group) need pip >= 25.1
  .venv/bin/python -m pip install --quiet -e '.[k8s]' --group dev ${constraints:+--constraint "$constraints"}
  touch "$stamp"
fi

if [ "${1:-}" = "--with-services" ]; then
  # rabbitmq-server for the RabbitMQ tests; chromium and its driver for the UI tests (headless)
  missing=()
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
      # the package may start its own service where a service manager exists; the tests start private nodes
      service rabbitmq-server stop >/dev/null 2>&1 || true
    else
      echo "missing system packages: ${missing[*]} (Debian: apt-get install ${missing[*]}); the RabbitMQ and UI tests need them" >&2
      exit 1
    fi
  fi
fi
