"""Triggers are written in the state machine's group commit, and ``wait_for_run`` is
answered from its memory for the runs it holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from ppacer_async import (
    DAG,
    DagRunStatus,
    RunTrigger,
    Scheduler,
    StorageError,
    TaskContext,
    operations,
    task,
)
from ppacer_async._structures import Changes, DagRun, NewRun
from ppacer_async.storage.postgres import PostgresStorage
from ppacer_async.storage.sqlite import SQLiteStorage

from .conftest import POSTGRES_DSN

pytestmark = pytest.mark.anyio


class CountingSQLite(SQLiteStorage):
    """A SQLite storage that records each transaction it is asked for, and the runs
    written by the time each returned."""

    def __init__(self, path: str, *, fail_groups: int = 0, fail_creates: bool = False) -> None:
        super().__init__(path=path)
        self.log: list[tuple[str, int]] = []
        self.stored: set[int] = set()
        self.reads = 0
        self.fail_groups = fail_groups
        self.fail_creates = fail_creates

    async def create_run(self, **kwargs: Any) -> DagRun | None:
        if self.fail_creates:
            raise StorageError("the disk is full")
        run = await super().create_run(**kwargs)
        self.log.append(("create_run", 1))
        if run is not None:
            self.stored.add(run.id)
        return run

    async def create_runs_and_commit(
        self, runs: Sequence[NewRun], changes: Changes
    ) -> list[DagRun]:
        if self.fail_groups:
            self.fail_groups -= 1
            raise StorageError("the database is locked")
        created = await super().create_runs_and_commit(runs, changes)
        self.log.append(("group", len(runs)))
        self.stored.update(run.id for run in created)
        return created

    async def get_run(self, run_id: int) -> DagRun | None:
        self.reads += 1
        return await super().get_run(run_id)


@task
async def first(ctx: TaskContext) -> int:
    return int(ctx.params.get("n", 0))


@task
async def second(ctx: TaskContext) -> int:
    return int(ctx.upstream["first"]) + 1


def chain(dag_id: str = "chain") -> DAG:
    return DAG(dag_id, max_active_runs=100).add(first >> second)


async def test_concurrent_triggers_share_a_transaction_and_each_returns_once_stored(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "ppacer.db")
    storage = CountingSQLite(path)
    reader = SQLiteStorage(path=path)  # another connection sees committed rows only
    answered: dict[int, tuple[DagRun, bool, DagRun | None]] = {}

    async def trigger(n: int) -> None:
        run = await scheduler.trigger("chain", {"n": n})
        committed = run.id in storage.stored  # checked before anything else runs
        answered[n] = (run, committed, await reader.get_run(run.id))

    async with Scheduler([chain()], storage=storage) as scheduler, reader:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for n in range(50):
                    tg.start_soon(trigger, n)
            done = [await scheduler.wait_for_run(run.id) for run, _, _ in answered.values()]

    groups = [count for kind, count in storage.log if kind == "group"]
    assert ("create_run", 1) not in storage.log
    assert sum(groups) == 50
    assert len(groups) < 5, f"50 triggers at once took {len(groups)} transactions"
    for n, (run, committed, stored) in answered.items():
        assert committed
        assert stored is not None
        assert (stored.id, stored.params, stored.trigger) == (run.id, {"n": n}, RunTrigger.manual)
        assert run.status is DagRunStatus.queued
        assert (run.logical_time, run.created_at) == (stored.logical_time, stored.created_at)
    assert len({run.id for run, _, _ in answered.values()}) == 50
    assert {run.status for run in done} == {DagRunStatus.success}


async def test_wait_for_run_of_a_run_held_here_reads_no_storage(tmp_path: Path) -> None:
    storage = CountingSQLite(str(tmp_path / "ppacer.db"))
    async with Scheduler([chain()], storage=storage) as scheduler:
        run = await scheduler.trigger("chain", {"n": 4})
        reads = storage.reads
        done = await scheduler.wait_for_run(run.id, timeout=10)
        assert storage.reads == reads
        stored = await scheduler.get_run(run.id)
        rows = await scheduler.task_runs(run.id)

    assert done == stored
    assert done.status is DagRunStatus.success
    assert done.finished_at is not None
    assert {tr.task_id: tr.result for tr in rows} == {"first": 4, "second": 5}


async def test_wait_for_a_finished_run_not_held_reads_it_from_storage(tmp_path: Path) -> None:
    storage = CountingSQLite(str(tmp_path / "ppacer.db"))
    async with Scheduler([chain()], storage=storage) as scheduler:
        run = await scheduler.trigger("chain")
        await scheduler.wait_for_run(run.id, timeout=10)
        reads = storage.reads
        again = await scheduler.wait_for_run(run.id, timeout=10)

    assert storage.reads == reads + 1
    assert again.status is DagRunStatus.success


async def test_a_trigger_still_succeeds_when_writing_it_with_the_commit_fails(
    tmp_path: Path,
) -> None:
    storage = CountingSQLite(str(tmp_path / "ppacer.db"), fail_groups=1)
    async with Scheduler([chain()], storage=storage) as scheduler:
        run = await scheduler.trigger("chain", {"n": 1})
        assert run.id in storage.stored
        done = await scheduler.wait_for_run(run.id, timeout=10)

    assert ("create_run", 1) in storage.log  # written on its own the second time
    assert done.status is DagRunStatus.success


async def test_a_trigger_that_cannot_be_written_raises_the_storage_error(
    tmp_path: Path,
) -> None:
    storage = CountingSQLite(str(tmp_path / "ppacer.db"), fail_groups=1, fail_creates=True)
    async with Scheduler([chain()], storage=storage) as scheduler:
        with pytest.raises(StorageError, match="the disk is full"):
            await scheduler.trigger("chain")
        assert await scheduler.list_runs() == []
        storage.fail_creates = False
        run = await scheduler.trigger("chain")  # the scheduler goes on
        done = await scheduler.wait_for_run(run.id, timeout=10)

    assert done.status is DagRunStatus.success


async def test_wait_for_a_held_run_cancelled_by_another_process_returns_it_cancelled(
    tmp_path: Path,
) -> None:
    started = anyio.Event()

    @task
    async def hang(ctx: TaskContext) -> None:
        started.set()
        await anyio.sleep_forever()

    path = str(tmp_path / "ppacer.db")
    other = SQLiteStorage(path=path)  # the command line's connection
    result: list[DagRun] = []
    async with Scheduler([DAG("hang").add(hang)], storage=SQLiteStorage(path=path)) as s:
        run = await s.trigger("hang")

        async def wait() -> None:
            result.append(await s.wait_for_run(run.id))

        with anyio.fail_after(10):
            await started.wait()
            async with other, anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.lowlevel.checkpoint()  # it waits on the run held in memory
                await operations.cancel(other, run.id, s.clock.now(), "from elsewhere")

    assert result[0].status is DagRunStatus.cancelled
    assert result[0].note == "from elsewhere"


async def test_runs_queued_behind_max_active_runs_start_as_slots_free(tmp_path: Path) -> None:
    storage = CountingSQLite(str(tmp_path / "ppacer.db"))
    dag = DAG("one_at_a_time", max_active_runs=1).add(first >> second)
    async with Scheduler([dag], storage=storage) as scheduler:
        runs = [await scheduler.trigger("one_at_a_time", {"n": n}) for n in range(5)]
        done = [await scheduler.wait_for_run(run.id, timeout=10) for run in runs]

    assert [run.status for run in runs] == [DagRunStatus.queued] * 5
    assert [run.status for run in done] == [DagRunStatus.success] * 5
    starts = [run.started_at for run in done]
    ends = [run.finished_at for run in done]
    assert all(s is not None for s in starts) and all(e is not None for e in ends)
    for previous_end, start in zip(ends, starts[1:], strict=False):
        assert previous_end is not None and start is not None and start >= previous_end


async def test_a_trigger_with_params_that_are_not_json_writes_nothing(tmp_path: Path) -> None:
    storage = CountingSQLite(str(tmp_path / "ppacer.db"))
    async with Scheduler([chain()], storage=storage) as scheduler:
        with pytest.raises(ValueError, match="not a finite number"):
            await scheduler.trigger("chain", {"n": float("nan")})
        assert await scheduler.list_runs() == []
    assert storage.log == []


class CountingPostgres(PostgresStorage):
    """A PostgreSQL storage that counts the runs read."""

    reads = 0

    async def get_run(self, run_id: int) -> DagRun | None:
        type(self).reads += 1
        return await super().get_run(run_id)


@pytest.mark.postgres
async def test_the_leader_answers_wait_for_run_from_memory_and_a_worker_from_storage(
    schema: str,
) -> None:
    never = timedelta(hours=1)  # no polling: the notices and the machine tell
    leader = Scheduler(
        [chain()], storage=CountingPostgres(dsn=POSTGRES_DSN, schema=schema, poll_interval=never)
    )
    worker = Scheduler(
        [chain()],
        storage=PostgresStorage(dsn=POSTGRES_DSN, schema=schema, poll_interval=never),
        role="worker",
    )
    async with leader, worker:
        run = await leader.trigger("chain", {"n": 2})
        reads = CountingPostgres.reads
        by_leader = await leader.wait_for_run(run.id, timeout=10)
        assert CountingPostgres.reads == reads
        other = await worker.trigger("chain", {"n": 7})
        by_worker = await worker.wait_for_run(other.id, timeout=10)  # the leader ran it
        stored = await leader.get_run(run.id)
        rows = await leader.task_runs(other.id)

    assert by_leader == stored
    assert by_leader.status is DagRunStatus.success
    assert by_worker.status is DagRunStatus.success
    assert {tr.task_id: tr.result for tr in rows} == {"first": 7, "second": 8}
