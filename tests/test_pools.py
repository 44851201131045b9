"""Pools and ``max_active_tasks``: how many attempts run at once, measured from the
attempts storage keeps."""

from __future__ import annotations

import json
import os
import sys
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagRunStatus,
    PoolUsage,
    PpacerError,
    Scheduler,
    TaskContext,
    TaskRun,
    TaskStatus,
    UnknownPool,
    task,
)
from ppacer_async.abc import Storage

from .conftest import StorageFactory

pytestmark = pytest.mark.anyio


def most_at_once(rows: list[TaskRun]) -> int:
    """The most attempts whose [started_at, finished_at) intervals overlap."""
    edges: list[tuple[datetime, int]] = []
    for tr in rows:
        assert tr.started_at is not None and tr.finished_at is not None, tr
        edges.append((tr.started_at, 1))
        edges.append((tr.finished_at, -1))
    edges.sort()  # at a tie an end (-1) comes before a start: half-open intervals
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def pooled_dag(dag_id: str, n: int, pool: str = "warehouse", **options: object) -> DAG:
    dag = DAG(dag_id, **options)  # type: ignore[arg-type]
    for k in range(n):

        @task(id=f"load_{k}", pool=pool)
        async def load(ctx: TaskContext) -> str:
            await anyio.sleep(0.005)
            return ctx.task_id

        dag.add(load)
    return dag


async def finished_attempts(storage: Storage, run_ids: list[int]) -> list[TaskRun]:
    rows: list[TaskRun] = []
    for run_id in run_ids:
        rows.extend(tr for tr in await storage.task_runs(run_id) if tr.finished_at is not None)
    return rows


async def test_fifty_tasks_in_a_pool_of_four_never_run_more_than_four_at_once(
    storage_factory: StorageFactory,
) -> None:
    dags = [pooled_dag("north", 25), pooled_dag("south", 25)]
    storage = storage_factory()
    # On PostgreSQL three schedulers share the work, as three processes would.
    processes = 3 if type(storage).__name__ == "PostgresStorage" else 1
    async with AsyncExitStack() as stack:
        schedulers = [
            await stack.enter_async_context(
                Scheduler(
                    dags,
                    storage=storage if k == 0 else storage_factory(),
                    pools={"warehouse": 4},
                    max_concurrent_tasks=20,
                )
            )
            for k in range(processes)
        ]
        first = schedulers[0]
        runs = [await first.trigger("north"), await first.trigger("south")]
        with anyio.fail_after(60):
            for run in runs:
                done = await first.wait_for_run(run.id)
                assert done.status is DagRunStatus.success
        rows = await finished_attempts(first.storage, [run.id for run in runs])
    assert len(rows) == 50
    assert all(tr.status is TaskStatus.success for tr in rows)
    assert most_at_once(rows) == 4


async def test_max_active_tasks_limits_a_dags_attempts_across_its_runs(
    storage_factory: StorageFactory,
) -> None:
    dag = pooled_dag("limited", 10, pool="wide", max_active_tasks=2)
    async with Scheduler(
        [dag], storage=storage_factory(), pools={"wide": 100}, max_concurrent_tasks=20
    ) as scheduler:
        runs = [await scheduler.trigger("limited") for _ in range(2)]
        with anyio.fail_after(60):
            for run in runs:
                assert (await scheduler.wait_for_run(run.id)).status is DagRunStatus.success
        rows = await finished_attempts(scheduler.storage, [run.id for run in runs])
    assert len(rows) == 20
    assert most_at_once(rows) == 2


async def test_higher_priority_gets_a_freed_slot_first() -> None:
    order: list[str] = []
    gate, started = anyio.Event(), anyio.Event()
    dag = DAG("prio")

    @task(pool="one")
    async def first(ctx: TaskContext) -> None:
        started.set()
        await gate.wait()
        order.append(ctx.task_id)

    dag.add(first)
    for name, priority in (("low", 1), ("high", 9), ("mid", 5)):

        @task(id=name, pool="one", priority=priority)
        async def waiting(ctx: TaskContext) -> None:
            order.append(ctx.task_id)

        dag.add(waiting)
    async with Scheduler([dag], storage="memory://", pools={"one": 1}) as scheduler:
        run = await scheduler.trigger("prio")
        with anyio.fail_after(10):
            await started.wait()  # the others were made ready in the same step
            usage = scheduler.statistics().pools[0]
            assert (usage.name, usage.slots, usage.used, usage.waiting) == ("one", 1, 1, 3)
            gate.set()
            assert (await scheduler.wait_for_run(run.id)).status is DagRunStatus.success
    assert order == ["first", "high", "mid", "low"]


