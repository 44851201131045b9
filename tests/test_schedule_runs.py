"""Schedules driving runs: catch-up rules, pacing, skipped points, manual triggers.

Time is a ``FakeClock``: nothing here sleeps for schedule arithmetic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagRunStatus,
    FakeClock,
    RunTrigger,
    ScheduleEvent,
    ScheduleEventKind,
    Scheduler,
    SystemClock,
    TaskContext,
    TaskStatus,
    task,
)
from ppacer_async.abc import Storage
from ppacer_async.schedules import Interval
from ppacer_async.storage import MemoryStorage

from .conftest import StorageFactory
from .helpers import T0, Gate, Recorder, RecordingNotifier

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


def hourly_dag(recorder: Recorder, gate: Gate | None = None, **options: object) -> DAG:
    @task
    async def work(ctx: TaskContext) -> None:
        recorder.add(ctx.logical_time)
        if gate is not None:
            await gate.enter()

    return DAG("hourly", schedule=Interval(HOUR), **options).add(work)  # type: ignore[arg-type]


async def events(storage: Storage) -> list[tuple[object, ScheduleEventKind]]:
    found = await storage.schedule_events("hourly")
    return sorted((e.logical_time, e.kind) for e in found)


async def test_catchup_runs_missed_points_oldest_first_paced_by_max_active_runs(
    storage: Storage,
) -> None:
    clock = FakeClock(T0)
    recorder, gate = Recorder(), Gate()
    dag = hourly_dag(recorder, gate, start=T0 - 3 * HOUR, catchup=True, max_active_runs=2)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        await gate.wait_inside(2)
        runs = await s.list_runs("hourly")
        assert len(runs) == 2, "catch-up must not create more than max_active_runs at once"
        gate.open()
        await recorder.wait_for(4)
        for run in await s.list_runs("hourly"):
            await s.wait_for_run(run.id, timeout=5)
        runs = sorted(await s.list_runs("hourly"), key=lambda r: r.id)
    expected = [T0 - 3 * HOUR, T0 - 2 * HOUR, T0 - HOUR, T0]
    assert recorder.values == expected
    assert [r.logical_time for r in runs] == expected
    assert [r.trigger for r in runs] == [RunTrigger.catchup] * 3 + [RunTrigger.schedule]
    assert all(r.status is DagRunStatus.success for r in runs)
    await storage.open()
    try:
        assert await events(storage) == [
            (T0 - 3 * HOUR, ScheduleEventKind.caught_up),
            (T0 - 2 * HOUR, ScheduleEventKind.caught_up),
            (T0 - HOUR, ScheduleEventKind.caught_up),
            (T0, ScheduleEventKind.regular),
        ]
    finally:
        await storage.close()


async def test_without_catchup_the_first_run_is_the_first_point_after_now(
    storage: Storage,
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=30))
    recorder = Recorder()
    dag = hourly_dag(recorder, start=T0 - 5 * HOUR, catchup=False)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        assert await s.list_runs("hourly") == []
        clock.set(T0 + HOUR - timedelta(microseconds=1))
        await anyio.wait_all_tasks_blocked()
        assert await s.list_runs("hourly") == []
        clock.set(T0 + HOUR)
        await recorder.wait_for(1)
        (run,) = await s.list_runs("hourly")
        assert (await s.wait_for_run(run.id, timeout=5)).status is DagRunStatus.success
    assert recorder.values == [T0 + HOUR]
    assert run.trigger is RunTrigger.schedule


async def test_start_in_the_future_waits_for_start(storage: Storage) -> None:
    clock = FakeClock(T0)
    recorder = Recorder()
    dag = hourly_dag(recorder, start=T0 + 3 * HOUR + timedelta(minutes=1), catchup=True)
    async with Scheduler([dag], storage=storage, clock=clock):
        clock.set(T0 + 4 * HOUR)
        await recorder.wait_for(1)
    assert recorder.values == [T0 + 4 * HOUR]


async def test_points_missed_while_down_are_skipped_without_catchup(
    storage_factory: StorageFactory,
) -> None:
    clock = FakeClock(T0)
    recorder = Recorder()
    storage = storage_factory()
    dag = hourly_dag(recorder, start=T0, catchup=False)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        clock.set(T0 + HOUR)
        await recorder.wait_for(1)
        (run,) = await s.list_runs("hourly")
        await s.wait_for_run(run.id, timeout=5)
    clock.set(T0 + 5 * HOUR + timedelta(minutes=10))
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        clock.set(T0 + 6 * HOUR)
        await recorder.wait_for(2)
        runs = await s.list_runs("hourly")
        for r in runs:
            await s.wait_for_run(r.id, timeout=5)
    assert recorder.values == [T0 + HOUR, T0 + 6 * HOUR]
    await storage.open()
    try:
        assert await events(storage) == [
            (T0 + HOUR, ScheduleEventKind.regular),
            (T0 + 2 * HOUR, ScheduleEventKind.skipped),
            (T0 + 3 * HOUR, ScheduleEventKind.skipped),
            (T0 + 4 * HOUR, ScheduleEventKind.skipped),
            (T0 + 5 * HOUR, ScheduleEventKind.skipped),
            (T0 + 6 * HOUR, ScheduleEventKind.regular),
        ]
    finally:
        await storage.close()


async def test_points_missed_while_down_are_run_with_catchup(
    storage_factory: StorageFactory,
) -> None:
    clock = FakeClock(T0)
    recorder = Recorder()
    storage = storage_factory()
    dag = hourly_dag(recorder, start=T0, catchup=True)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        await recorder.wait_for(1)
        (run,) = await s.list_runs("hourly")
        await s.wait_for_run(run.id, timeout=5)
    clock.set(T0 + 3 * HOUR + timedelta(minutes=10))
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        await recorder.wait_for(4)
        for r in await s.list_runs("hourly"):
            await s.wait_for_run(r.id, timeout=5)
    assert recorder.values == [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR]


async def test_catchup_creates_at_most_max_catchup_runs_per_start_and_skips_the_rest(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ppacer_async.scheduler")
    clock = FakeClock(T0)
    recorder = Recorder()
    dag = hourly_dag(recorder, start=T0 - 10 * HOUR, catchup=True, max_catchup_runs=3)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        await recorder.wait_for(4)
        for run in await s.list_runs("hourly"):
            await s.wait_for_run(run.id, timeout=5)
        runs = sorted(await s.list_runs("hourly"), key=lambda r: r.id)
    assert [r.logical_time for r in runs] == [T0 - 10 * HOUR, T0 - 9 * HOUR, T0 - 8 * HOUR, T0]
    assert [r.trigger for r in runs] == [RunTrigger.catchup] * 3 + [RunTrigger.schedule]
    assert sorted(recorder.values) == [r.logical_time for r in runs]
    assert "max_catchup_runs=3" in caplog.text
    await storage.open()
    try:
        assert await events(storage) == [
            *((T0 - k * HOUR, ScheduleEventKind.caught_up) for k in (10, 9, 8)),
            *((T0 - k * HOUR, ScheduleEventKind.skipped) for k in range(7, 0, -1)),
            (T0, ScheduleEventKind.regular),
        ]
    finally:
        await storage.close()


async def test_years_of_one_second_points_past_the_catchup_cap_are_skipped_at_once(
    storage: Storage,
) -> None:
    clock = FakeClock(T0)
    recorder = Recorder()

    @task
    async def tick(ctx: TaskContext) -> None:
        recorder.add(ctx.logical_time)

    second = timedelta(seconds=1)
    start = T0.replace(year=2020)
    dag = DAG(
        "ticks", schedule=Interval(second), start=start, catchup=True, max_catchup_runs=2
    ).add(tick)
    with anyio.fail_after(30):  # point by point, 190 million points would take minutes
        async with Scheduler([dag], storage=storage, clock=clock) as s:
            await recorder.wait_for(3)
            for run in await s.list_runs("ticks"):
                await s.wait_for_run(run.id, timeout=5)
    assert sorted(recorder.values) == [start, start + second, T0]
    await storage.open()
    try:
        skipped = [
            e.logical_time
            for e in await storage.schedule_events("ticks", limit=2000)
            if e.kind is ScheduleEventKind.skipped
        ]
    finally:
        await storage.close()
    # The latest 1,000 skipped points are recorded one by one, the rest counted in a log.
    assert sorted(skipped) == [T0 - k * second for k in range(1000, 0, -1)]


async def test_manual_triggers_never_shift_the_schedule(storage: Storage) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    recorder = Recorder()
    dag = hourly_dag(recorder, start=T0, catchup=False)
    async with Scheduler([dag], storage=storage, clock=clock) as s:
        manual = await s.trigger("hourly")
        await s.wait_for_run(manual.id, timeout=5)
        clock.set(T0 + HOUR)
        await recorder.wait_for(2)
        runs = sorted(await s.list_runs("hourly"), key=lambda r: r.id)
        for r in runs:
            await s.wait_for_run(r.id, timeout=5)
    assert [(r.trigger, r.logical_time) for r in runs] == [
        (RunTrigger.manual, T0 + timedelta(minutes=10)),
        (RunTrigger.schedule, T0 + HOUR),
    ]
    await storage.open()
    try:
        kinds = [kind for _, kind in await events(storage)]
        assert kinds == [ScheduleEventKind.manual, ScheduleEventKind.regular]
        assert await storage.last_schedule_point("hourly") == T0 + HOUR
    finally:
        await storage.close()


async def test_retry_waits_for_its_delay_with_backoff_and_cap(storage: Storage) -> None:
    clock = FakeClock(T0)
    notifier = RecordingNotifier()

    @task(
        retries=3,
        retry_delay=timedelta(seconds=10),
        retry_backoff=2,
        max_retry_delay=timedelta(seconds=15),
        alert_on_retry=True,
    )
    async def flaky(ctx: TaskContext) -> None:
        raise RuntimeError(f"attempt {ctx.attempt}")

    dag = DAG("retry").add(flaky)
    async with Scheduler([dag], storage=storage, clock=clock, notifier=notifier) as s:
        run = await s.trigger("retry")
        for n, delay in enumerate((10, 15, 15), start=1):
            await notifier.wait_for(n)
            clock.advance(timedelta(seconds=delay))
        await notifier.wait_for(4)
        rows = await s.task_runs(run.id)
        assert (await s.get_run(run.id)).status is DagRunStatus.failed
    assert [(tr.attempt, tr.status, tr.scheduled_at) for tr in rows] == [
        (1, TaskStatus.up_for_retry, T0),
        (2, TaskStatus.up_for_retry, T0 + timedelta(seconds=10)),
        (3, TaskStatus.up_for_retry, T0 + timedelta(seconds=25)),
        (4, TaskStatus.failed, T0 + timedelta(seconds=40)),
    ]
    assert [a.kind for a in notifier.alerts] == ["retry", "retry", "retry", "failure"]


async def test_a_due_point_with_nothing_skipped_writes_no_skipped_events() -> None:
    # Each due point passes through the skip check: with nothing skipped, it must not
    # cost a storage call (a round trip on PostgreSQL, before the run is created).
    calls: list[int] = []

    class Counting(MemoryStorage):
        async def record_schedule_events(self, events: Sequence[ScheduleEvent]) -> None:
            calls.append(len(events))
            await super().record_schedule_events(events)

    clock = FakeClock(T0 + timedelta(minutes=30))
    recorder = Recorder()
    dag = hourly_dag(recorder, start=T0 - 5 * HOUR, catchup=False)
    async with Scheduler([dag], storage=Counting(), clock=clock):
        for k in (1, 2, 3):
            clock.set(T0 + k * HOUR)
            await recorder.wait_for(k)
        clock.set(T0 + 6 * HOUR)  # 4 and 5 passed: recorded as skipped
        await recorder.wait_for(4)
    assert recorder.values == [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 6 * HOUR]
    assert calls == [2], "one write, of the two points skipped (4 and 5)"


async def test_the_system_clock_never_wakes_before_its_deadline() -> None:
    clock = SystemClock()
    for k in range(20):
        deadline = clock.now() + timedelta(microseconds=500 + 250 * k)
        await clock.sleep_until(deadline)
        assert clock.now() >= deadline
