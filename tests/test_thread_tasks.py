"""Sync tasks in threads: the slots of ``max_threads``, attempts given up on, and
calling back into the event loop."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, TaskStatus, task
from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite"])
def local_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage | str:
    """A storage one process schedules alone on."""
    return MemoryStorage() if request.param == "memory" else f"sqlite:///{tmp_path / 'db.sqlite'}"


async def test_a_sync_task_can_call_back_into_the_event_loop(local_storage: Storage | str) -> None:
    loop_thread = threading.get_ident()

    def on_the_loop() -> int:
        return threading.get_ident()

    async def awaited() -> str:
        await anyio.lowlevel.checkpoint()
        return "awaited"

    @task
    def calls_back(ctx: TaskContext) -> list[object]:
        assert threading.get_ident() != loop_thread
        anyio.from_thread.check_cancelled()
        return [anyio.from_thread.run_sync(on_the_loop), anyio.from_thread.run(awaited)]

    async with Scheduler([DAG("back").add(calls_back)], storage=local_storage) as s:
        run = await s.trigger("back")
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success
        (row,) = await s.task_runs(run.id)
    assert row.result == [loop_thread, "awaited"]


async def test_a_timed_out_thread_frees_its_slot_while_it_still_runs(
    local_storage: Storage | str,
) -> None:
    stuck_may_return = threading.Event()
    ran_meanwhile = threading.Event()

    @task(timeout=timedelta(milliseconds=100))
    def stuck(ctx: TaskContext) -> None:
        stuck_may_return.wait(10)  # ignores ctx.cancelled

    @task(trigger_rule="all_done")
    def after(ctx: TaskContext) -> None:
        ran_meanwhile.set()

    dag = DAG("slots").add(stuck >> after)
    try:
        async with Scheduler([dag], storage=local_storage, max_threads=1) as s:
            run = await s.trigger("slots")
            done = await s.wait_for_run(run.id, timeout=10)
            rows = {tr.task_id: tr for tr in await s.task_runs(run.id)}
    finally:
        stuck_may_return.set()
    assert done.status is DagRunStatus.failed
    assert rows["stuck"].status is TaskStatus.failed
    assert "timed out" in (rows["stuck"].error or "")
    assert ran_meanwhile.is_set()  # with the only thread slot's thread still stuck


async def test_a_sync_attempt_waiting_for_a_thread_never_starts_once_its_run_is_cancelled(
    local_storage: Storage | str,
) -> None:
    release = threading.Event()
    started: list[str] = []
    holding = threading.Event()

    @task
    def holds(ctx: TaskContext) -> None:
        started.append("holds")
        holding.set()
        release.wait(10)

    @task(priority=-1)
    def waits(ctx: TaskContext) -> None:
        started.append("waits")

    dag = DAG("queue").add(holds, waits)
    try:
        async with Scheduler([dag], storage=local_storage, max_threads=1) as s:
            run = await s.trigger("queue")
            await anyio.to_thread.run_sync(holding.wait, 10)
            await s.cancel_run(run.id)
            done = await s.wait_for_run(run.id, timeout=10)
            release.set()
    finally:
        release.set()
    assert done.status is DagRunStatus.cancelled
    assert started == ["holds"]
