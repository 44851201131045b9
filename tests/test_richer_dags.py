"""Trigger rules, skips, branching, dynamic fan-out, cancel and run timeouts, through
the public API on every storage."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from ppacer_async import (
    DAG,
    DagRunStatus,
    FakeClock,
    InvalidOperation,
    NonRetryableError,
    Scheduler,
    SkipTask,
    TaskContext,
    TaskRun,
    TaskStatus,
    task,
)

from .conftest import StorageFactory
from .helpers import Gate

pytestmark = pytest.mark.anyio

FAST = timedelta(milliseconds=1)


def latest(rows: list[TaskRun]) -> dict[str, TaskStatus]:
    """The status of each task's (or instance's) latest attempt."""
    found: dict[str, TaskRun] = {}
    for tr in sorted(rows, key=lambda t: t.attempt):
        found[tr.task_id] = tr
    return {task_id: tr.status for task_id, tr in found.items()}


async def run_dag(dag: DAG, storage_factory: StorageFactory, **options: object) -> tuple:
    async with Scheduler([dag], storage=storage_factory(), **options) as scheduler:  # type: ignore[arg-type]
        run = await scheduler.trigger(dag.dag_id)
        done = await scheduler.wait_for_run(run.id, timeout=30)
        rows = await scheduler.task_runs(run.id)
    return done, rows


# -- trigger rules and skips ----------------------------------------------------------


async def test_cleanup_runs_after_a_failure_and_the_run_still_fails(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def work(ctx: TaskContext) -> None:
        raise RuntimeError("boom")

    @task
    async def after(ctx: TaskContext) -> None: ...

    @task(trigger_rule="all_done")
    async def cleanup(ctx: TaskContext) -> str:
        return "cleaned"

    @task(trigger_rule="one_failed")
    async def on_failure(ctx: TaskContext) -> None: ...

    @task(trigger_rule="all_success")
    async def on_success(ctx: TaskContext) -> None: ...

    dag = DAG("rules").add(
        work >> after >> [cleanup, on_failure, on_success], work >> [cleanup, on_failure]
    )
    done, rows = await run_dag(dag, storage_factory)
    assert done.status is DagRunStatus.failed
    assert latest(rows) == {
        "work": TaskStatus.failed,
        "after": TaskStatus.upstream_failed,
        "cleanup": TaskStatus.success,
        "on_failure": TaskStatus.success,
        "on_success": TaskStatus.upstream_failed,
    }


async def test_one_success_starts_at_the_first_successful_parent(
    storage_factory: StorageFactory,
) -> None:
    gate = Gate()
    started = anyio.Event()

    @task
    async def quick(ctx: TaskContext) -> None: ...

    @task
    async def slow(ctx: TaskContext) -> None:
        await gate.enter()

    @task(trigger_rule="one_success")
    async def first(ctx: TaskContext) -> None:
        started.set()

    dag = DAG("one").add([quick, slow] >> first)
    async with Scheduler([dag], storage=storage_factory()) as scheduler:
        run = await scheduler.trigger("one")
        with anyio.fail_after(10):
            await started.wait()
        assert gate.inside == 1  # slow is still running
        gate.open()
        done = await scheduler.wait_for_run(run.id, timeout=10)
    assert done.status is DagRunStatus.success


async def test_skip_task_ends_skipped_without_spending_retries_and_skips_downstream(
    storage_factory: StorageFactory,
) -> None:
    @task(retries=3, retry_delay=FAST)
    async def maybe(ctx: TaskContext) -> None:
        raise SkipTask("nothing new today")

    @task
    async def after(ctx: TaskContext) -> None: ...

    @task(trigger_rule="none_failed")
    async def report(ctx: TaskContext) -> str:
        return "reported"

    dag = DAG("skips").add(maybe >> after >> report)
    done, rows = await run_dag(dag, storage_factory)
    assert done.status is DagRunStatus.success  # skips do not fail a run
    assert [(tr.task_id, tr.attempt, tr.status) for tr in rows if tr.task_id == "maybe"] == [
        ("maybe", 1, TaskStatus.skipped)
    ]
    assert "nothing new today" in (next(tr.error for tr in rows if tr.task_id == "maybe") or "")
    assert latest(rows) == {
        "maybe": TaskStatus.skipped,
        "after": TaskStatus.skipped,
        "report": TaskStatus.success,
    }


# -- retries --------------------------------------------------------------------------


async def test_non_retryable_error_fails_at_once(storage_factory: StorageFactory) -> None:
    @task(retries=3, retry_delay=FAST)
    async def bad_input(ctx: TaskContext) -> None:
        raise NonRetryableError("the file is malformed")

    done, rows = await run_dag(DAG("nr").add(bad_input), storage_factory)
    assert done.status is DagRunStatus.failed
    assert [(tr.attempt, tr.status) for tr in rows] == [(1, TaskStatus.failed)]


async def test_retry_on_retries_only_the_named_errors(storage_factory: StorageFactory) -> None:
    calls: list[int] = []

    @task(retries=3, retry_delay=FAST, retry_on=(ConnectionError,))
    async def flaky(ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("reset by peer")
        raise ValueError("a bug: not retried")

    done, rows = await run_dag(DAG("ro").add(flaky), storage_factory)
    assert done.status is DagRunStatus.failed
    assert calls == [1, 2]
    assert [(tr.attempt, tr.status) for tr in rows] == [
        (1, TaskStatus.up_for_retry),
        (2, TaskStatus.failed),
    ]


def test_retry_jitter_spreads_the_delay_by_the_fraction_either_way() -> None:
    t = task(id="t", retry_delay=timedelta(seconds=10), retry_jitter=0.2)(lambda ctx: None)
    assert t.retry_delay_for(1, draw=lambda: 0.0) == timedelta(seconds=8)
    assert t.retry_delay_for(1, draw=lambda: 0.5) == timedelta(seconds=10)
    assert t.retry_delay_for(1, draw=lambda: 0.999999) > timedelta(seconds=11.99)


# -- branching ------------------------------------------------------------------------


async def test_branch_follows_the_chosen_child_and_skips_the_others(
    storage_factory: StorageFactory,
) -> None:
    @task.branch
    async def pick(ctx: TaskContext) -> str:
        return "small" if ctx.params.get("rows", 0) < 100 else "big"

    @task
    async def small(ctx: TaskContext) -> str:
        return "small"

    @task
    async def big(ctx: TaskContext) -> str:
        return "big"

    @task
    async def after_big(ctx: TaskContext) -> None: ...

    @task(trigger_rule="none_failed_min_one_success")
    async def join(ctx: TaskContext) -> list:
        return sorted(k for k, v in ctx.upstream.items() if v is not None)

    dag = DAG("branchy", params={"rows": 5}).add(pick >> [small, big >> after_big] >> join)
    done, rows = await run_dag(dag, storage_factory)
    assert done.status is DagRunStatus.success
    assert latest(rows) == {
        "pick": TaskStatus.success,
        "small": TaskStatus.success,
        "big": TaskStatus.skipped,
        "after_big": TaskStatus.skipped,
        "join": TaskStatus.success,
    }
    assert next(tr.result for tr in rows if tr.task_id == "join") == ["small"]


async def test_branch_to_a_task_that_is_not_a_child_fails_naming_the_valid_ids(
    storage_factory: StorageFactory,
) -> None:
    @task.branch
    async def pick(ctx: TaskContext) -> str:
        return "nowhere"

    @task
    async def a(ctx: TaskContext) -> None: ...

    @task
    async def b(ctx: TaskContext) -> None: ...

    done, rows = await run_dag(DAG("badbranch").add(pick >> [a, b]), storage_factory)
    assert done.status is DagRunStatus.failed
    error = next(tr.error for tr in rows if tr.task_id == "pick") or ""
    assert "returned 'nowhere'" in error and "valid ids: a, b" in error
    assert latest(rows)["a"] is TaskStatus.upstream_failed


# -- dynamic fan-out ------------------------------------------------------------------


def fan_out_dag(n: int, dag_id: str = "fan") -> DAG:
    @task
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(ctx.params["n"]))

    @task
    async def process(ctx: TaskContext) -> list[int | None]:
        return [ctx.map_index, ctx.item * 10]

    @task
    async def combine(ctx: TaskContext) -> int:
        results = ctx.upstream["process"]
        assert results == [[k, k * 10] for k in range(len(results))]
        return len(results)

    return DAG(dag_id, params={"n": n}).add(split >> process.map("split") >> combine)


@pytest.mark.parametrize("n", [1, 3])
async def test_mapped_task_runs_once_per_element_and_gathers_results_in_order(
    storage_factory: StorageFactory, n: int
) -> None:
    done, rows = await run_dag(fan_out_dag(n), storage_factory)
    assert done.status is DagRunStatus.success
    instances = sorted(
        (tr for tr in rows if tr.task == "process" and tr.map_index is not None),
        key=lambda t: t.map_index or 0,
    )
    assert [(tr.task_id, tr.map_index, tr.status) for tr in instances] == [
        (f"process[{k}]", k, TaskStatus.success) for k in range(n)
    ]
    by_id = {tr.task_id: tr for tr in rows}
    assert by_id["process"].result == [[k, k * 10] for k in range(n)]
    assert by_id["combine"].result == n


async def test_mapping_over_an_empty_list_skips_the_mapped_task(
    storage_factory: StorageFactory,
) -> None:
    done, rows = await run_dag(fan_out_dag(0), storage_factory)
    assert done.status is DagRunStatus.success
    assert latest(rows) == {
        "split": TaskStatus.success,
        "process": TaskStatus.skipped,
        "combine": TaskStatus.skipped,
    }


async def test_mapping_over_ten_thousand_elements(storage_factory: StorageFactory) -> None:
    done, rows = await run_dag(fan_out_dag(10_000), storage_factory)
    assert done.status is DagRunStatus.success
    by_id = {tr.task_id: tr for tr in rows}
    assert by_id["combine"].result == 10_000
    assert sum(1 for tr in rows if tr.map_index is not None) == 10_000


async def test_a_list_over_max_map_length_fails_the_mapped_task_naming_the_limit(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def split(ctx: TaskContext) -> list[int]:
        return [1, 2, 3]

    @task(max_map_length=2)
    async def process(ctx: TaskContext) -> None: ...

    done, rows = await run_dag(DAG("limit").add(split >> process.map("split")), storage_factory)
    assert done.status is DagRunStatus.failed
    error = next(tr.error for tr in rows if tr.task_id == "process") or ""
    assert "3 elements" in error and "max_map_length=2" in error
    assert not any(tr.map_index is not None for tr in rows)


async def test_mapped_instances_retry_one_by_one(storage_factory: StorageFactory) -> None:
    calls: list[tuple[int | None, int]] = []

    @task
    async def split(ctx: TaskContext) -> list[str]:
        return ["a", "b", "c"]

    @task(retries=1, retry_delay=FAST)
    async def process(ctx: TaskContext) -> str:
        calls.append((ctx.map_index, ctx.attempt))
        if ctx.item == "b" and ctx.attempt == 1:
            raise ConnectionError("flaky")
        return ctx.item.upper()

    done, rows = await run_dag(DAG("retry_map").add(split >> process.map("split")), storage_factory)
    assert done.status is DagRunStatus.success
    assert sorted(calls) == [(0, 1), (1, 1), (1, 2), (2, 1)]
    assert {tr.task_id: tr.result for tr in rows if tr.task_id == "process"} == {
        "process": ["A", "B", "C"]
    }


# -- cancel and run timeout -----------------------------------------------------------


async def test_cancel_stops_running_attempts_and_nothing_else_starts(
    storage_factory: StorageFactory,
) -> None:
    gate = Gate()
    thread_saw_cancel = threading.Event()
    thread_started = threading.Event()
    after_ran: list[str] = []

    @task
    async def waits(ctx: TaskContext) -> None:
        await gate.enter()

    @task
    def blocking(ctx: TaskContext) -> None:
        if ctx.attempt > 1:
            return  # run again after the restart
        thread_started.set()
        for _ in range(1000):
            if ctx.cancelled:
                thread_saw_cancel.set()
                return
            threading.Event().wait(0.01)

    @task
    async def after(ctx: TaskContext) -> None:
        after_ran.append("after")

    dag = DAG("cancel").add([waits, blocking] >> after)
    async with Scheduler([dag], storage=storage_factory()) as scheduler:
        run = await scheduler.trigger("cancel")
        await gate.wait_inside(1)
        assert await anyio.to_thread.run_sync(thread_started.wait, 5)
        cancelled = await scheduler.cancel_run(run.id)
        assert cancelled.status is DagRunStatus.cancelled
        done = await scheduler.wait_for_run(run.id, timeout=10)
        assert done.status is DagRunStatus.cancelled
        assert done.note == "cancelled"
        assert await anyio.to_thread.run_sync(thread_saw_cancel.wait, 5)
        assert gate.inside == 0  # the async attempt was cancelled
        rows = await scheduler.task_runs(run.id)
        assert latest(rows) == {
            "waits": TaskStatus.cancelled,
            "blocking": TaskStatus.cancelled,
        }
        with pytest.raises(InvalidOperation, match="only queued or running runs"):
            await scheduler.cancel_run(run.id)
        # A cancelled run can be restarted: what did not succeed runs again.
        gate.open()
        await scheduler.restart_run(run.id)
        again = await scheduler.wait_for_run(run.id, timeout=10)
    assert again.status is DagRunStatus.success
    assert after_ran == ["after"]


async def test_run_timeout_cancels_the_run_and_says_so(storage_factory: StorageFactory) -> None:
    gate = Gate()
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))

    @task
    async def slow(ctx: TaskContext) -> None:
        await gate.enter()

    dag = DAG("timeout", run_timeout=timedelta(minutes=5)).add(slow)
    async with Scheduler([dag], storage=storage_factory(), clock=clock) as scheduler:
        run = await scheduler.trigger("timeout")
        await gate.wait_inside(1)
        clock.advance(timedelta(minutes=5, seconds=1))
        done = await scheduler.wait_for_run(run.id, timeout=10)
        rows = await scheduler.task_runs(run.id)
    assert done.status is DagRunStatus.cancelled
    assert done.note is not None and "timed out after 0:05:00" in done.note
    assert latest(rows) == {"slow": TaskStatus.cancelled}
    assert gate.inside == 0


async def test_a_restarted_runs_timeout_counts_from_the_restart_also_after_a_crash(
    storage_factory: StorageFactory,
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = FakeClock(start)
    gate = Gate()
    calls: list[int] = []

    @task
    async def flaky(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise ConnectionError("reset by peer")
        await gate.enter()

    dag = DAG("restarted", run_timeout=timedelta(hours=1)).add(flaky)
    async with Scheduler([dag], storage=storage_factory(), clock=clock) as scheduler:
        run = await scheduler.trigger("restarted")
        assert (await scheduler.wait_for_run(run.id, timeout=10)).status is DagRunStatus.failed
        clock.advance(timedelta(hours=2))  # past the timeout counted from the first start
        await scheduler.restart_run(run.id)
        await gate.wait_inside(1)
        assert (await scheduler.get_run(run.id)).started_at == start + timedelta(hours=2)
    # The process stopped with the restarted run going: the next one recovers it, and
    # its deadline is an hour after the restart, not after the first start.
    async with Scheduler([dag], storage=storage_factory(), clock=clock) as scheduler:
        await gate.wait_inside(1)
        clock.advance(timedelta(minutes=59))
        assert (await scheduler.get_run(run.id)).status is DagRunStatus.running
        clock.advance(timedelta(minutes=1, seconds=1))
        done = await scheduler.wait_for_run(run.id, timeout=10)
    assert done.status is DagRunStatus.cancelled
    assert done.note is not None and "timed out after 1:00:00" in done.note
    assert done.started_at == start + timedelta(hours=2)
    assert done.finished_at == start + timedelta(hours=3, seconds=1)
    assert calls == [1, 2, 3]


async def test_cancel_during_a_retry_wait_keeps_the_failure_and_the_retry_never_runs(
    storage_factory: StorageFactory,
) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    calls: list[int] = []

    @task(retries=1, retry_delay=timedelta(hours=1))
    async def flaky(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("reset by peer")

    dag = DAG("retry_wait").add(flaky)
    async with Scheduler([dag], storage=storage_factory(), clock=clock) as scheduler:
        run = await scheduler.trigger("retry_wait")
        with anyio.fail_after(10):
            while TaskStatus.up_for_retry not in latest(await scheduler.task_runs(run.id)).values():
                await anyio.lowlevel.checkpoint()
        await scheduler.cancel_run(run.id)
        clock.advance(timedelta(hours=2))  # the retry would be due
        done = await scheduler.wait_for_run(run.id, timeout=10)
        rows = await scheduler.task_runs(run.id)
        assert done.status is DagRunStatus.cancelled
        assert [(tr.attempt, tr.status) for tr in rows] == [
            (1, TaskStatus.up_for_retry),
            (2, TaskStatus.cancelled),
        ]
        assert "reset by peer" in (rows[0].error or "")
        await scheduler.restart_run(run.id)
        again = await scheduler.wait_for_run(run.id, timeout=10)
    assert again.status is DagRunStatus.success
    assert calls == [1, 3]


async def test_a_run_cancelled_while_no_scheduler_serves_it_stays_cancelled(
    storage_factory: StorageFactory,
) -> None:
    from ppacer_async import operations

    gate = Gate()
    storage = storage_factory()

    @task
    async def waits(ctx: TaskContext) -> None:
        await gate.enter()

    dag = DAG("orphan").add(waits)
    async with Scheduler([dag], storage=storage) as scheduler:
        run = await scheduler.trigger("orphan")
        await gate.wait_inside(1)
    # The scheduler stopped with the attempt cut short; the run waits for recovery.
    async with storage:
        assert (await storage.get_run(run.id)).status is DagRunStatus.running  # type: ignore[union-attr]
        await operations.cancel(storage, run.id, datetime.now(UTC), "not needed any more")
    async with Scheduler([dag], storage=storage) as scheduler:
        done = await scheduler.get_run(run.id)
        rows = await scheduler.task_runs(run.id)
        assert gate.entered == 1  # recovery did not run it again
    assert (done.status, done.note) == (DagRunStatus.cancelled, "not needed any more")
    assert [(tr.attempt, tr.status) for tr in rows] == [(1, TaskStatus.interrupted)]


async def test_restarting_a_run_with_a_failed_instance_runs_only_that_instance_again(
    storage_factory: StorageFactory,
) -> None:
    calls: list[tuple[int | None, int]] = []
    broken = {"c"}

    @task
    async def split(ctx: TaskContext) -> list[str]:
        return ["a", "b", "c", "d"]

    @task
    async def process(ctx: TaskContext) -> str:
        calls.append((ctx.map_index, ctx.attempt))
        if ctx.item in broken:
            raise ValueError(f"cannot process {ctx.item}")
        return ctx.item.upper()

    @task
    async def combine(ctx: TaskContext) -> str:
        return "".join(ctx.upstream["process"])

    dag = DAG("restart_map").add(split >> process.map("split") >> combine)
    async with Scheduler([dag], storage=storage_factory()) as scheduler:
        run = await scheduler.trigger("restart_map")
        failed = await scheduler.wait_for_run(run.id, timeout=10)
        assert failed.status is DagRunStatus.failed
        rows = await scheduler.task_runs(run.id)
        assert latest(rows)["process"] is TaskStatus.failed
        assert "1 of 4 instances failed: process[2]" in (
            next(tr.error for tr in rows if tr.task_id == "process") or ""
        )
        assert latest(rows)["combine"] is TaskStatus.upstream_failed
        broken.clear()
        await scheduler.restart_run(run.id)
        done = await scheduler.wait_for_run(run.id, timeout=10)
        rows = await scheduler.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert sorted(calls) == [(0, 1), (1, 1), (2, 1), (2, 2), (3, 1)]
    combined = sorted((tr for tr in rows if tr.task_id == "combine"), key=lambda t: t.attempt)
    assert [(tr.status, tr.result) for tr in combined] == [
        (TaskStatus.upstream_failed, None),
        (TaskStatus.success, "ABCD"),
    ]


async def test_cancel_right_after_a_restart_leaves_the_run_cancelled(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def once(ctx: TaskContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("first time")

    dag = DAG("restart_cancel").add(once)
    async with Scheduler([dag], storage=storage_factory()) as scheduler:
        run = await scheduler.trigger("restart_cancel")
        assert (await scheduler.wait_for_run(run.id, timeout=10)).status is DagRunStatus.failed
        await scheduler.restart_run(run.id)
        # The restarted attempt may already run, or even end, before the cancel
        # reaches the engine: the run ends cancelled either way.
        await scheduler.cancel_run(run.id, "changed my mind")
        done = await scheduler.wait_for_run(run.id, timeout=10)
        other = await scheduler.trigger("restart_cancel")  # a step after any late outcome
        await scheduler.wait_for_run(other.id, timeout=10)
        again = await scheduler.get_run(run.id)
    assert (done.status, done.note) == (DagRunStatus.cancelled, "changed my mind")
    assert (again.status, again.note) == (DagRunStatus.cancelled, "changed my mind")


async def test_storage_keeps_a_cancelled_run_cancelled_until_it_is_queued_again(
    storage_factory: StorageFactory,
) -> None:
    import attrs

    from ppacer_async import RunTrigger
    from ppacer_async._structures import Changes

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with storage_factory() as storage:
        await storage.sync_dag("d", "h", {"tasks": {}}, t0)
        run = await storage.create_run(
            dag_id="d",
            logical_time=t0,
            trigger=RunTrigger.manual,
            params={},
            dag_version=1,
            created_at=t0,
        )
        assert run is not None
        cancelled = attrs.evolve(run, status=DagRunStatus.cancelled, finished_at=t0, note="no")
        await storage.commit(Changes(dag_runs=[cancelled]))
        # A scheduler that has not learnt of the cancel yet writes that the run ended.
        late = attrs.evolve(run, status=DagRunStatus.success, started_at=t0, finished_at=t0)
        await storage.commit(Changes(dag_runs=[late]))
        assert await storage.get_run(run.id) == cancelled
        queued = attrs.evolve(cancelled, status=DagRunStatus.queued, finished_at=None, note=None)
        await storage.commit(Changes(dag_runs=[queued]))
        assert (await storage.get_run(run.id)).status is DagRunStatus.queued  # type: ignore[union-attr]
