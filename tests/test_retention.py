"""Retention: pruning finished runs with their attempts, logs and schedule events, on
every storage, from the command line and while a scheduler serves."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import attrs
import pytest

from ppacer_async import (
    DAG,
    DagNotFound,
    DagRunStatus,
    FakeClock,
    Scheduler,
    TaskContext,
    operations,
    task,
)
from ppacer_async._enums import RunTrigger, ScheduleEventKind, TaskStatus
from ppacer_async._structures import Changes, LogRecord, ScheduleEvent, TaskRun
from ppacer_async.abc import Storage
from ppacer_async.cli import main
from ppacer_async.schedules import Interval
from ppacer_async.storage.sqlite import SQLiteStorage

from .conftest import StorageFactory

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def add_run(
    storage: Storage,
    dag_id: str,
    minute: int,
    status: DagRunStatus,
    *,
    kind: ScheduleEventKind = ScheduleEventKind.regular,
    tasks: int = 2,
) -> int:
    """A scheduled run at ``minute`` with ``tasks`` attempts and a log line each,
    finished (when ``status`` says so) ten minutes later."""
    run = await storage.create_run(
        dag_id=dag_id,
        logical_time=at(minute),
        trigger=RunTrigger.schedule,
        params={},
        dag_version=1,
        created_at=at(minute),
        event=kind,
    )
    assert run is not None
    finished = at(minute + 10) if status.finished else None
    attempts = [
        TaskRun(
            run_id=run.id,
            task_id=f"t{k}",
            attempt=1,
            status=TaskStatus.success if status.finished else TaskStatus.running,
            started_at=at(minute),
            finished_at=finished,
            result={"k": k},
        )
        for k in range(tasks)
    ]
    logs = [
        LogRecord(
            run_id=run.id, task_id=f"t{k}", attempt=1, time=at(minute), level="INFO", message="hi"
        )
        for k in range(tasks)
    ]
    await storage.commit(
        Changes(
            dag_runs=[
                attrs.evolve(run, status=status, started_at=at(minute), finished_at=finished)
            ],
            task_runs=attempts,
            logs=logs,
        )
    )
    return run.id


async def test_prune_deletes_old_finished_runs_and_keeps_active_runs_and_the_last_point(
    storage: Storage,
) -> None:
    await storage.sync_dag("etl", "h", {"tasks": {}}, at(0))
    old = [await add_run(storage, "etl", m, DagRunStatus.success) for m in (0, 1, 2)]
    failed = await add_run(storage, "etl", 3, DagRunStatus.failed)
    active = await add_run(storage, "etl", 4, DagRunStatus.running)
    await storage.record_schedule_event(
        ScheduleEvent(
            dag_id="etl", logical_time=at(5), kind=ScheduleEventKind.skipped, created_at=at(5)
        )
    )
    later = await add_run(storage, "etl", 6, DagRunStatus.success)
    recent = await add_run(storage, "etl", 1000, DagRunStatus.success)
    before = at(100)

    dry = await storage.prunable(before)
    assert (dry.dag_runs, dry.task_runs, dry.task_logs) == (5, 10, 10)
    # The events of the pruned runs and the skipped point at minute 5; the last
    # schedule point (minute 1000) and the active run's stay.
    assert dry.schedule_events == 6

    total = operations.PruneCounts()
    while True:
        done = await storage.prune(before, limit=2)
        total += done
        if not (done.dag_runs or done.schedule_events):
            break
    assert total == dry
    for run_id in (*old, failed, later):
        assert await storage.get_run(run_id) is None
        assert await storage.task_runs(run_id) == []
        assert await storage.logs(run_id) == []
    for run_id in (active, recent):
        assert await storage.get_run(run_id) is not None
        assert len(await storage.task_runs(run_id)) == 2
    # The watcher continues from the last schedule point, whatever was pruned.
    assert await storage.last_schedule_point("etl") == at(1000)
    kept = {e.logical_time for e in await storage.schedule_events("etl")}
    assert kept == {at(4), at(1000)}
    assert await storage.prunable(before) == operations.PruneCounts()


async def test_prune_keeps_the_last_schedule_point_even_when_its_run_is_old(
    storage: Storage,
) -> None:
    only = await add_run(storage, "etl", 0, DagRunStatus.success)
    await add_run(storage, "other", 0, DagRunStatus.success)
    done = await storage.prune(at(100), dag_id="etl")
    assert done.dag_runs == 1
    assert await storage.get_run(only) is None
    assert await storage.last_schedule_point("etl") == at(0)
    assert await storage.last_schedule_point("other") == at(0)
    assert (await storage.counts()).dag_runs == 1  # the other DAG's run


async def test_prune_can_keep_failed_runs_and_one_dag(storage: Storage) -> None:
    ok = await add_run(storage, "etl", 0, DagRunStatus.success)
    bad = await add_run(storage, "etl", 1, DagRunStatus.failed)
    other = await add_run(storage, "other", 0, DagRunStatus.success)
    await add_run(storage, "etl", 500, DagRunStatus.success)
    await add_run(storage, "other", 500, DagRunStatus.success)
    await storage.prune(at(100), keep_failed=True, dag_id="etl")
    assert await storage.get_run(ok) is None
    assert await storage.get_run(bad) is not None
    assert await storage.get_run(other) is not None


async def test_prune_operation_refuses_bad_arguments(storage: Storage) -> None:
    with pytest.raises(ValueError, match="older_than must be a positive timedelta"):
        await operations.prune(storage, older_than=timedelta(0), now=at(0))
    with pytest.raises(DagNotFound, match="no DAG 'nope'"):
        await operations.prune(storage, older_than=timedelta(days=1), now=at(0), dag_id="nope")


async def test_prune_operation_deletes_in_batches_what_the_dry_run_counted(
    storage: Storage,
) -> None:
    for minute in range(25):
        await add_run(storage, "etl", minute, DagRunStatus.success)
    await add_run(storage, "etl", 5000, DagRunStatus.success)
    now = at(100) + timedelta(days=1)
    dry = await operations.prune(storage, older_than=timedelta(days=1), now=now, dry_run=True)
    assert dry.dag_runs == 25
    assert (await storage.counts()).dag_runs == 26
    done = await operations.prune(storage, older_than=timedelta(days=1), now=now, batch=10)
    assert done == dry
    assert (await storage.counts()).dag_runs == 1


async def test_scheduler_retention_prunes_runs_once_they_are_old_enough(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def work(ctx: TaskContext) -> int:
        ctx.log.info("working")
        return 1

    clock = FakeClock(at(0))
    dag = DAG("kept", schedule=Interval(timedelta(hours=1)), start=at(0)).add(work)
    scheduler = Scheduler(
        [dag], storage=storage_factory(), clock=clock, retention=timedelta(hours=2)
    )
    with pytest.raises(ValueError, match="retention must be a timedelta of at least"):
        Scheduler([dag], storage=storage_factory(), retention=timedelta(0))
    async with scheduler:
        manual = await scheduler.trigger("kept")
        assert (await scheduler.wait_for_run(manual.id, 10)).status is DagRunStatus.success
        engine = scheduler._engine
        assert engine is not None
        coordinator = engine.coordinator  # type: ignore[attr-defined]
        retention = coordinator.retention
        assert retention is not None
        clock.advance(timedelta(hours=1))  # not old enough yet; the hourly run is due
        with anyio.fail_after(10):
            await retention.wait_for_round()
        assert await scheduler.get_run(manual.id)
        clock.advance(timedelta(hours=2))
        with anyio.fail_after(10):
            await retention.wait_for_round()
        with pytest.raises(Exception, match="no run with id"):
            await scheduler.get_run(manual.id)
        # The schedule goes on from its last point: nothing is run again.
        runs = await scheduler.list_runs("kept")
        assert all(run.trigger is not RunTrigger.manual for run in runs)
        assert len({run.logical_time for run in runs}) == len(runs)


async def test_sqlite_gives_pruned_space_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "ppacer.db"
    storage = SQLiteStorage(path=str(path))
    async with storage:
        for minute in range(200):
            await add_run(storage, "etl", minute, DagRunStatus.success, tasks=20)
        await add_run(storage, "etl", 9000, DagRunStatus.success)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    async with storage:
        first = await storage.prune(at(8000), limit=100)
        assert first.dag_runs == 100
        with sqlite3.connect(path) as conn:
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        assert free > 20
        assert await storage.reclaim_space() is False  # up to 1,000 pages in one call
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        done = await operations.prune(storage, older_than=timedelta(days=1), now=at(9000))
    assert done.dag_runs == 100
    with sqlite3.connect(path) as conn:
        pages_after = conn.execute("PRAGMA page_count").fetchone()[0]
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert pages_after < pages_before / 4


async def test_vacuum_switches_an_older_sqlite_file_to_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as earlier versions created it
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("CREATE TABLE placeholder (x)")
        conn.execute("DROP TABLE placeholder")
    storage = SQLiteStorage(path=str(path))
    async with storage:
        await add_run(storage, "etl", 0, DagRunStatus.success)
        assert not await storage.reclaim_space()
        await storage.vacuum()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def test_cli_prune_counts_then_deletes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ppacer.db'}"

    async def fill() -> None:
        async with SQLiteStorage(path=str(tmp_path / "ppacer.db")) as storage:
            await storage.sync_dag("etl", "h", {"tasks": {}}, at(0))
            for minute in range(3):
                await add_run(storage, "etl", minute, DagRunStatus.success)
            await add_run(storage, "etl", 3, DagRunStatus.failed)
            await add_run(storage, "etl", 4, DagRunStatus.running)

    anyio.run(fill)
    base = ["db", "prune", "--storage", url, "--older-than", "30d"]
    assert main([*base, "--dry-run", "--keep-failed", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dry_run"] is True
    assert shown["dag_runs"] == 3 and shown["task_runs"] == 6
    assert main([*base, "--dag", "etl"]) == 0
    assert capsys.readouterr().out.startswith("deleted 4 runs, 8 task attempts")
    assert main([*base, "--dag", "nope"]) != 0
    assert "no DAG 'nope'" in capsys.readouterr().err
    assert main(["db", "prune", "--storage", url, "--older-than", "soon"]) != 0
    assert "expected a number and a unit" in capsys.readouterr().err


def test_serve_refuses_a_retention_that_is_not_a_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path / "dags.py"), "--retention", "a month"]) == 2
    assert "expected a number and a unit" in capsys.readouterr().err
