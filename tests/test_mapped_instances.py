"""Instances of a mapped task run in ranges (one queue item, one outcome event for many),
yet each stays an attempt of its own: run once, in index order in the result, retried,
failed, logged and cancelled alone, and run at once with the others when it waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import attrs
import pytest

from ppacer_async import (
    DAG,
    DagRunStatus,
    Scheduler,
    Task,
    TaskContext,
    TaskRun,
    TaskStatus,
    task,
)
from ppacer_async._enums import AttemptReason
from ppacer_async._scheduler.queue import ReadyQueue
from ppacer_async._scheduler.state import INSTANCES_PER_ITEM
from ppacer_async._structures import make_task_run
from ppacer_async._task import make_context

from .conftest import StorageFactory
from .helpers import Gate

pytestmark = pytest.mark.anyio

FAST = timedelta(milliseconds=1)


async def run_dag(
    dag: DAG, storage_factory: StorageFactory, **options: int
) -> tuple[DagRunStatus, list[TaskRun], dict[str, list[str]]]:
    """Run ``dag`` once: its status, its rows and each task's log messages."""
    async with Scheduler([dag], storage=storage_factory(), **options) as scheduler:  # type: ignore[arg-type]
        run = await scheduler.trigger(dag.dag_id)
        done = await scheduler.wait_for_run(run.id, timeout=30)
        rows = await scheduler.task_runs(run.id)
        logs: dict[str, list[str]] = {}
        for record in await scheduler.logs(run.id):
            logs.setdefault(record.task_id, []).append(f"{record.level} {record.message}")
    return done.status, rows, logs


def range_split(n: int) -> Task:
    """A task ``split`` whose result, ``[0, ..., n - 1]``, a task is mapped over."""

    @task(id="split")
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(n))

    return split


def instances(rows: list[TaskRun]) -> dict[int, list[TaskRun]]:
    """The attempts of each instance, by map index, in attempt order."""
    found: dict[int, list[TaskRun]] = {}
    for tr in sorted(rows, key=lambda t: t.attempt):
        if tr.map_index is not None:
            found.setdefault(tr.map_index, []).append(tr)
    return found


@pytest.mark.parametrize("n", [INSTANCES_PER_ITEM - 1, INSTANCES_PER_ITEM + 1, 65])
async def test_every_instance_runs_once_and_results_keep_index_order_across_ranges(
    storage_factory: StorageFactory, n: int
) -> None:
    calls: list[int] = []

    @task
    async def split(ctx: TaskContext) -> list[str]:
        return [f"e{k}" for k in range(n)]

    @task
    async def process(ctx: TaskContext) -> str:
        assert ctx.map_index is not None
        calls.append(ctx.map_index)
        return f"{ctx.item}@{ctx.map_index}"

    @task
    async def combine(ctx: TaskContext) -> list[str]:
        return list(ctx.upstream["process"])

    dag = DAG("ranges").add(split >> process.map("split") >> combine)
    status, rows, _ = await run_dag(dag, storage_factory)
    assert status is DagRunStatus.success
    assert sorted(calls) == list(range(n))
    found = instances(rows)
    assert sorted(found) == list(range(n))
    for k, attempts in found.items():
        (tr,) = attempts
        assert (tr.task_id, tr.attempt, tr.status, tr.result) == (
            f"process[{k}]",
            1,
            TaskStatus.success,
            f"e{k}@{k}",
        )
        assert tr.started_at is not None and tr.finished_at is not None
        assert tr.scheduled_at is not None and tr.scheduled_at <= tr.started_at
        assert tr.started_at <= tr.finished_at
    expected = [f"e{k}@{k}" for k in range(n)]
    by_id = {tr.task_id: tr for tr in rows}
    assert by_id["process"].result == expected
    assert by_id["combine"].result == expected


