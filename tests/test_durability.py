"""Crashes, stops and restarts: state is what storage says."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagRunStatus,
    Scheduler,
    StorageError,
    StorageLockedError,
    TaskContext,
    TaskStatus,
    task,
)
from ppacer_async.storage.sqlite import SQLiteStorage

from .conftest import StorageFactory
from .helpers import Gate, Subprocess

SCRIPT = Path(__file__).parent / "scripts" / "crashy.py"
ROOT = Path(__file__).parent.parent


def crashy(*args: str) -> Subprocess:
    """``python tests/scripts/crashy.py ARGS`` with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return Subprocess([sys.executable, str(SCRIPT), *args], env=env)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Subprocess]]:
    """Start crash-test processes that are killed and reaped when the test ends."""
    started: list[Subprocess] = []

    def start(*args: str) -> Subprocess:
        started.append(crashy(*args))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


async def read_rows(db: Path) -> tuple[DagRunStatus, dict[str, list[tuple[int, TaskStatus]]]]:
    async with SQLiteStorage(path=str(db)) as storage:
        (run,) = await storage.list_runs()
        rows: dict[str, list[tuple[int, TaskStatus]]] = {}
        for tr in await storage.task_runs(run.id):
            rows.setdefault(tr.task_id, []).append((tr.attempt, tr.status))
        return run.status, rows


@pytest.mark.slow
@pytest.mark.anyio
async def test_kill_9_mid_run_then_a_new_process_finishes_the_run(
    tmp_path: Path, spawn: Callable[..., Subprocess]
) -> None:
    db, side = tmp_path / "crash.db", tmp_path / "side.txt"
    doomed = spawn(str(db), str(side))
    doomed.wait_for_next(re.escape("task slow attempt 1 started"), timeout=30)
    doomed.kill()
    status, rows = await read_rows(db)
    assert status is DagRunStatus.running
    assert rows["slow"] == [(1, TaskStatus.running)]

    survivor = spawn(str(db), str(side))
    survivor.wait_for_next(re.escape("FINISHED success"), timeout=30)
    assert survivor.proc.wait(30) == 0
    survivor.close()
    status, rows = await read_rows(db)
    assert status is DagRunStatus.success
    assert rows == {
        "first": [(1, TaskStatus.success)],
        "slow": [(1, TaskStatus.interrupted), (2, TaskStatus.success)],
        "after": [(1, TaskStatus.success)],
    }
    assert side.read_text().split() == ["first#1", "slow#1", "slow#2", "after#1"]


@pytest.mark.slow
@pytest.mark.anyio
async def test_three_interruptions_in_a_row_fail_the_task(
    tmp_path: Path, spawn: Callable[..., Subprocess]
) -> None:
    db, side = tmp_path / "crash.db", tmp_path / "side.txt"
    for attempt in (1, 2, 3):
        proc = spawn(str(db), str(side), "99")
        proc.wait_for_next(re.escape(f"task slow attempt {attempt} started"), timeout=30)
        proc.kill()
    last = spawn(str(db), str(side))
    last.wait_for_next(re.escape("FINISHED failed"), timeout=30)
    assert last.proc.wait(30) == 0
    last.close()
    status, rows = await read_rows(db)
    assert status is DagRunStatus.failed
    assert rows["slow"] == [
        (1, TaskStatus.interrupted),
        (2, TaskStatus.interrupted),
        (3, TaskStatus.failed),
    ]
    assert rows["after"] == [(1, TaskStatus.upstream_failed)]
    async with SQLiteStorage(path=str(db)) as storage:
        (run,) = await storage.list_runs()
        failed = [tr for tr in await storage.task_runs(run.id) if tr.task_id == "slow"][-1]
    assert "interrupted 3 times in a row" in (failed.error or "")


