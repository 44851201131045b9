"""Pause, unpause, backfill and restart, in process and through storage alone (as the
command line does while a scheduler serves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagNotFound,
    DagRunStatus,
    FakeClock,
    InvalidOperation,
    RunNotFound,
    RunTrigger,
    ScheduleEventKind,
    Scheduler,
    TaskContext,
    TaskNotFound,
    TaskStatus,
    operations,
    task,
)
from ppacer_async.abc import Storage
from ppacer_async.schedules import Interval
from ppacer_async.storage import MemoryStorage
from ppacer_async.storage.sqlite import SQLiteStorage

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
        earliest = datetime.min.replace(tzinfo=UTC)
        with pytest.raises(InvalidOperation, match="years 1 to 9999"):
            await s.backfill("hourly", earliest, T0)
        assert await s.list_runs("hourly") == []  # nothing was queued


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
            run = await operations.trigger(other, "outside", {"x": 1}, s.clock.now())
            await recorder.wait_for(1)
            assert (await s.wait_for_run(run.id, timeout=5)).status is DagRunStatus.failed
            restarted = await operations.restart(other, run.id)
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


# -- the read side: what the command line and the web app show --------------------------


def etl(*, fail_load: bool = True) -> DAG:
    @task
    async def extract(ctx: TaskContext) -> int:
        ctx.log.info("extracting")
        ctx.log.warning("slow source")
        return 1

    @task(retries=1, retry_delay=timedelta(0))
    async def load(ctx: TaskContext) -> None:
        ctx.log.info("loading, attempt %d", ctx.attempt)
        if fail_load:
            raise RuntimeError("the warehouse is down")

    @task
    async def report(ctx: TaskContext) -> None:
        pass

    return DAG(
        "etl",
        schedule=Interval(HOUR),
        start=T0,
        description="moves rows",
        tags=("nightly",),
        params={"limit": 5},
    ).add(extract >> load >> report)


async def failed_etl_run(storage: Storage) -> int:
    """Serve ``etl`` once (its load fails twice), then reopen the storage."""
    clock = FakeClock(T0 - timedelta(minutes=30))
    async with Scheduler([etl()], storage=storage, clock=clock) as s:
        run = await s.trigger("etl")
        assert (await s.wait_for_run(run.id, timeout=5)).status is DagRunStatus.failed
    await storage.open()
    return run.id


async def test_run_detail_lists_every_task_with_all_its_attempts(storage: Storage) -> None:
    run_id = await failed_etl_run(storage)
    detail = await operations.get_run_detail(storage, run_id)
    assert detail.run.id == run_id
    assert detail.run.status is DagRunStatus.failed
    # (definition order where the storage keeps it: PostgreSQL's jsonb does not)
    tasks = {t.task_id: t for t in detail.tasks}
    assert sorted(tasks) == ["extract", "load", "report"]
    extract, load, report = tasks["extract"], tasks["load"], tasks["report"]
    assert load.upstream == ("extract",)
    assert [(a.attempt, a.status) for a in load.attempts] == [
        (1, TaskStatus.up_for_retry),
        (2, TaskStatus.failed),
    ]
    assert load.status is TaskStatus.failed
    assert load.last_error is not None and "the warehouse is down" in (load.last_error.error or "")
    assert extract.status is TaskStatus.success and extract.last_error is None
    assert report.status is TaskStatus.upstream_failed
    assert [(a.task_id, a.attempt) for a in detail.attempts] == [
        ("extract", 1),
        ("load", 1),
        ("load", 2),
        ("report", 1),
    ]


async def test_run_detail_says_which_tasks_wait_to_start(storage: Storage) -> None:
    await failed_etl_run(storage)
    run = await operations.trigger(storage, "etl", None, T0)  # nobody serves it
    detail = await operations.get_run_detail(storage, run.id)
    assert sorted((t.task_id, t.attempts, t.waiting) for t in detail.tasks) == [
        ("extract", (), "pending"),
        ("load", (), "pending"),
        ("report", (), "pending"),
    ]
    with pytest.raises(RunNotFound, match="no run with id 999"):
        await operations.get_run_detail(storage, 999)


async def test_dag_listing_shows_schedule_next_due_and_last_run(storage: Storage) -> None:
    run_id = await failed_etl_run(storage)
    now = T0 - timedelta(minutes=30)
    [summary] = await operations.list_dags(storage, now)
    assert summary.dag_id == "etl"
    assert summary.schedule == Interval(HOUR).describe()
    assert summary.paused is False
    assert summary.next_due == T0
    assert summary.last_run is not None and summary.last_run.id == run_id
    assert summary.last_run.status is DagRunStatus.failed
    assert (summary.tasks, summary.description, summary.tags) == (3, "moves rows", ("nightly",))
    await operations.pause(storage, "etl")
    [paused] = await operations.list_dags(storage, now)
    assert paused.paused is True and paused.next_due is None


async def test_dag_detail_has_its_tasks_in_order_with_their_options(storage: Storage) -> None:
    await failed_etl_run(storage)
    detail = await operations.get_dag(storage, "etl", T0)
    assert detail.summary.dag_id == "etl"
    assert sorted((t.task_id, t.upstream) for t in detail.tasks) == [
        ("extract", ()),
        ("load", ("extract",)),
        ("report", ("load",)),
    ]
    assert {t.task_id: t.options["retries"] for t in detail.tasks}["load"] == 1
    assert (detail.start, detail.catchup, detail.params) == (T0, False, {"limit": 5})
    with pytest.raises(DagNotFound, match="known: etl"):
        await operations.get_dag(storage, "nope", T0)


async def test_runs_are_listed_newest_first_with_filters_and_a_cursor(storage: Storage) -> None:
    failed_id = await failed_etl_run(storage)
    queued = [await operations.trigger(storage, "etl", None, T0 + n * HOUR) for n in range(5)]
    ids = [run.id for run in reversed(queued)]
    assert [r.id for r in await operations.list_runs(storage)] == [*ids, failed_id]
    first = await operations.list_runs(storage, dag_id="etl", limit=2)
    assert [r.id for r in first] == ids[:2]
    second = await operations.list_runs(storage, before=first[-1].id, limit=2)
    assert [r.id for r in second] == ids[2:4]
    rest = await operations.list_runs(storage, before=second[-1].id, limit=50)
    assert [r.id for r in rest] == [ids[4], failed_id]
    failed = await operations.list_runs(storage, status=DagRunStatus.failed)
    assert [r.id for r in failed] == [failed_id]
    recent = await operations.list_runs(storage, since=T0 + 3 * HOUR)
    assert [r.id for r in recent] == ids[:2]
    with pytest.raises(DagNotFound):
        await operations.list_runs(storage, dag_id="nope")


async def test_logs_filter_by_task_and_attempt_and_page_with_a_cursor(storage: Storage) -> None:
    run_id = await failed_etl_run(storage)
    everything = await operations.logs(storage, run_id)
    # each failed attempt ends with its traceback
    assert [
        (r.task_id, r.attempt, r.level, r.message.splitlines()[0]) for r in everything.records
    ] == [
        ("extract", 1, "INFO", "extracting"),
        ("extract", 1, "WARNING", "slow source"),
        ("load", 1, "INFO", "loading, attempt 1"),
        ("load", 1, "ERROR", "attempt 1 failed:"),
        ("load", 2, "INFO", "loading, attempt 2"),
        ("load", 2, "ERROR", "attempt 2 failed:"),
    ]
    assert everything.records[-1].message.endswith("RuntimeError: the warehouse is down")
    assert everything.run.status is DagRunStatus.failed
    second = await operations.logs(storage, run_id, task_id="load", attempt=2)
    assert [r.message.splitlines()[0] for r in second.records] == [
        "loading, attempt 2",
        "attempt 2 failed:",
    ]
    page = await operations.logs(storage, run_id, limit=3)
    assert (len(page.records), page.next_after) == (3, 3)
    after = await operations.logs(storage, run_id, after=page.next_after)
    assert [r.message.splitlines()[0] for r in after.records] == [
        "attempt 1 failed:",
        "loading, attempt 2",
        "attempt 2 failed:",
    ]
    assert after.next_after == 6
    with pytest.raises(TaskNotFound, match=r"has no task .nope. \(tasks: "):
        await operations.logs(storage, run_id, task_id="nope")


async def test_db_info_counts_rows(storage: Storage) -> None:
    await failed_etl_run(storage)
    info = await operations.db_info(storage)
    assert (info.counts.dags, info.counts.dag_runs, info.counts.task_runs) == (1, 1, 4)
    assert info.counts.task_logs == 6  # 4 by ctx.log, 2 tracebacks of failed attempts
    assert info.counts.schema_version >= 1
    assert info.workers == []  # nothing serves it


async def test_schema_version_on_disk_is_read_without_creating_a_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.db"
    storage = SQLiteStorage(path=str(path))
    assert await operations.schema_version_on_disk(storage) is None
    assert not path.exists()
    async with storage:
        version = (await storage.counts()).schema_version
    assert await operations.schema_version_on_disk(SQLiteStorage(path=str(path))) == version
    assert await operations.schema_version_on_disk(MemoryStorage()) == -1