async def test_instances_that_wait_run_at_once_not_one_after_another(
    storage_factory: StorageFactory,
) -> None:
    # Two ranges' worth: were a range run one instance after the other, at most two
    # would ever be inside the gate.
    n = INSTANCES_PER_ITEM + 8
    gate = Gate()
    split = range_split(n)

    @task
    async def process(ctx: TaskContext) -> int:
        await gate.enter()
        return int(ctx.item) * 2

    dag = DAG("waiting").add(split >> process.map("split"))
    async with Scheduler([dag], storage=storage_factory()) as scheduler:
        run = await scheduler.trigger("waiting")
        await gate.wait_inside(n)
        gate.open()
        done = await scheduler.wait_for_run(run.id, timeout=30)
        rows = await scheduler.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert gate.peak == n
    assert {tr.task_id: tr.result for tr in rows}["process"] == [k * 2 for k in range(n)]
    assert all(len(a) == 1 and a[0].status is TaskStatus.success for a in instances(rows).values())


async def test_statistics_count_each_waiting_instance_not_each_range(
    storage_factory: StorageFactory,
) -> None:
    n = 2 * INSTANCES_PER_ITEM + 8  # three ranges
    gate = Gate()
    split = range_split(n)

    @task
    async def process(ctx: TaskContext) -> int:
        if ctx.map_index == 0:
            await gate.enter()  # the one worker waits here; the rest is queued
        return int(ctx.item)

    dag = DAG("counted").add(split >> process.map("split"))
    async with Scheduler([dag], storage=storage_factory(), max_concurrent_tasks=1) as scheduler:
        run = await scheduler.trigger("counted")
        await gate.wait_inside(1)
        stats = scheduler.statistics()
        assert (stats.running_tasks, stats.queued_tasks) == (1, n - 1)
        gate.open()
        done = await scheduler.wait_for_run(run.id, timeout=30)
    assert done.status is DagRunStatus.success
    assert scheduler.statistics().queued_tasks == 0


async def test_a_failed_instance_in_a_range_is_retried_alone(
    storage_factory: StorageFactory,
) -> None:
    calls: list[tuple[int | None, int]] = []

    @task
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(70))

    @task(retries=1, retry_delay=FAST)
    async def process(ctx: TaskContext) -> int:
        calls.append((ctx.map_index, ctx.attempt))
        if ctx.map_index == 40 and ctx.attempt == 1:
            raise ConnectionError("flaky")
        return int(ctx.item)

    status, rows, _ = await run_dag(
        DAG("retry_range").add(split >> process.map("split")), storage_factory
    )
    assert status is DagRunStatus.success
    assert sorted(calls) == sorted([(k, 1) for k in range(70)] + [(40, 2)])
    found = instances(rows)
    assert [(tr.attempt, tr.status) for tr in found[40]] == [
        (1, TaskStatus.up_for_retry),
        (2, TaskStatus.success),
    ]
    assert all(len(found[k]) == 1 for k in range(70) if k != 40)
    assert {tr.task_id: tr.result for tr in rows}["process"] == list(range(70))


async def test_an_instance_failing_in_a_range_fails_alone_and_each_keeps_its_own_log(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(40))

    @task
    async def process(ctx: TaskContext) -> int:
        print(f"printed by {ctx.map_index}")
        ctx.log.info("logged by %s", ctx.map_index)
        if ctx.map_index == 5:
            raise ValueError("bad element 5")
        return int(ctx.item)

    @task
    async def combine(ctx: TaskContext) -> None: ...

    dag = DAG("fail_range").add(split >> process.map("split") >> combine)
    status, rows, logs = await run_dag(dag, storage_factory)
    assert status is DagRunStatus.failed
    found = instances(rows)
    assert [tr.status for tr in found[5]] == [TaskStatus.failed]
    assert "ValueError: bad element 5" in (found[5][0].error or "")
    assert all(found[k][0].status is TaskStatus.success for k in range(40) if k != 5)
    by_id = {tr.task_id: tr for tr in rows}
    assert by_id["process"].status is TaskStatus.failed
    assert by_id["process"].error == "1 of 40 instances failed: process[5]"
    assert by_id["combine"].status is TaskStatus.upstream_failed
    assert "process" not in logs  # every record names its instance
    for k in range(40):
        lines = logs[f"process[{k}]"]
        assert lines[:2] == [f"STDOUT printed by {k}", f"INFO logged by {k}"]
        if k == 5:
            assert len(lines) == 3 and lines[2].startswith("ERROR attempt 1 failed")
            assert "ValueError: bad element 5" in lines[2]
        else:
            assert len(lines) == 2


