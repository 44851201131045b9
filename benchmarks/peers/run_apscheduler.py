"""W1-W3 through APScheduler 4, on its SQLAlchemy data store on SQLite and on its memory
store. Run by ``apscheduler.sh`` inside APScheduler's own virtualenv; prints one JSON line.

APScheduler has no DAGs: a job is added when its parents' results are in, which is how a
user would chain its jobs. W1 runs the root, then adds the 500 leaves (one after another:
added from concurrent tasks, SQLite answers "database is locked") and waits for all of
them, then runs the join. W2 runs 100 jobs one after another. W3 runs 100 chains of three
jobs at once. Every job awaits a no-op coroutine; the task allows 500 jobs of
it to run at once (the default is 1) and the scheduler 100 (its default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from apscheduler import AsyncScheduler, JobOutcome, JobReleased
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from sqlalchemy.ext.asyncio import create_async_engine

W1_LEAVES, W2_LENGTH, W3_RUNS = 500, 100, 100
TASK_ID = "noop"


async def noop() -> None:
    pass


async def _batch(scheduler: AsyncScheduler, count: int) -> None:
    """Add ``count`` jobs one after another, then wait until every one is released.

    (Adding them from concurrent tasks makes SQLite answer "database is locked".)
    """
    added: set[UUID] = set()
    released: dict[UUID, JobOutcome] = {}
    all_in = anyio.Event()

    def listener(event: JobReleased) -> None:
        released[event.job_id] = event.outcome
        if len(added) == count and added <= released.keys():
            all_in.set()

    with scheduler.subscribe(listener, {JobReleased}):
        for _ in range(count):
            added.add(await scheduler.add_job(TASK_ID))
        if added <= released.keys():
            all_in.set()
        await all_in.wait()
    failed = [o for job, o in released.items() if job in added and o is not JobOutcome.success]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not succeed: {failed[0]}")


async def _w1(scheduler: AsyncScheduler) -> float:
    start = time.perf_counter()
    await scheduler.run_job(TASK_ID)
    await _batch(scheduler, W1_LEAVES)
    await scheduler.run_job(TASK_ID)
    return (W1_LEAVES + 2) / (time.perf_counter() - start)


async def _chain(scheduler: AsyncScheduler, length: int) -> None:
    for _ in range(length):
        await scheduler.run_job(TASK_ID)


async def _w2(scheduler: AsyncScheduler) -> float:
    start = time.perf_counter()
    await _chain(scheduler, W2_LENGTH)
    return W2_LENGTH / (time.perf_counter() - start)


async def _w3(scheduler: AsyncScheduler) -> float:
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(W3_RUNS):
            tg.start_soon(_chain, scheduler, 3)
    return W3_RUNS * 3 / (time.perf_counter() - start)


async def measure(mode: str, workload: str) -> float:
    with tempfile.TemporaryDirectory(prefix="peers-apscheduler-") as directory:
        engine = None
        if mode == "sqlite":
            # SQLite's default busy timeout (5 s) is not enough for the store's own
            # concurrent updates on a busy machine: "database is locked".
            engine = create_async_engine(
                f"sqlite+aiosqlite:///{Path(directory) / 'aps.db'}",
                connect_args={"timeout": 60},
            )
            store: Any = SQLAlchemyDataStore(engine)
        else:
            store = MemoryDataStore()
        try:
            async with AsyncScheduler(store) as scheduler:
                await scheduler.configure_task(TASK_ID, func=noop, max_running_jobs=W1_LEAVES)
                await scheduler.start_in_background()
                run = {"W1": _w1, "W2": _w2, "W3": _w3}[workload]
                found = await run(scheduler)
                await scheduler.stop()
                return found
        finally:
            if engine is not None:
                await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    modes = []
    for mode in ("sqlite", "memory"):
        found: dict[str, Any] = {"mode": mode}
        for workload in ("W1", "W2", "W3"):
            try:
                found[workload] = statistics.median(
                    asyncio.run(measure(mode, workload)) for _ in range(args.repeat)
                )
            except Exception as exc:
                inner: BaseException = exc
                while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
                    inner = inner.exceptions[0]
                found.setdefault("note", f"{workload}: {type(inner).__name__}: {inner}")
            print(f"apscheduler {mode} {workload}: {found.get(workload)}", file=sys.stderr)
        modes.append(found)
    version = metadata.version("apscheduler")
    print(json.dumps({"peer": "APScheduler", "version": version, "modes": modes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
