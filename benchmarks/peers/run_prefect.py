"""W1-W3 through Prefect 3 on its default local SQLite API. Run by ``prefect.sh`` inside
Prefect's own virtualenv; prints one JSON line.

No ``prefect server start``: without ``PREFECT_API_URL`` Prefect starts its ephemeral API
server on first use, on a SQLite database under ``PREFECT_HOME``, set here to a fresh
temporary folder. An untimed warm-up flow starts that server before the clock does.
Prefect has no in-memory mode. Tasks are no-op functions submitted to the flow's default
task runner (threads) with ``wait_for`` for the dependencies, Prefect's way of running a
graph: W1 the root, 500 leaves waiting for it, the join waiting for them; W2 a chain of
100; W3 100 flow runs (one after another: a flow call runs to its end) of a 3-task chain.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

HOME = tempfile.mkdtemp(prefix="peers-prefect-")
os.environ["PREFECT_HOME"] = HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Creating the database on first use takes longer than the default 20 s on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")

from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402

W1_LEAVES, W2_LENGTH, W3_RUNS = 500, 100, 100


@task
def noop() -> None:
    pass


@flow
def warm_up() -> None:
    noop.submit().result()


@flow
def fan_out() -> None:
    root = noop.submit()
    leaves = [noop.submit(wait_for=[root]) for _ in range(W1_LEAVES)]
    noop.submit(wait_for=leaves).result()


@flow
def chain(length: int) -> None:
    previous = noop.submit()
    for _ in range(length - 1):
        previous = noop.submit(wait_for=[previous])
    previous.result()


def _w1() -> float:
    start = time.perf_counter()
    fan_out()
    return (W1_LEAVES + 2) / (time.perf_counter() - start)


def _w2() -> float:
    start = time.perf_counter()
    chain(W2_LENGTH)
    return W2_LENGTH / (time.perf_counter() - start)


def _w3() -> float:
    start = time.perf_counter()
    for _ in range(W3_RUNS):
        chain(3)
    return W3_RUNS * 3 / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("prefect").setLevel(logging.WARNING)
    found: dict[str, Any] = {"mode": "sqlite"}
    try:
        warm_up()
        for workload, run in (("W1", _w1), ("W2", _w2), ("W3", _w3)):
            try:
                found[workload] = statistics.median(run() for _ in range(args.repeat))
            except Exception as exc:
                found.setdefault("note", f"{workload}: {type(exc).__name__}: {exc}")
            print(f"prefect sqlite {workload}: {found.get(workload)}", file=sys.stderr)
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    version = metadata.version("prefect")
    print(json.dumps({"peer": "Prefect", "version": version, "modes": [found]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
