#!/usr/bin/env bash
# Prepare this checkout: a .venv with the package and its test extras, and (as root on
# Debian) the rabbitmq-server package for the RabbitMQ tests. Safe to run again.
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
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test,bench]'
  touch "$stamp"
fi

if [ "${1:-}" = "--with-services" ] && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    echo "rabbitmq-server is missing: install it (Debian: apt-get install rabbitmq-server) to run the RabbitMQ tests" >&2
    exit 1
  fi
fi
