#!/usr/bin/env bash
# Prefect 3 on its default local SQLite API (ephemeral server in this process).
# Creates its own virtualenv under benchmarks/peers/.venvs/prefect (git-ignored) on first use,
# installs the peer from PyPI, then runs W1-W3 through it and prints one JSON object.
# Usage: benchmarks/peers/prefect.sh [--install-only] [run_prefect.py options]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venvs/prefect"
python=${PEERS_PYTHON:-python3}
if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q 'prefect>=3,<4'
    touch "$venv/.installed"
fi
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
exec "$venv/bin/python" "$here/run_prefect.py" "$@"