async def test_failed_timed_out_and_cancelled_attempts_give_their_slots_back() -> None:
    dag = DAG("ends")

    @task(pool="one")
    async def fails(ctx: TaskContext) -> None:
        raise RuntimeError("boom")

    @task(pool="one", timeout=timedelta(milliseconds=20))
    async def hangs(ctx: TaskContext) -> None:
        await anyio.sleep(30)

    @task(pool="one")
    async def works(ctx: TaskContext) -> int:
        return 1

    dag.add(fails, hangs, works)
    blocked = DAG("blocked")
    started = anyio.Event()

    @task(pool="one")
    async def forever(ctx: TaskContext) -> None:
        started.set()
        await anyio.sleep(30)

    blocked.add(forever)
    async with Scheduler([dag, blocked], storage="memory://", pools={"one": 1}) as scheduler:
        run = await scheduler.trigger("ends")
        with anyio.fail_after(10):
            done = await scheduler.wait_for_run(run.id)
        statuses = {tr.task_id: tr.status for tr in await scheduler.task_runs(run.id)}
        assert done.status is DagRunStatus.failed
        assert statuses == {
            "fails": TaskStatus.failed,
            "hangs": TaskStatus.failed,
            "works": TaskStatus.success,
        }
        held = await scheduler.trigger("blocked")
        with anyio.fail_after(10):
            await started.wait()
        assert scheduler.statistics().pools[0].used == 1
        await scheduler.cancel_run(held.id)
        assert scheduler.statistics().pools[0].used == 0
        again = await scheduler.trigger("ends")
        with anyio.fail_after(10):
            assert (await scheduler.wait_for_run(again.id)).status is DagRunStatus.failed


async def test_a_task_naming_an_unknown_pool_is_refused_naming_the_known_ones() -> None:
    dag = pooled_dag("lost", 1, pool="nowhere")
    with pytest.raises(UnknownPool) as caught:
        Scheduler([dag], storage="memory://", pools={"warehouse": 4, "api": 2})
    message = str(caught.value)
    assert "'nowhere'" in message and "api, warehouse" in message
    assert isinstance(caught.value, PpacerError) and isinstance(caught.value, LookupError)


async def test_a_task_added_later_with_an_unknown_pool_is_refused_when_serving() -> None:
    dag = DAG("later")
    scheduler = Scheduler([dag], storage="memory://")
    dag.add(pooled_dag("x", 1, pool="nowhere").graph.tasks[0])
    with pytest.raises(UnknownPool, match="known pools: none"):
        await scheduler.serve()


def test_pool_options_are_checked() -> None:
    with pytest.raises(ValueError, match="pool_slots must be a whole number >= 1"):
        task(id="t", pool="p", pool_slots=0)(lambda ctx: None)
    with pytest.raises(ValueError, match="max_active_tasks must be a whole number >= 1"):
        DAG("bad", max_active_tasks=0)
    dag = DAG("big").add(task(id="t", pool="p", pool_slots=3)(lambda ctx: None))
    with pytest.raises(ValueError, match="wants 3 slots of pool 'p', which has 2"):
        Scheduler([dag], storage="memory://", pools={"p": 2})


async def test_storage_records_the_pools_counts_replacing_the_last(storage: Storage) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first = [
        PoolUsage(name="warehouse", slots=4, used=4, waiting=7),
        PoolUsage(name="api", slots=2, used=0, waiting=0),
    ]
    await storage.save_pools(first, now)
    await storage.save_pools([PoolUsage(name="warehouse", slots=4, used=3, waiting=6)], now)
    (found,) = await storage.pools()
    assert (found.name, found.slots, found.used, found.waiting) == ("warehouse", 4, 3, 6)
    assert found.updated_at == now


async def test_the_pools_command_shows_slots_used_and_waiting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pools.db'}"
    gate, started = anyio.Event(), anyio.Event()
    dag = DAG("held")

    @task(pool="one")
    async def holder(ctx: TaskContext) -> None:
        started.set()
        await gate.wait()

    dag.add(holder, *[task(id=f"w{k}", pool="one")(holder.func) for k in range(3)])
    async with Scheduler([dag], storage=url, pools={"one": 1, "idle": 5}) as scheduler:
        run = await scheduler.trigger("held")
        await started.wait()
        with anyio.fail_after(10):  # recorded at each change, at most twice a second
            while True:
                recorded = await scheduler.storage.pools()
                if [(p.used, p.waiting) for p in recorded] == [(0, 0), (1, 3)]:
                    break
                await anyio.sleep(0.05)  # another coroutine writes it, on its own time
        done = await anyio.run_process(
            [sys.executable, "-m", "ppacer_async", "pools", "--storage", url, "--json"],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        text = await anyio.run_process(
            [sys.executable, "-m", "ppacer_async", "pools", "--storage", url],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        gate.set()
        await scheduler.wait_for_run(run.id, timeout=10)
    shown = json.loads(done.stdout)
    assert [(p["name"], p["slots"], p["used"], p["waiting"]) for p in shown] == [
        ("idle", 5, 0, 0),
        ("one", 1, 1, 3),
    ]
    lines = text.stdout.decode().splitlines()
    assert lines[0].split() == ["POOL", "SLOTS", "USED", "WAITING", "UPDATED"]
    assert lines[2].split()[:4] == ["one", "1", "1", "3"]
