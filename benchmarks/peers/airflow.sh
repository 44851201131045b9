#!/usr/bin/env bash
# Airflow 3 dag.test() with its SQLite metadata database in a temporary AIRFLOW_HOME.
# Creates its own virtualenv under benchmarks/peers/.venvs/airflow (git-ignored) on first use,
# installs the peer from PyPI, then runs W1-W3 through it and prints one JSON object.
# Usage: benchmarks/peers/airflow.sh [--install-only] [run_airflow.py options]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venvs/airflow"
python=${PEERS_PYTHON:-python3}
if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q 'apache-airflow>=3,<4'
    touch "$venv/.installed"
fi
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
exec "$venv/bin/python" "$here/run_airflow.py" "$@"
