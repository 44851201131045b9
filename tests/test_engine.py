"""Running DAGs through the public API, on every storage."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagNotFound,
    DagRunStatus,
    InvalidOperation,
    RunNotFound,
    RunTrigger,
    Scheduler,
    TaskContext,
    TaskStatus,
    task,
)
from ppacer_async.abc import Storage

from .conftest import StorageFactory
from .helpers import FailingNotifier, Gate, RecordingNotifier

pytestmark = pytest.mark.anyio


def statuses(rows: list) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for tr in rows:
        found.setdefault(tr.task_id, []).append(str(tr.status))
    return found


async def run_once(
    dag: DAG, storage: Storage, params: dict | None = None, **options
) -> tuple[Scheduler, int]:
    scheduler = Scheduler([dag], storage=storage, **options)
    async with scheduler:
        run = await scheduler.trigger(dag.dag_id, params)
        await scheduler.wait_for_run(run.id, timeout=10)
    return scheduler, run.id


async def test_chain_passes_results_downstream(storage_factory: StorageFactory) -> None:
    order: list[str] = []

    @task
    async def extract(ctx: TaskContext) -> dict:
        order.append("extract")
        return {"rows": 10}

    @task
    def transform(ctx: TaskContext) -> int:
        order.append("transform")
        return ctx.upstream["extract"]["rows"] * 2

    @task
    async def load(ctx: TaskContext) -> str:
        order.append("load")
        return f"loaded {ctx.upstream['transform']}"

    dag = DAG("etl").add(extract >> transform >> load)
    storage = storage_factory()
    async with Scheduler([dag], storage=storage) as scheduler:
        run = await scheduler.trigger("etl")
        assert run.status is DagRunStatus.queued
        assert run.trigger is RunTrigger.manual
        done = await scheduler.wait_for_run(run.id, timeout=10)
        assert done.status is DagRunStatus.success
        assert done.started_at is not None and done.finished_at is not None
        rows = await scheduler.task_runs(run.id)
    assert order == ["extract", "transform", "load"]
    assert {tr.task_id: tr.result for tr in rows} == {
        "extract": {"rows": 10},
        "transform": 20,
        "load": "loaded 20",
    }
    assert all(tr.status is TaskStatus.success and tr.attempt == 1 for tr in rows)
    assert all(tr.started_at is not None and tr.finished_at is not None for tr in rows)


async def test_sync_tasks_run_in_worker_threads(storage_factory: StorageFactory) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @task
    def blocking(ctx: TaskContext) -> None:
        seen.append(threading.get_ident())

    @task
    async def inline(ctx: TaskContext) -> None:
        seen.append(threading.get_ident())

    await run_once(DAG("t").add(blocking >> inline), storage_factory())
    assert seen[0] != loop_thread
    assert seen[1] == loop_thread


async def test_fan_out_and_fan_in_run_every_task_once(storage_factory: StorageFactory) -> None:
    calls: list[str] = []

    @task
    async def root(ctx: TaskContext) -> int:
        return 1

    leaves = []
    for n in range(50):

        async def leaf(ctx: TaskContext) -> int:
            calls.append(ctx.task_id)
            return int(ctx.upstream["root"]) + 1

        leaves.append(task(leaf, id=f"leaf{n}"))

    @task
    async def join(ctx: TaskContext) -> int:
        return sum(ctx.upstream.values())

    scheduler, run_id = await run_once(
        DAG("fan").add(root >> leaves >> join), storage_factory(), queue_size=8
    )
    assert sorted(calls) == sorted(f"leaf{n}" for n in range(50))
    async with Scheduler([], storage=scheduler.storage) as reader:
        rows = {tr.task_id: tr for tr in await reader.task_runs(run_id)}
    assert rows["join"].result == 100


async def test_max_concurrent_tasks_is_never_exceeded(storage_factory: StorageFactory) -> None:
    gate = Gate()
    tasks = []
    for n in range(12):

        async def wait(ctx: TaskContext) -> None:
            await gate.enter()

        tasks.append(task(wait, id=f"w{n}"))
    dag = DAG("limits").add(*tasks)
    async with Scheduler([dag], storage=storage_factory(), max_concurrent_tasks=3) as s:
        run = await s.trigger("limits")
        await gate.wait_inside(3)
        assert s.statistics().running_tasks == 3
        assert s.statistics().queued_tasks == 9
        gate.open()
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success
    assert gate.peak == 3
    assert gate.entered == 12


async def test_max_threads_bounds_sync_tasks(storage_factory: StorageFactory) -> None:
    lock = threading.Lock()
    release = threading.Event()
    inside = 0
    peak = 0
    started = threading.Semaphore(0)

    def body(ctx: TaskContext) -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        started.release()
        release.wait(10)
        with lock:
            inside -= 1

    tasks = [task(body, id=f"t{n}") for n in range(6)]
    dag = DAG("threads").add(*tasks)
    async with Scheduler([dag], storage=storage_factory(), max_threads=2) as s:
        run = await s.trigger("threads")
        for _ in range(2):
            await anyio.to_thread.run_sync(started.acquire)
        assert s.statistics().running_threads == 2
        release.set()
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success
    assert peak == 2


async def test_retries_make_one_row_per_attempt(storage_factory: StorageFactory) -> None:
    @task(retries=2, retry_delay=timedelta(milliseconds=1))
    async def flaky(ctx: TaskContext) -> int:
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} broke")
        return ctx.attempt

    scheduler, run_id = await run_once(DAG("r").add(flaky), storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        rows = await reader.task_runs(run_id)
        run = await reader.get_run(run_id)
    assert run.status is DagRunStatus.success
    assert [(tr.attempt, tr.status) for tr in rows] == [
        (1, TaskStatus.up_for_retry),
        (2, TaskStatus.up_for_retry),
        (3, TaskStatus.success),
    ]
    assert "RuntimeError: attempt 1 broke" in (rows[0].error or "")
    assert "Traceback" in (rows[0].error or "")
    assert rows[2].result == 3


async def test_failure_marks_downstream_upstream_failed_and_other_branches_finish(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def start(ctx: TaskContext) -> None: ...

    @task
    async def broken(ctx: TaskContext) -> None:
        raise ValueError("bad data")

    @task
    async def after_broken(ctx: TaskContext) -> None: ...

    @task
    async def last(ctx: TaskContext) -> None: ...

    @task
    async def healthy(ctx: TaskContext) -> None: ...

    @task
    async def after_healthy(ctx: TaskContext) -> None: ...

    dag = DAG("f").add(start >> [broken >> after_broken, healthy >> after_healthy] >> last)
    scheduler, run_id = await run_once(dag, storage_factory(), notifier=RecordingNotifier())
    async with Scheduler([], storage=scheduler.storage) as reader:
        rows = await reader.task_runs(run_id)
        run = await reader.get_run(run_id)
    assert run.status is DagRunStatus.failed
    assert statuses(rows) == {
        "start": ["success"],
        "broken": ["failed"],
        "after_broken": ["upstream_failed"],
        "last": ["upstream_failed"],
        "healthy": ["success"],
        "after_healthy": ["success"],
    }
    failed = {tr.task_id: tr for tr in rows}
    assert "ValueError: bad data" in (failed["broken"].error or "")
    assert "broken" in (failed["after_broken"].error or "")


async def test_async_timeout_cancels_the_task_at_its_deadline(
    storage_factory: StorageFactory,
) -> None:
    cancelled = anyio.Event()

    @task(timeout=timedelta(milliseconds=50))
    async def slow(ctx: TaskContext) -> None:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    scheduler, run_id = await run_once(DAG("t").add(slow), storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        (row,) = await reader.task_runs(run_id)
    assert cancelled.is_set()
    assert row.status is TaskStatus.failed
    assert "timed out after 0.05s" in (row.error or "")
    assert row.started_at is not None and row.finished_at is not None
    took = row.finished_at - row.started_at
    assert timedelta(milliseconds=50) <= took < timedelta(seconds=5)


async def test_tasks_may_enter_cancel_scopes_before_they_first_suspend(
    storage_factory: StorageFactory,
) -> None:
    """Ordinary anyio code as a task's first statement: a deadline, a lock, a task group.
    The engine runs a task's first step before its own timeout is set up."""
    lock = anyio.Lock()

    @task
    async def bounded(ctx: TaskContext) -> str:
        with anyio.fail_after(5):
            await anyio.sleep(0.01)
        return "bounded"

    @task
    async def locked(ctx: TaskContext) -> str:
        async with lock:
            await anyio.sleep(0.01)
        return "locked"

    @task
    async def grouped(ctx: TaskContext) -> str:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0.01)
        return "grouped"

    @task
    async def own_timeout(ctx: TaskContext) -> None:
        with anyio.fail_after(0.01):  # the task's own deadline, not the engine's
            await anyio.sleep(5)

    @task(timeout=timedelta(milliseconds=50))
    async def held_too_long(ctx: TaskContext) -> None:
        with anyio.CancelScope():
            await anyio.sleep(30)

    dag = DAG("scoped").add(bounded, locked, grouped, own_timeout, held_too_long)
    scheduler, run_id = await run_once(dag, storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        rows = {tr.task_id: tr for tr in await reader.task_runs(run_id)}
    assert {t: rows[t].result for t in ("bounded", "locked", "grouped")} == {
        "bounded": "bounded",
        "locked": "locked",
        "grouped": "grouped",
    }
    assert rows["own_timeout"].status is TaskStatus.failed
    assert (rows["own_timeout"].error or "").strip().splitlines()[-1] == "TimeoutError"
    assert rows["held_too_long"].status is TaskStatus.failed
    assert "timed out after 0.05s" in (rows["held_too_long"].error or "")


async def test_thread_timeout_sets_cancelled_and_fails_at_the_deadline(
    storage_factory: StorageFactory,
) -> None:
    saw_cancel = threading.Event()

    @task(timeout=timedelta(milliseconds=100))
    def polling(ctx: TaskContext) -> None:
        while not saw_cancel.wait(0.001):
            if ctx.cancelled:
                saw_cancel.set()

    scheduler, run_id = await run_once(DAG("t").add(polling), storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        (row,) = await reader.task_runs(run_id)
    assert row.status is TaskStatus.failed
    assert "timed out" in (row.error or "")
    assert saw_cancel.wait(5)
    assert row.started_at is not None and row.finished_at is not None
    assert row.finished_at - row.started_at >= timedelta(milliseconds=100)


async def test_unstorable_result_fails_the_attempt(storage_factory: StorageFactory) -> None:
    @task
    async def weird(ctx: TaskContext) -> object:
        return {"when": object()}

    @task
    async def nan(ctx: TaskContext) -> float:
        return float("nan")

    scheduler, run_id = await run_once(DAG("t").add(weird, nan), storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        rows = {tr.task_id: tr for tr in await reader.task_runs(run_id)}
    for row in rows.values():
        assert row.status is TaskStatus.failed
        assert "cannot be stored as JSON" in (row.error or "")


async def test_results_come_back_as_json_values(storage_factory: StorageFactory) -> None:
    @task
    async def tup(ctx: TaskContext) -> object:
        return (1, 2)

    @task
    async def check(ctx: TaskContext) -> object:
        return ctx.upstream["tup"]

    scheduler, run_id = await run_once(DAG("t").add(tup >> check), storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        rows = {tr.task_id: tr for tr in await reader.task_runs(run_id)}
    assert rows["check"].result == [1, 2]


async def test_task_logs_are_stored_and_reach_logging(
    storage_factory: StorageFactory, caplog: pytest.LogCaptureFixture
) -> None:
    @task
    async def talk(ctx: TaskContext) -> None:
        ctx.log.info("hello %s", "world")
        ctx.log.warning("careful")
        ctx.log.debug("not stored by default")

    @task
    def talk_in_thread(ctx: TaskContext) -> None:
        try:
            raise KeyError("missing")
        except KeyError:
            ctx.log.exception("it broke")

    caplog.set_level(logging.INFO, logger="ppacer_async.task")
    scheduler, run_id = await run_once(DAG("logs").add(talk >> talk_in_thread), storage_factory())
    async with Scheduler([], storage=scheduler.storage) as reader:
        records = await reader.logs(run_id)
        only = await reader.logs(run_id, "talk")
    assert [(r.task_id, r.level, r.message.splitlines()[0]) for r in records] == [
        ("talk", "INFO", "hello world"),
        ("talk", "WARNING", "careful"),
        ("talk_in_thread", "ERROR", "it broke"),
    ]
    assert "KeyError: 'missing'" in records[2].message
    assert [r.message for r in only] == ["hello world", "careful"]
    assert all(r.run_id == run_id and r.attempt == 1 for r in records)
    assert "hello world" in caplog.text
    assert "it broke" in caplog.text


async def test_failure_alert_once_after_last_attempt_and_retry_alerts(
    storage_factory: StorageFactory,
) -> None:
    notifier = RecordingNotifier()

    @task(retries=2, retry_delay=timedelta(milliseconds=1), alert_on_retry=True)
    async def always_fails(ctx: TaskContext) -> None:
        raise RuntimeError("nope")

    @task(retries=1, retry_delay=timedelta(milliseconds=1))
    async def quiet_retry(ctx: TaskContext) -> None:
        raise RuntimeError("quiet")

    dag = DAG("alerts").add(always_fails, quiet_retry)
    await run_once(dag, storage_factory(), notifier=notifier)
    alerts = await notifier.wait_for(4)
    kinds = sorted((a.task_id, a.kind, a.attempt) for a in alerts)
    assert kinds == [
        ("always_fails", "failure", 3),
        ("always_fails", "retry", 1),
        ("always_fails", "retry", 2),
        ("quiet_retry", "failure", 2),
    ]
    failure = next(a for a in alerts if a.kind == "failure" and a.task_id == "always_fails")
    assert failure.dag_id == "alerts"
    assert "RuntimeError: nope" in failure.error
    assert "always_fails" in failure.text and "nope" in failure.text


async def test_task_notifier_replaces_the_schedulers(storage_factory: StorageFactory) -> None:
    own, default = RecordingNotifier(), RecordingNotifier()

    @task(notifier=own)
    async def mine(ctx: TaskContext) -> None:
        assert ctx.notifier is own
        raise RuntimeError("x")

    @task
    async def theirs(ctx: TaskContext) -> None:
        raise RuntimeError("y")

    await run_once(DAG("n").add(mine, theirs), storage_factory(), notifier=default)
    assert [a.task_id for a in await own.wait_for(1)] == ["mine"]
    assert [a.task_id for a in await default.wait_for(1)] == ["theirs"]


async def test_raising_notifier_is_logged_and_never_breaks_the_run(
    storage_factory: StorageFactory, caplog: pytest.LogCaptureFixture
) -> None:
    @task
    async def fails(ctx: TaskContext) -> None:
        raise RuntimeError("task broke")

    @task
    async def independent(ctx: TaskContext) -> int:
        return 1

    storage = storage_factory()
    scheduler = Scheduler(
        [DAG("n").add(fails, independent)], storage=storage, notifier=FailingNotifier()
    )
    async with scheduler:
        run = await scheduler.trigger("n")
        done = await scheduler.wait_for_run(run.id, timeout=10)
        second = await scheduler.trigger("n")
        assert (await scheduler.wait_for_run(second.id, timeout=10)).status is done.status
    assert done.status is DagRunStatus.failed
    assert "the alert service is down" in caplog.text


async def test_trigger_params_reach_the_task(storage_factory: StorageFactory) -> None:
    seen: list[dict] = []

    @task
    async def show(ctx: TaskContext) -> None:
        seen.append(dict(ctx.params))

    dag = DAG("p", params={"day": "mon", "n": 1}).add(show)
    scheduler, run_id = await run_once(dag, storage_factory(), {"n": 2})
    assert seen == [{"day": "mon", "n": 2}]
    async with Scheduler([], storage=scheduler.storage) as reader:
        assert (await reader.get_run(run_id)).params == {"day": "mon", "n": 2}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
async def test_non_finite_trigger_params_are_refused_alike_on_every_storage(
    storage: Storage, value: float
) -> None:
    @task
    async def noop(ctx: TaskContext) -> None:
        pass

    async with Scheduler([DAG("p").add(noop)], storage=storage) as scheduler:
        with pytest.raises(ValueError, match=r"params\['x'\]\[0\] = .* not a finite number"):
            await scheduler.trigger("p", {"x": [value]})
        assert await scheduler.list_runs("p") == []
        run = await scheduler.trigger("p", {"x": "nan"})
        assert (await scheduler.wait_for_run(run.id, timeout=10)).params == {"x": "nan"}


async def test_unknown_dag_raises_dag_not_found(storage: Storage) -> None:
    async with Scheduler([], storage=storage) as scheduler:
        with pytest.raises(DagNotFound, match="nope"):
            await scheduler.trigger("nope")
        with pytest.raises(LookupError):
            await scheduler.trigger("nope")


async def test_restart_reruns_only_what_did_not_succeed(storage_factory: StorageFactory) -> None:
    calls: list[str] = []
    broken = True

    @task
    async def first(ctx: TaskContext) -> int:
        calls.append("first")
        return 1

    @task
    async def middle(ctx: TaskContext) -> int:
        calls.append(f"middle#{ctx.attempt}")
        if broken:
            raise RuntimeError("not yet")
        return ctx.upstream["first"] + 1

    @task
    async def end(ctx: TaskContext) -> int:
        calls.append(f"end#{ctx.attempt}")
        return ctx.upstream["middle"] + 1

    dag = DAG("rs").add(first >> middle >> end)
    async with Scheduler([dag], storage=storage_factory(), notifier=RecordingNotifier()) as s:
        run = await s.trigger("rs")
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.failed
        broken = False
        restarted = await s.restart_run(run.id)
        assert restarted.status in (DagRunStatus.queued, DagRunStatus.running)
        assert restarted.trigger is RunTrigger.restart
        done = await s.wait_for_run(run.id, timeout=10)
        rows = await s.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert calls == ["first", "middle#1", "middle#2", "end#2"]
    assert statuses(rows) == {
        "first": ["success"],
        "middle": ["failed", "success"],
        "end": ["upstream_failed", "success"],
    }
    assert {tr.task_id: tr.result for tr in rows if tr.status is TaskStatus.success} == {
        "first": 1,
        "middle": 2,
        "end": 3,
    }


async def test_restart_refuses_unknown_active_and_successful_runs(storage: Storage) -> None:
    gate = Gate()

    @task
    async def wait(ctx: TaskContext) -> None:
        if ctx.params.get("block"):
            await gate.enter()

    async with Scheduler([DAG("g").add(wait)], storage=storage) as s:
        ok = await s.trigger("g")
        assert (await s.wait_for_run(ok.id, timeout=10)).status is DagRunStatus.success
        with pytest.raises(InvalidOperation, match="only failed or cancelled runs can be"):
            await s.restart_run(ok.id)
        with pytest.raises(RunNotFound):
            await s.restart_run(10_000)
        busy = await s.trigger("g", {"block": True})
        await gate.wait_inside(1)
        with pytest.raises(InvalidOperation, match="is running; only failed or cancelled runs"):
            await s.restart_run(busy.id)
        gate.open()
        await s.wait_for_run(busy.id, timeout=10)


async def test_wait_for_run_times_out_and_rejects_unknown_runs(storage: Storage) -> None:
    gate = Gate()

    @task
    async def wait(ctx: TaskContext) -> None:
        await gate.enter()

    async with Scheduler([DAG("g").add(wait)], storage=storage) as s:
        with pytest.raises(RunNotFound):
            await s.wait_for_run(12345)
        run = await s.trigger("g")
        await gate.wait_inside(1)
        with pytest.raises(TimeoutError):
            await s.wait_for_run(run.id, timeout=0.01)
        gate.open()
        assert (await s.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success


async def test_public_methods_need_a_serving_scheduler(storage: Storage) -> None:
    scheduler = Scheduler([], storage=storage)
    with pytest.raises(InvalidOperation, match="not serving"):
        await scheduler.trigger("x")


async def test_max_active_runs_queues_extra_runs(storage_factory: StorageFactory) -> None:
    gate = Gate()

    @task
    async def wait(ctx: TaskContext) -> None:
        await gate.enter()

    dag = DAG("m", max_active_runs=2).add(wait)
    async with Scheduler([dag], storage=storage_factory()) as s:
        runs = [await s.trigger("m") for _ in range(5)]
        await gate.wait_inside(2)
        assert s.statistics().running_tasks == 2
        states = [(await s.get_run(r.id)).status for r in runs]
        assert states.count(DagRunStatus.running) == 2
        assert states.count(DagRunStatus.queued) == 3
        gate.open()
        for r in runs:
            assert (await s.wait_for_run(r.id, timeout=10)).status is DagRunStatus.success
    assert gate.peak == 2
    assert gate.entered == 5


async def test_dag_versions_are_recorded_once_per_definition(
    storage_factory: StorageFactory,
) -> None:
    @task
    async def one(ctx: TaskContext) -> None: ...

    @task
    async def two(ctx: TaskContext) -> None: ...

    storage = storage_factory()
    first_run = (await run_once(DAG("v").add(one), storage))[1]
    again_run = (await run_once(DAG("v").add(one), storage))[1]
    changed_run = (await run_once(DAG("v").add(one >> two), storage))[1]
    async with Scheduler([], storage=storage) as reader:
        versions = [
            (await reader.get_run(r)).dag_version for r in (first_run, again_run, changed_run)
        ]
    assert versions == [1, 1, 2]
    await storage.open()
    try:
        info = await storage.get_dag("v")
        assert info is not None and info.version == 2
        assert set(info.definition["tasks"]) == {"one", "two"}
    finally:
        await storage.close()


async def test_statistics_count_finished_work(storage: Storage) -> None:
    @task
    async def a(ctx: TaskContext) -> None: ...

    @task
    async def b(ctx: TaskContext) -> None: ...

    async with Scheduler([DAG("s").add(a >> b)], storage=storage) as s:
        run = await s.trigger("s")
        await s.wait_for_run(run.id, timeout=10)
        stats = s.statistics()
    assert stats.tasks_finished == 2
    assert stats.runs_finished == 1
    assert stats.active_runs == 0
    assert stats.commits >= 1