@pytest.mark.anyio
async def test_stop_records_in_flight_attempts_interrupted_and_they_run_again(
    storage_factory: StorageFactory,
) -> None:
    gate = Gate()
    attempts: list[int] = []

    @task
    async def long(ctx: TaskContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await gate.enter()
        return ctx.attempt

    @task
    def long_thread(ctx: TaskContext) -> str:
        return "thread done"

    dag = DAG("stop").add(long >> long_thread)
    storage = storage_factory()
    async with Scheduler([dag], storage=storage) as s:
        run = await s.trigger("stop")
        await gate.wait_inside(1)
    await storage.open()
    try:
        rows = await storage.task_runs(run.id)
        assert [(tr.task_id, tr.attempt, tr.status) for tr in rows] == [
            ("long", 1, TaskStatus.interrupted)
        ]
        assert (await storage.get_run(run.id)).status is DagRunStatus.running  # type: ignore[union-attr]
    finally:
        await storage.close()
    async with Scheduler([dag], storage=storage) as s:
        done = await s.wait_for_run(run.id, timeout=10)
        rows = await s.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert attempts == [1, 2]
    assert [(tr.task_id, tr.attempt, str(tr.status), str(tr.reason)) for tr in rows] == [
        ("long", 1, "interrupted", "initial"),
        ("long", 2, "success", "interrupted"),
        ("long_thread", 1, "success", "initial"),
    ]


@pytest.mark.anyio
async def test_stop_is_bounded_even_with_a_stuck_thread_task(tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()

    @task
    def stuck(ctx: TaskContext) -> None:
        started.set()
        release.wait(30)

    dag = DAG("stuck").add(stuck)
    storage = SQLiteStorage(path=str(tmp_path / "s.db"))
    try:
        with anyio.fail_after(10):
            async with Scheduler([dag], storage=storage) as s:
                run = await s.trigger("stuck")
                await anyio.to_thread.run_sync(started.wait, 10)
        async with storage:
            (row,) = await storage.task_runs(run.id)
        assert row.status is TaskStatus.interrupted
    finally:
        release.set()


@pytest.mark.anyio
async def test_second_scheduler_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "one.db")
    async with Scheduler([], storage=f"sqlite:///{path}"):
        second = Scheduler([], storage=f"sqlite:///{path}")
        with pytest.raises(StorageLockedError, match="another scheduler"):
            await second.serve()
    async with Scheduler([], storage=f"sqlite:///{path}"):
        pass  # released on stop


@pytest.mark.anyio
async def test_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not a SQLite database"):
        await Scheduler([], storage=f"sqlite:///{path}").serve()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


@pytest.mark.anyio
async def test_idle_scheduler_uses_no_measurable_cpu(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from ppacer_async.schedules import Interval

    @task
    async def hourly(ctx: TaskContext) -> None: ...

    dag = DAG(
        "idle",
        schedule=Interval(timedelta(hours=6)),
        start=datetime.now(UTC) + timedelta(hours=3),
    ).add(hourly)
    async with Scheduler([dag], storage=f"sqlite:///{tmp_path / 'idle.db'}"):
        await anyio.wait_all_tasks_blocked()
        before = time.process_time()
        await anyio.sleep(1.0)  # the measurement window, not a wait for an event
        used = time.process_time() - before
    assert used < 0.05, f"an idle scheduler used {used:.3f}s of CPU in 1s"


@pytest.mark.anyio
async def test_ready_tasks_that_never_started_run_after_a_restart(
    storage_factory: StorageFactory,
) -> None:
    """Readiness is not written separately: it is derived again from stored results."""
    gate = Gate()
    ran: list[tuple[str, int]] = []

    @task
    async def root(ctx: TaskContext) -> None:
        ran.append((ctx.task_id, ctx.attempt))

    @task
    async def blocker(ctx: TaskContext) -> None:
        ran.append((ctx.task_id, ctx.attempt))
        if ctx.attempt == 1:
            await gate.enter()

    @task
    async def waiting(ctx: TaskContext) -> None:
        ran.append((ctx.task_id, ctx.attempt))

    dag = DAG("ready").add(root >> [blocker, waiting])
    storage = storage_factory()
    async with Scheduler([dag], storage=storage, max_concurrent_tasks=1) as s:
        run = await s.trigger("ready")
        await gate.wait_inside(1)
        assert s.statistics().queued_tasks == 1  # `waiting` is ready but not started
    async with Scheduler([dag], storage=storage) as s:
        done = await s.wait_for_run(run.id, timeout=10)
        rows = await s.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert sorted(ran) == [("blocker", 1), ("blocker", 2), ("root", 1), ("waiting", 1)]
    assert [(tr.task_id, tr.attempt, tr.status) for tr in rows] == [
        ("blocker", 1, TaskStatus.interrupted),
        ("blocker", 2, TaskStatus.success),
        ("root", 1, TaskStatus.success),
        ("waiting", 1, TaskStatus.success),
    ]


@pytest.mark.slow
@pytest.mark.anyio
async def test_kill_9_during_a_mapped_fan_out_reruns_only_the_unfinished_instances(
    tmp_path: Path, spawn: Callable[..., Subprocess]
) -> None:
    db, side = tmp_path / "crash.db", tmp_path / "side.txt"
    script = str(Path(__file__).parent / "scripts" / "crashy_map.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    doomed = Subprocess([sys.executable, script, str(db), str(side)], env=env)
    try:
        # Event lines are printed after their commit: the even instances' successes
        # and the odd ones' starts are all stored when the process dies.
        for k in range(20):
            word = "started" if k % 2 else "success"
            doomed.wait_for(re.escape(f"task process[{k}] attempt 1 {word}"), timeout=30)
        doomed.kill()
    finally:
        doomed.close()
    async with SQLiteStorage(path=str(db)) as storage:
        (run,) = await storage.list_runs()
        assert run.status is DagRunStatus.running

    survivor = Subprocess([sys.executable, script, str(db), str(side)], env=env)
    try:
        survivor.wait_for_next(re.escape("FINISHED success"), timeout=30)
        assert survivor.proc.wait(30) == 0
    finally:
        survivor.close()
    ran = side.read_text().split()
    for k in range(20):
        expected = [f"process[{k}]#1", f"process[{k}]#2"] if k % 2 else [f"process[{k}]#1"]
        assert [line for line in ran if line.startswith(f"process[{k}]#")] == expected
    assert ran.count("split#1") == 1 and ran[-1] == "combine#1"
    async with SQLiteStorage(path=str(db)) as storage:
        rows = await storage.task_runs(run.id)
    combine = next(tr for tr in rows if tr.task_id == "combine")
    assert combine.result == [k * 10 + 1 for k in range(20)]
    odd = sorted((tr.attempt, tr.status) for tr in rows if tr.task_id == "process[3]")
    assert odd == [(1, TaskStatus.interrupted), (2, TaskStatus.success)]
