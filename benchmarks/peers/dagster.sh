#!/usr/bin/env bash
# Dagster, execute_in_process on a DagsterInstance on SQLite, and an ephemeral one.
# Creates its own virtualenv under benchmarks/peers/.venvs/dagster (git-ignored) on first use,
# installs the peer from PyPI, then runs W1-W3 through it and prints one JSON object.
# Usage: benchmarks/peers/dagster.sh [--install-only] [run_dagster.py options]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venvs/dagster"
python=${PEERS_PYTHON:-python3}
if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q dagster
    touch "$venv/.installed"
fi
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
exec "$venv/bin/python" "$here/run_dagster.py" "$@"
