#!/usr/bin/env bash
# APScheduler 4 (pre-release) with its SQLAlchemy data store on SQLite, and its memory store.
# Creates its own virtualenv under benchmarks/peers/.venvs/apscheduler (git-ignored) on first use,
# installs the peer from PyPI, then runs W1-W3 through it and prints one JSON object.
# Usage: benchmarks/peers/apscheduler.sh [--install-only] [run_apscheduler.py options]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venvs/apscheduler"
python=${PEERS_PYTHON:-python3}
if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q 'apscheduler>=4.0.0a5' 'sqlalchemy[asyncio]>=2' aiosqlite sniffio
    touch "$venv/.installed"
fi
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
exec "$venv/bin/python" "$here/run_apscheduler.py" "$@"