async def test_instances_not_started_when_their_run_is_cancelled_never_start(
    storage_factory: StorageFactory,
) -> None:
    # One worker: the first instance waits, the rest of its range waits in the queue.
    gate = Gate()
    started: list[int | None] = []

    @task
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(40))

    @task
    async def process(ctx: TaskContext) -> None:
        started.append(ctx.map_index)
        await gate.enter()

    dag = DAG("cancel_range").add(split >> process.map("split"))
    async with Scheduler([dag], storage=storage_factory(), max_concurrent_tasks=1) as scheduler:
        run = await scheduler.trigger("cancel_range")
        await gate.wait_inside(1)
        await scheduler.cancel_run(run.id)
        done = await scheduler.wait_for_run(run.id, timeout=30)
        rows = await scheduler.task_runs(run.id)
    assert done.status is DagRunStatus.cancelled
    assert started == [0]
    assert gate.inside == 0  # the one that started was cancelled
    found = instances(rows)
    assert sorted(found) == list(range(40))
    assert all(a[-1].status is TaskStatus.cancelled for a in found.values())


def test_work_handed_back_goes_first_in_its_priority_even_when_the_queue_is_full() -> None:
    queue: ReadyQueue[str] = ReadyQueue(2)
    assert queue.put_nowait(0, "a") and queue.put_nowait(5, "high")
    assert not queue.put_nowait(0, "b")
    queue.put_back(0, "rest")
    assert len(queue) == 3
    assert [queue.get_nowait() for _ in range(3)] == ["high", "rest", "a"]
    assert queue.get_nowait() is None


async def test_a_handed_back_item_wakes_a_waiting_worker() -> None:
    queue: ReadyQueue[str] = ReadyQueue(4)
    got: list[str] = []

    async def worker() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        queue.put_back(0, "rest")
    assert got == ["rest"]


def test_an_instance_row_is_the_row_the_constructor_makes() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    row = make_task_run(
        7, "p[3]", 1, TaskStatus.failed, AttemptReason.initial, at, at, at, "boom", None
    )
    made = TaskRun(
        run_id=7,
        task_id="p[3]",
        attempt=1,
        status=TaskStatus.failed,
        reason=AttemptReason.initial,
        scheduled_at=at,
        started_at=at,
        finished_at=at,
        error="boom",
        result=None,
    )
    assert row == made and hash(row) == hash(made) and repr(row) == repr(made)
    assert attrs.asdict(row) == attrs.asdict(made)
    assert row.map_index == 3
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        row.error = "changed"  # type: ignore[misc]


def test_an_instance_context_is_the_context_the_constructor_makes() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    upstream = {"split": [1, 2]}
    made = TaskContext(
        dag_id="d",
        run_id=7,
        task_id="p",
        attempt=1,
        logical_time=at,
        params={"n": 1},
        upstream=upstream,
        notifier=None,
    )
    made.map_index, made.item = 3, "x"
    # As a worker makes it for instance 3 of p.
    ctx = make_context("d", 7, "p", 1, at, {"n": 1}, upstream, None, None, None)
    ctx.map_index, ctx.item = 3, "x"
    for name in TaskContext.__slots__:
        assert getattr(ctx, name) == getattr(made, name), name
    assert repr(ctx) == repr(made)
    assert ctx.log is not None  # a logger of its own, made on first use
