"""ppacer-async and plain asyncio at the peers' sizes, in the project's own environment.

``python -m benchmarks.peers.run_ppacer [--storage memory,sqlite,postgres] [--repeat N]``
prints two JSON lines, one per peer (``ppacer-async``, ``asyncio``), in the format every
``run_<peer>.py`` prints: per mode, tasks per second for W1, W2 and W3 (the median of
``--repeat`` repetitions). PostgreSQL reads its DSN from ``PPACER_BENCH_POSTGRES_DSN``.

W3 triggers its 100 runs back to back and waits for them all (every run may be active
at once), as the suite's W3 does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata

import anyio

from .. import baseline
from .._common import (
    POSTGRES_DSN_ENV,
    check_success,
    fresh_storage,
    median,
    open_scheduler,
    quiet_logging,
    settle,
    timed_run,
)
from ..w1_fanout import build_fan_out
from ..w2_chain import build_chain
from ..w3_many_runs import DAG_ID as W3_DAG_ID
from ..w3_many_runs import build_small

#: The peers' sizes (the suite's are 20 to 100 times larger).
W1_LEAVES = 500
W2_LENGTH = 100
W3_RUNS = 100
TASKS = {"W1": W1_LEAVES + 2, "W2": W2_LENGTH, "W3": W3_RUNS * 3}


async def ppacer_w1(kind: str) -> float:
    dag = build_fan_out(W1_LEAVES, dag_id="peers_w1")
    async with (
        fresh_storage(kind, os.environ.get(POSTGRES_DSN_ENV)) as storage,
        open_scheduler(dag, storage) as scheduler,
    ):
        return await timed_run(scheduler, dag.dag_id)


async def ppacer_w2(kind: str) -> float:
    dag = build_chain(W2_LENGTH)
    async with (
        fresh_storage(kind, os.environ.get(POSTGRES_DSN_ENV)) as storage,
        open_scheduler(dag, storage) as scheduler,
    ):
        return await timed_run(scheduler, dag.dag_id)


async def ppacer_w3(kind: str) -> float:
    dag = build_small(max_active_runs=W3_RUNS)

    async with (
        fresh_storage(kind, os.environ.get(POSTGRES_DSN_ENV)) as storage,
        open_scheduler(dag, storage) as scheduler,
    ):

        async def wait(run_id: int) -> None:
            run = await scheduler.wait_for_run(run_id)
            check_success(run.status, f"run {run_id}")

        settle()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(W3_RUNS):
                run = await scheduler.trigger(W3_DAG_ID)
                tg.start_soon(wait, run.id)
        return time.perf_counter() - start


async def _repeat(measure: Callable[[], Awaitable[float]], repeat: int) -> float:
    return median([await measure() for _ in range(repeat)])


async def measure_all(storages: list[str], repeat: int) -> list[dict[str, object]]:
    plain: dict[str, object] = {"mode": "memory"}
    plain["W1"] = TASKS["W1"] / await _repeat(
        lambda: baseline.run_graph(baseline.fan_out_parents(W1_LEAVES)), repeat
    )
    chain = [[i - 1] if i else [] for i in range(W2_LENGTH)]
    plain["W2"] = TASKS["W2"] / await _repeat(lambda: baseline.run_graph(chain), repeat)
    plain["W3"] = TASKS["W3"] / await _repeat(lambda: baseline.run_many_chains(W3_RUNS, 3), repeat)
    modes = []
    for kind in storages:
        mode: dict[str, object] = {"mode": kind}
        mode["W1"] = TASKS["W1"] / await _repeat(lambda k=kind: ppacer_w1(k), repeat)  # type: ignore[misc]
        mode["W2"] = TASKS["W2"] / await _repeat(lambda k=kind: ppacer_w2(k), repeat)  # type: ignore[misc]
        mode["W3"] = TASKS["W3"] / await _repeat(lambda k=kind: ppacer_w3(k), repeat)  # type: ignore[misc]
        modes.append(mode)
    python = platform.python_version()
    return [
        {"peer": "ppacer-async", "version": metadata.version("ppacer-async"), "modes": modes},
        {"peer": "asyncio", "version": f"Python {python}", "modes": [plain]},
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.run_ppacer")
    parser.add_argument("--storage", default="memory,sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    quiet_logging()
    storages = [s.strip() for s in args.storage.split(",") if s.strip()]
    for found in asyncio.run(measure_all(storages, args.repeat)):
        print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
