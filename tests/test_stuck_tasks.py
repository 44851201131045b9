"""Tasks that will not stop: one that swallows its cancellation, one that blocks the
event loop. Neither defeats its timeout or the bound on stopping."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta

import anyio
import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, TaskStatus, task
from ppacer_async._scheduler import consumer

from .conftest import StorageFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(consumer, "CANCEL_GRACE", 0.3)
    return 0.3


async def test_task_swallowing_its_timeout_is_failed_and_its_worker_freed(
    storage_factory: StorageFactory, short_grace: float
) -> None:
    cancels = 0

    @task(timeout=timedelta(seconds=0.2))
    async def stubborn(ctx: TaskContext) -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancels += 1

    @task
    async def next_one(ctx: TaskContext) -> str:
        return "ran"

    # One worker: the second run can only start once the stubborn attempt lets it go.
    scheduler = Scheduler(
        [DAG("stubborn").add(stubborn), DAG("after").add(next_one)],
        storage=storage_factory(),
        max_concurrent_tasks=1,
    )
    async with scheduler:
        bad = await scheduler.trigger("stubborn")
        begun = time.monotonic()
        done = await scheduler.wait_for_run(bad.id, timeout=10)
        took = time.monotonic() - begun
        after = await scheduler.trigger("after")
        assert (await scheduler.wait_for_run(after.id, timeout=10)).status is (DagRunStatus.success)
        (row,) = await scheduler.task_runs(bad.id)
    assert done.status is DagRunStatus.failed
    assert row.status is TaskStatus.failed
    assert "did not stop when cancelled" in (row.error or "")
    assert "timed out after 0.2s" in (row.error or "")
    assert cancels == 1  # the second cancellation gave it up instead
    assert 0.2 + short_grace <= took < 5


async def test_task_swallowing_its_timeout_then_returning_is_not_a_success(
    storage_factory: StorageFactory,
) -> None:
    @task(timeout=timedelta(seconds=0.1))
    async def returns_anyway(ctx: TaskContext) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ctx.log.info("cancelled; returning anyway")
        return "done"

    async with Scheduler([DAG("d").add(returns_anyway)], storage=storage_factory()) as s:
        run = await s.trigger("d")
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.failed
        (row,) = await s.task_runs(run.id)
    assert row.result is None
    assert "did not stop when cancelled" in (row.error or "")


async def test_stop_is_bounded_with_a_task_that_swallows_cancellation(
    storage_factory: StorageFactory, short_grace: float
) -> None:
    started = anyio.Event()

    @task(timeout=timedelta(minutes=5))
    async def stubborn(ctx: TaskContext) -> None:
        started.set()
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                ctx.log.info("ignoring the cancellation")

    storage = storage_factory()
    with anyio.fail_after(10):
        async with Scheduler([DAG("stubborn").add(stubborn)], storage=storage) as scheduler:
            run = await scheduler.trigger("stubborn")
            await started.wait()
        # The scheduler stopped: the attempt is recorded, not left running.
    async with Scheduler([], storage=storage_factory()) as reader:
        rows = await reader.task_runs(run.id)
    assert [r.status for r in rows] == [TaskStatus.failed]
    assert "was stopped and did not stop when cancelled" in (rows[0].error or "")


async def test_async_task_blocking_the_loop_past_its_timeout_is_failed(
    storage_factory: StorageFactory,
) -> None:
    @task(timeout=timedelta(seconds=0.2))
    async def blocks_at_once(ctx: TaskContext) -> str:
        time.sleep(0.5)  # noqa: ASYNC251 (the behaviour under test)
        return "late"

    @task(timeout=timedelta(seconds=0.2))
    async def blocks_after_awaiting(ctx: TaskContext) -> str:
        await asyncio.sleep(0.01)
        time.sleep(0.5)  # noqa: ASYNC251
        return "late"

    @task(timeout=timedelta(seconds=5))
    async def in_time(ctx: TaskContext) -> str:
        time.sleep(0.05)  # noqa: ASYNC251
        return "ok"

    dags = [DAG(t.id).add(t) for t in (blocks_at_once, blocks_after_awaiting, in_time)]
    rows = {}
    async with Scheduler(dags, storage=storage_factory()) as s:
        for dag in dags:  # one at a time: a blocked loop delays every other task too
            run = await s.trigger(dag.dag_id)
            await s.wait_for_run(run.id, timeout=10)
            (rows[dag.dag_id],) = await s.task_runs(run.id)
    for task_id in ("blocks_at_once", "blocks_after_awaiting"):
        assert rows[task_id].status is TaskStatus.failed
        assert rows[task_id].result is None
        assert "event loop was blocked past its deadline" in (rows[task_id].error or "")
    assert rows["in_time"].status is TaskStatus.success


async def test_a_task_blocking_the_loop_is_named_and_noted_on_its_attempt(
    storage_factory: StorageFactory, caplog: pytest.LogCaptureFixture
) -> None:
    @task(timeout=timedelta(seconds=30))
    async def blocker(ctx: TaskContext) -> str:
        await asyncio.sleep(0)
        time.sleep(0.8)  # noqa: ASYNC251 (the behaviour under test)
        return "done"

    caplog.set_level(logging.WARNING, logger="ppacer_async.scheduler")
    scheduler = Scheduler(
        [DAG("blocking").add(blocker)],
        storage=storage_factory(),
        loop_block_warning=timedelta(seconds=0.2),
    )
    async with scheduler:
        run = await scheduler.trigger("blocking")
        done = await scheduler.wait_for_run(run.id, timeout=10)
    assert done.status is DagRunStatus.success
    async with Scheduler([], storage=storage_factory()) as reader:
        logs = await reader.logs(run.id)
    named = f"s by run {run.id} task blocker attempt 1 (in blocker at "
    assert any(named in r.getMessage() for r in caplog.records), caplog.text
    (noted,) = [r for r in logs if "blocked the event loop" in r.message]
    assert noted.task_id == "blocker" and noted.level == "WARNING"
    seconds = float(noted.message.split("for ")[1].split("s ")[0])
    assert 0.6 <= seconds < 5


def test_loop_block_warning_is_checked() -> None:
    with pytest.raises(ValueError, match="loop_block_warning must be a timedelta"):
        Scheduler([], storage="memory://", loop_block_warning=timedelta(0))


@pytest.mark.postgres
async def test_leases_stay_alive_while_a_task_blocks_the_loop(schema: str) -> None:
    from ppacer_async.storage.postgres import PostgresStorage

    from .conftest import POSTGRES_DSN

    blocking = threading.Event()
    seen: list[tuple[int, int]] = []

    def count_leases() -> None:
        """From outside the blocked loop, after the lease has run out twice over:
        the attempt's lease must have been renewed meanwhile."""
        import asyncpg

        async def read() -> tuple[int, int]:
            conn = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
            try:
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE lease_expires_at > now()) AS alive, "
                    "count(*) FILTER (WHERE lease_expires_at <= now()) AS lapsed "
                    "FROM task_runs WHERE status = 'running'"
                )
                return row["alive"], row["lapsed"]
            finally:
                await conn.close()

        assert blocking.wait(10)
        time.sleep(2.5)  # the lease is 1 s: it would have lapsed without renewal
        seen.append(asyncio.run(read()))

    @task(timeout=timedelta(seconds=30))
    async def blocker(ctx: TaskContext) -> str:
        await asyncio.sleep(0)
        blocking.set()
        time.sleep(3.5)  # noqa: ASYNC251 (the behaviour under test)
        return "done"

    storage = PostgresStorage(dsn=POSTGRES_DSN, schema=schema, lease=timedelta(seconds=1))
    watcher = threading.Thread(target=count_leases)
    watcher.start()
    try:
        async with Scheduler(
            [DAG("blocking").add(blocker)],
            storage=storage,
            loop_block_warning=timedelta(seconds=0.2),
        ) as scheduler:
            run = await scheduler.trigger("blocking")
            done = await scheduler.wait_for_run(run.id, timeout=20)
            rows = await scheduler.task_runs(run.id)
    finally:
        blocking.set()
        watcher.join()
    assert seen == [(1, 0)]
    assert done.status is DagRunStatus.success
    assert [(r.attempt, r.status) for r in rows] == [(1, TaskStatus.success)]


async def test_cancelling_a_run_abandons_an_attempt_that_swallows_the_cancellation(
    short_grace: float,
) -> None:
    started = anyio.Event()

    @task(timeout=timedelta(minutes=5))
    async def stubborn(ctx: TaskContext) -> None:
        started.set()
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                ctx.log.info("ignoring the cancellation")

    @task
    async def next_one(ctx: TaskContext) -> str:
        return "ran"

    scheduler = Scheduler(
        [DAG("stubborn").add(stubborn), DAG("after").add(next_one)],
        storage="memory://",
        max_concurrent_tasks=1,
    )
    async with scheduler:
        run = await scheduler.trigger("stubborn")
        with anyio.fail_after(5):
            await started.wait()
        with anyio.fail_after(5):
            await scheduler.cancel_run(run.id)
        # The only worker is free again once the attempt is given up on.
        after = await scheduler.trigger("after")
        done = await scheduler.wait_for_run(after.id, timeout=5)
        (row,) = await scheduler.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert row.status is TaskStatus.cancelled
