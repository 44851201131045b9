"""Pause, unpause, backfill and restart, in process and through storage alone (as the
command line does while a scheduler serves)."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagNotFound,
    DagRunStatus,
    FakeClock,
    InvalidOperation,
    RunTrigger,
    ScheduleEventKind,
    Scheduler,
    TaskContext,
    TaskStatus,
    task,
)
from ppacer_async import _operations as operations
from ppacer_async.abc import Storage
from ppacer_async.schedules import Interval
from ppacer_async.storage import MemoryStorage

from .conftest import StorageFactory
from .helpers import T0, Recorder

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


def hourly(recorder: Recorder, **options: object) -> DAG:
    @task
    async def work(ctx: TaskContext) -> None:
        recorder.add((ctx.run_id, ctx.logical_time))

    return DAG("hourly", schedule=Interval(HOUR), **options).add(work)  # type: ignore[arg-type]


async def finish_all(s: Scheduler) -> list:
    runs = await s.list_runs("hourly", limit=1000)
    return [await s.wait_for_run(r.id, timeout=5) for r in runs]


async def test_paused_dag_creates_no_runs_and_unpause_from_now_skips_missed_points(
    storage: Storage,
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=30))
    recorder = Recorder()
    dag = hourly(recorder, start=T0, catchup=True)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        await recorder.wait_for(1)  # the T0 point, caught up
        await finish_all(s)
        await s.pause("hourly")
        clock.set(T0 + 3 * HOUR + timedelta(minutes=30))
        manual = await s.trigger("hourly")  # triggers still run while paused
        await s.wait_for_run(manual.id, timeout=5)
        await s.unpause("hourly", from_="now")
        clock.set(T0 + 4 * HOUR)
        await recorder.wait_for(3)
        await finish_all(s)
    times = [v[1] for v in recorder.values]
    assert times == [T0, T0 + 3 * HOUR + timedelta(minutes=30), T0 + 4 * HOUR]
    kinds = {e.logical_time: e.kind for e in await _events(storage)}
    assert [kinds[T0 + n * HOUR] for n in (1, 2, 3)] == [ScheduleEventKind.skipped] * 3
    assert kinds[T0 + 4 * HOUR] is ScheduleEventKind.regular


async def test_unpause_from_last_follows_catchup(storage: Storage) -> None:
    clock = FakeClock(T0 + timedelta(minutes=30))
    recorder = Recorder()
    dag = hourly(recorder, start=T0, catchup=True)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        await recorder.wait_for(1)
        await finish_all(s)
        await s.pause("hourly")
        clock.set(T0 + 2 * HOUR + timedelta(minutes=30))
        await s.unpause("hourly", from_="last")
        await recorder.wait_for(3)
        await finish_all(s)
    assert [v[1] for v in recorder.values] == [T0, T0 + HOUR, T0 + 2 * HOUR]


async def test_backfill_queues_missing_points_oldest_first(storage: Storage) -> None:
    clock = FakeClock(T0 + 10 * HOUR)
    recorder = Recorder()
    dag = hourly(recorder, start=T0 + 10 * HOUR, catchup=False, max_active_runs=2)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        first = await s.backfill("hourly", T0, T0 + 3 * HOUR)
        again = await s.backfill("hourly", T0, T0 + 4 * HOUR)
        await recorder.wait_for(5)
        runs = await finish_all(s)
    assert [r.logical_time for r in first] == [T0 + n * HOUR for n in range(4)]
    assert [r.logical_time for r in again] == [T0 + 4 * HOUR]
    assert {r.trigger for r in runs} == {RunTrigger.backfill}
    assert all(r.status is DagRunStatus.success for r in runs)
    assert [v[1] for v in recorder.values] == [T0 + n * HOUR for n in range(5)]
    # backfill never moves the regular schedule
    async with storage:
        assert await storage.last_schedule_point("hourly") is None


async def test_backfill_refuses_bad_ranges(storage: Storage) -> None:
    recorder = Recorder()
    async with Scheduler([hourly(recorder)], storage=storage) as s:
        with pytest.raises(InvalidOperation, match="before its start"):
            await s.backfill("hourly", T0 + HOUR, T0)
        with pytest.raises(InvalidOperation, match="smaller ranges"):
            await s.backfill("hourly", T0, T0 + 20_000 * HOUR)
        with pytest.raises(DagNotFound):
            await s.backfill("nope", T0, T0)


async def test_runs_queued_from_outside_are_picked_up(storage_factory: StorageFactory) -> None:
    """What `ppacer-async trigger` and `restart` do: write to storage, nothing else."""
    recorder = Recorder()
    attempts: list[int] = []

    @task
    async def flaky(ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        recorder.add(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first time fails")

    dag = DAG("outside").add(flaky)
    served = storage_factory()
    if isinstance(served, MemoryStorage):
        pytest.skip("a memory storage cannot be reached from another process")
    async with Scheduler([dag], storage=served) as s:
        other = storage_factory()
        await other.open()
        try:
            run = await operations.trigger_run(other, "outside", {"x": 1}, s.clock.now())
            await recorder.wait_for(1)
            assert (await s.wait_for_run(run.id, timeout=5)).status is DagRunStatus.failed
            restarted = await operations.request_restart(other, run.id)
            assert restarted.status is DagRunStatus.queued
            await recorder.wait_for(2)
            done = await s.wait_for_run(run.id, timeout=5)
        finally:
            await other.close()
        rows = await s.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert done.params == {"x": 1}
    assert [(tr.attempt, tr.status) for tr in rows] == [
        (1, TaskStatus.failed),
        (2, TaskStatus.success),
    ]


async def test_restart_of_a_run_whose_failure_had_downstream_tasks_survives_a_crash(
    storage_factory: StorageFactory,
) -> None:
    """After a restart, old upstream_failed rows must not count as settled on recovery."""
    entered = anyio.Event()
    fail = True

    @task
    async def broken(ctx: TaskContext) -> None:
        if fail:
            raise RuntimeError("broken")
        if ctx.attempt == 2:
            entered.set()
            await anyio.sleep_forever()

    @task
    async def downstream(ctx: TaskContext) -> str:
        return "ran"

    dag = DAG("deep").add(broken >> downstream)
    storage = storage_factory()
    async with Scheduler([dag], storage=storage) as s:
        run = await s.trigger("deep")
        await s.wait_for_run(run.id, timeout=5)
        fail = False
        await s.restart_run(run.id)
        await entered.wait()
    # The stop interrupted `broken`; it runs again on the next start.
    async with Scheduler([dag], storage=storage) as s:
        done = await s.wait_for_run(run.id, timeout=5)
        rows = await s.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert [(tr.task_id, tr.attempt, tr.status) for tr in rows] == [
        ("broken", 1, TaskStatus.failed),
        ("broken", 2, TaskStatus.interrupted),
        ("broken", 3, TaskStatus.success),
        ("downstream", 1, TaskStatus.upstream_failed),
        ("downstream", 2, TaskStatus.success),
    ]


async def _events(storage: Storage) -> list:
    await storage.open()
    try:
        return await storage.schedule_events("hourly", limit=1000)
    finally:
        await storage.close()
