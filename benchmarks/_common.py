"""Shared pieces of the suite: settings, a fresh storage per repetition, statistics."""

from __future__ import annotations

import cProfile
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, ClassVar

import attrs

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext
from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage

#: Storage kinds the suite knows, in the order they are reported.
STORAGE_KINDS = ("memory", "sqlite", "postgres")

#: Environment variable naming the PostgreSQL server to benchmark against.
POSTGRES_DSN_ENV = "PPACER_BENCH_POSTGRES_DSN"

#: Scheduler settings every workload uses (the library defaults, spelled out so the
#: JSON report records them).
SCHEDULER_OPTIONS: dict[str, int] = {
    "max_concurrent_tasks": 100,
    "max_threads": 40,
    "queue_size": 1000,
}


@attrs.frozen(kw_only=True)
class Settings:
    """What the command line asked for.

    :ivar quick: smaller sizes and shorter waits (about a minute in all).
    :ivar repeat: repetitions per workload and storage; the median is reported.
    :ivar postgres_dsn: where PostgreSQL runs happen, or ``None``.
    """

    quick: bool
    repeat: int
    postgres_dsn: str | None


@attrs.frozen(kw_only=True)
class Metric:
    """One number a workload reports.

    :ivar key: the name in the JSON report and in ``measure``'s result.
    :ivar label: the name in the table.
    :ivar higher_is_better: throughput (``True``) or latency and cost (``False``);
        decides which way round the ratio to the baseline is taken, so that a ratio
        above 1 always means "faster than plain asyncio".
    :ivar baseline: whether the plain-asyncio baseline reports the same metric.
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    baseline: bool = False


#: Tasks per second, compared with the plain-asyncio baseline (W1, W4).
TASK_THROUGHPUT = Metric(
    key="tasks_per_s", label="throughput", unit="tasks/s", higher_is_better=True, baseline=True
)


class Workload(ABC):
    """One benchmark: builds its graphs once, then measures one repetition at a time."""

    key: ClassVar[str]
    title: ClassVar[str]
    #: The storages it runs on; the others chosen are skipped for it.
    storages: ClassVar[tuple[str, ...]] = STORAGE_KINDS
    #: Whether it runs in the full suite only (skipped with ``--quick``).
    full_only: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def repetitions(self) -> int:
        """How many times each storage is measured (``--repeat`` unless a workload is too
        long to repeat)."""
        return self.settings.repeat

    @abstractmethod
    def metrics(self) -> Sequence[Metric]:
        """What :meth:`measure` (and :meth:`baseline`) report."""

    async def baseline(self) -> dict[str, float] | None:
        """One repetition of the same graph in plain asyncio, or ``None`` if there is none."""
        return None

    async def repetition(self, kind: str) -> dict[str, float]:
        """One repetition on a fresh storage of ``kind``."""
        async with fresh_storage(kind, self.settings.postgres_dsn) as storage:
            return await self.measure(storage)

    @abstractmethod
    async def measure(self, storage: Storage) -> dict[str, float]:
        """One repetition of the workload on ``storage`` (fresh, not yet opened)."""

    def describe(self) -> dict[str, Any]:
        """The sizes this workload runs with, for the JSON report."""
        return {}


# -- tasks --------------------------------------------------------------------------------


async def noop(ctx: TaskContext) -> None:
    """An async task that does nothing: what is measured is the scheduling around it."""


def noop_sync(ctx: TaskContext) -> None:
    """A sync task that does nothing: measures the thread hand-off."""


# -- storages -----------------------------------------------------------------------------


@asynccontextmanager
async def fresh_storage(kind: str, postgres_dsn: str | None) -> AsyncIterator[Storage]:
    """Yield an empty storage of ``kind``; remove what it left behind afterwards.

    SQLite gets a new file in a new temporary directory; PostgreSQL a new schema, which
    is dropped afterwards.
    """
    if kind == "memory":
        yield MemoryStorage()
    elif kind == "sqlite":
        from ppacer_async.storage.sqlite import SQLiteStorage

        directory = tempfile.mkdtemp(prefix="ppacer-bench-")
        try:
            yield SQLiteStorage(path=_join(directory, "bench.db"))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    elif kind == "postgres":
        if not postgres_dsn:
            raise ValueError(
                f"PostgreSQL needs a server: pass --postgres-dsn DSN or set {POSTGRES_DSN_ENV}"
            )
        from ppacer_async.storage.postgres import PostgresStorage

        schema = f"ppacer_bench_{uuid.uuid4().hex[:12]}"
        try:
            yield PostgresStorage(dsn=postgres_dsn, schema=schema)
        finally:
            try:
                await drop_schema(postgres_dsn, schema)
            except Exception as exc:  # do not hide the benchmark's own error
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
    else:
        raise ValueError(f"unknown storage {kind!r}; use one of {', '.join(STORAGE_KINDS)}")


def _join(directory: str, name: str) -> str:
    return os.path.join(directory, name)


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a benchmark schema and everything in it."""
    import asyncpg  # type: ignore[import-untyped, unused-ignore]

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def open_scheduler(
    dag: DAG, storage: Storage, *, max_concurrent_tasks: int | None = None
) -> Scheduler:
    """A scheduler with the suite's settings; enter it with ``async with`` before timing."""
    return Scheduler(
        [dag],
        storage=storage,
        max_concurrent_tasks=max_concurrent_tasks or SCHEDULER_OPTIONS["max_concurrent_tasks"],
        max_threads=SCHEDULER_OPTIONS["max_threads"],
        queue_size=SCHEDULER_OPTIONS["queue_size"],
    )


#: Set by ``python -m benchmarks.profile``: the timed part of each repetition runs under it.
PROFILER: cProfile.Profile | None = None


@contextmanager
def profiled() -> Iterator[None]:
    """Profile what runs inside, if a profiler is set (see :data:`PROFILER`)."""
    if PROFILER is None:
        yield
        return
    PROFILER.enable()
    try:
        yield
    finally:
        PROFILER.disable()


async def timed_run(scheduler: Scheduler, dag_id: str) -> float:
    """Trigger one run and wait for it; return the seconds in between.

    :raises RuntimeError: the run did not succeed (the measurement would be meaningless).
    """
    settle()
    with profiled():
        start = time.perf_counter()
        run = await scheduler.trigger(dag_id)
        done = await scheduler.wait_for_run(run.id)
        elapsed = time.perf_counter() - start
    check_success(done.status, f"run {run.id} of {dag_id}")
    return elapsed


def check_success(status: DagRunStatus, what: str) -> None:
    if status is not DagRunStatus.success:
        raise RuntimeError(f"{what} ended {status.value}, not success; the timing is not valid")


def settle() -> None:
    """Collect garbage left by the previous repetition, so it is not charged to this one."""
    gc.collect()


def quiet_logging() -> None:
    """Keep per-run and per-task log lines from dominating what is measured."""
    logging.getLogger("ppacer_async.events").setLevel(logging.WARNING)


# -- statistics ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) with linear interpolation between samples."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))
