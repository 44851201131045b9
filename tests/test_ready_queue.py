"""The ready queue's wake-up policy: every queued item reaches a worker, and every
worker is reached when tasks wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, task
from ppacer_async._scheduler.queue import ReadyQueue
from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage

from .helpers import Gate

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite"])
def local_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage | str:
    """A storage one process schedules alone on."""
    return MemoryStorage() if request.param == "memory" else f"sqlite:///{tmp_path / 'db.sqlite'}"


async def test_every_sleeping_worker_takes_an_item_when_items_wait_on_io() -> None:
    queue: ReadyQueue[int] = ReadyQueue(2000)
    workers = 1000
    holding = 0
    release = anyio.Event()
    all_in = anyio.Event()

    async def worker() -> None:
        nonlocal holding
        while True:
            await queue.get()
            holding += 1
            if holding == workers:
                all_in.set()
            queue.hand_off()  # the task awaits I/O: its worker is busy meanwhile
            await release.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
            await anyio.wait_all_tasks_blocked()
            for n in range(workers):
                assert queue.put_nowait(0, n)
            await all_in.wait()
            assert len(queue) == 0
            tg.cancel_scope.cancel()


async def test_an_item_whose_woken_worker_is_cancelled_goes_to_another() -> None:
    queue: ReadyQueue[str] = ReadyQueue(10)
    got: list[tuple[str, str]] = []
    cancelled: list[str] = []
    tasks: dict[str, asyncio.Task[object]] = {}

    async def worker(name: str) -> None:
        current = asyncio.current_task()
        assert current is not None
        tasks[name] = current
        try:
            got.append((name, await queue.get()))
        except asyncio.CancelledError:  # kept here: the test looks at who took what
            cancelled.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, "first")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(worker, "second")
            await anyio.wait_all_tasks_blocked()
            queue.put_nowait(0, "item")  # wakes the first sleeper...
            tasks["first"].cancel()  # ...which is cancelled before it takes the item
    assert cancelled == ["first"]
    assert got == [("second", "item")]


async def test_an_item_taken_before_its_woken_worker_runs_leaves_it_waiting() -> None:
    queue: ReadyQueue[str] = ReadyQueue(10)
    got: list[str] = []

    async def worker() -> None:
        got.append(await queue.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            await anyio.wait_all_tasks_blocked()
            queue.put_nowait(0, "first")
            assert queue.get_nowait() == "first"  # a busy worker came back for it
            await anyio.wait_all_tasks_blocked()
            assert got == []
            queue.put_nowait(0, "second")
    assert got == ["second"]


async def test_a_thousand_workers_run_a_thousand_waiting_tasks_at_once(
    local_storage: Storage | str,
) -> None:
    gate = Gate()

    async def wait(ctx: TaskContext) -> None:
        await gate.enter()

    dag = DAG("wide").add(*(task(wait, id=f"w{n}") for n in range(1000)))
    async with Scheduler([dag], storage=local_storage, max_concurrent_tasks=1000) as s:
        run = await s.trigger("wide")
        await gate.wait_inside(1000)
        assert s.statistics().running_tasks == 1000
        gate.open()
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success
    assert gate.peak == 1000
