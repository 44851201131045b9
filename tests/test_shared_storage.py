"""Several schedulers sharing one PostgreSQL schema, in one process.

Two ``Scheduler`` objects with two ``PostgresStorage`` handles on the same schema behave
like two processes: one leads (creates runs, applies outcomes), every one of role
``all`` or ``worker`` claims and runs attempts. Tests that need a server skip with the
reason when none answers (and fail under CI).
"""

from __future__ import annotations

import inspect
import logging
import re
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from ppacer_async import (
    DAG,
    DagRun,
    DagRunStatus,
    FakeClock,
    RunTrigger,
    ScheduleEventKind,
    Scheduler,
    StorageError,
    TaskContext,
    TaskRun,
    TaskStatus,
    operations,
    task,
)
from ppacer_async._enums import AttemptReason
from ppacer_async._exceptions import LeaseLost
from ppacer_async._structures import Changes, LocalClaim, LogRecord
from ppacer_async.schedules import Interval
from ppacer_async.storage import MemoryStorage, from_url
from ppacer_async.storage.postgres import PostgresStorage

from .conftest import POSTGRES_DSN
from .helpers import T0, Gate, Recorder

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)
MS = timedelta(milliseconds=1)
SECRET = "hunter2-secret"
#: So long that nothing here is found by polling: only notifications can wake anyone.
NEVER = timedelta(hours=1)

Make = Callable[..., PostgresStorage]


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
async def make(schema: str) -> AsyncIterator[Make]:
    """Make storage handles on one fresh schema (each like another process); every
    handle made is closed after the test."""
    made: list[PostgresStorage] = []

    def build(**options: Any) -> PostgresStorage:
        storage = PostgresStorage(dsn=POSTGRES_DSN, schema=schema, **options)
        made.append(storage)
        return storage

    try:
        yield build
    finally:
        for storage in made:
            await storage.close()


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    """Poll ``check`` (sync or async) every 20 ms until it returns something truthy;
    return that, or fail saying ``what`` did not happen."""
    with anyio.move_on_after(timeout):
        while True:
            found = check()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
            await anyio.sleep(0.02)
    pytest.fail(f"{what} did not happen within {timeout} s")


class Serving:
    """A scheduler served in the test's task group, which the test can stop alone."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.stopped = anyio.Event()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await self.scheduler.serve(task_status=task_status)
        finally:
            self.stopped.set()

    async def stop(self) -> None:
        self.scheduler.stop()
        with anyio.fail_after(15):
            await self.stopped.wait()


class WatchedClock(FakeClock):
    """A fake clock that tells what the leader's schedule watcher (its only sleeper)
    sleeps until: a way to see that the leader took a change into account."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.deadlines: list[datetime | None] = []
        self._slept = anyio.Event()

    async def sleep_until(self, deadline: datetime | None) -> None:
        self.deadlines.append(deadline)
        self._slept.set()
        self._slept = anyio.Event()
        await super().sleep_until(deadline)

    async def sleeps_until(self, deadline: datetime | None, timeout: float = 5) -> bool:
        """Whether the watcher's latest sleep lasts until ``deadline``, now or within
        ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            while not (self.deadlines and self.deadlines[-1] == deadline):
                await self._slept.wait()
            return True
        return False

    async def wait_for_sleep(self, deadline: datetime | None, why: str) -> None:
        if not await self.sleeps_until(deadline):
            latest = self.deadlines[-1] if self.deadlines else "nothing"
            pytest.fail(f"{why}: the watcher sleeps until {latest}, not {deadline}")


async def scheduled_attempts(
    storage: PostgresStorage, dag_id: str, count: int
) -> tuple[DagRun, list[TaskRun]]:
    """A run of ``dag_id`` with ``count`` ready attempts, as a leader writes them."""
    run = await storage.create_run(
        dag_id=dag_id,
        logical_time=T0,
        trigger=RunTrigger.manual,
        params={},
        dag_version=1,
        created_at=T0,
    )
    assert run is not None
    rows = [
        TaskRun(
            run_id=run.id,
            task_id=f"t{n:03d}",
            attempt=1,
            status=TaskStatus.scheduled,
            scheduled_at=T0 + n * MS,
        )
        for n in range(count)
    ]
    await storage.commit(Changes(task_runs=rows))
    return run, rows


async def reap_until_some(storage: PostgresStorage) -> list[TaskRun]:
    found: list[TaskRun] = await eventually(storage.reap, "an expired lease being reaped", 5)
    return found


def attempts(rows: list[TaskRun]) -> dict[str, list[tuple[int, TaskStatus, AttemptReason]]]:
    found: dict[str, list[tuple[int, TaskStatus, AttemptReason]]] = {}
    for tr in rows:
        found.setdefault(tr.task_id, []).append((tr.attempt, tr.status, tr.reason))
    return found


def hourly_dag(recorder: Recorder, **options: Any) -> DAG:
    @task
    async def work(ctx: TaskContext) -> None:
        recorder.add(ctx.logical_time)

    return DAG("hourly", schedule=Interval(HOUR), start=T0, **options).add(work)


def plain_dag(dag_id: str, recorder: Recorder, width: int = 3) -> DAG:
    """``width`` independent tasks that record their id where they run."""
    tasks = []
    for n in range(width):

        async def note(ctx: TaskContext) -> str:
            recorder.add(ctx.task_id)
            return ctx.task_id

        tasks.append(task(note, id=f"t{n}"))
    return DAG(dag_id).add(*tasks)


# -- claiming ----------------------------------------------------------------------------


@pytest.mark.postgres
async def test_concurrent_claims_share_out_every_scheduled_attempt_exactly_once(
    make: Make, admin: Any, schema: str
) -> None:
    first, second = make(), make()
    await first.open()
    await second.open()
    run, rows = await scheduled_attempts(first, "etl", 100)
    claimed: dict[str, list[tuple[int, str, int]]] = {"w1": [], "w2": []}
    claimed_at = T0 + HOUR

    async def drain(storage: PostgresStorage, worker: str) -> None:
        while True:
            found, _ = await storage.claim(worker, ["etl"], 3, claimed_at)
            if not found:
                return
            for dag_run, tr in found:
                assert dag_run.id == run.id and dag_run.dag_id == "etl"
                assert tr.status is TaskStatus.running
                assert tr.started_at == claimed_at
                claimed[worker].append(tr.key)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(2):  # two loops per handle: more contention
                tg.start_soon(drain, first, "w1")
                tg.start_soon(drain, second, "w2")

    everything = claimed["w1"] + claimed["w2"]
    assert len(everything) == len(set(everything)), "an attempt was claimed twice"
    assert set(everything) == {tr.key for tr in rows}, "an attempt was never claimed"
    assert claimed["w1"] and claimed["w2"], "one handle got everything: no concurrency"
    stored = await admin.fetch(
        f"SELECT task_id, attempt, status, lease_owner, lease_expires_at > now() AS leased "
        f'FROM "{schema}".task_runs'
    )
    owners = {(run.id, r["task_id"], r["attempt"]): r["lease_owner"] for r in stored}
    assert {r["status"] for r in stored} == {"running"}
    assert all(r["leased"] for r in stored)
    for worker, keys in claimed.items():
        assert {owners[key] for key in keys} == {worker}


@pytest.mark.postgres
async def test_claim_takes_up_to_the_limit_of_the_given_dags_only(make: Make) -> None:
    storage = make()
    await storage.open()
    etl, etl_rows = await scheduled_attempts(storage, "etl", 10)
    other, other_rows = await scheduled_attempts(storage, "other", 3)

    first, _ = await storage.claim("w1", ["etl"], 4, T0)
    assert len(first) == 4
    assert {run.id for run, _ in first} == {etl.id}
    assert await storage.claim("w1", ["nope"], 10, T0) == ([], 0)
    assert (await storage.claim("w1", [], 10, T0))[0] == []
    assert (await storage.claim("w1", ["etl"], 0, T0))[0] == []

    found, _ = await storage.claim("w1", ["other"], 10, T0)
    assert sorted(tr.key for _, tr in found) == [tr.key for tr in other_rows]
    assert {(run.id, run.dag_id) for run, _ in found} == {(other.id, "other")}
    rest, _ = await storage.claim("w1", ["etl", "other"], 100, T0)
    assert sorted(tr.key for _, tr in first + rest) == [tr.key for tr in etl_rows]
    assert await storage.claim("w1", ["etl", "other"], 100, T0) == ([], 0)


# -- reporting, renewing, reaping --------------------------------------------------------


@pytest.mark.postgres
async def test_report_accepts_outcomes_only_from_the_lease_holder(make: Make) -> None:
    storage, intruder = make(), make()
    await storage.open()
    await intruder.open()
    run, _ = await scheduled_attempts(storage, "etl", 3)
    claimed, _ = await storage.claim("w1", ["etl"], 3, T0)
    a, b, c = (tr for _, tr in claimed)
    ok = attrs.evolve(a, status=TaskStatus.success, finished_at=T0 + 1 * MS, result={"n": 1})
    failed = attrs.evolve(b, status=TaskStatus.failed, finished_at=T0 + 2 * MS, error="boom")
    cut = attrs.evolve(c, status=TaskStatus.interrupted, finished_at=T0 + 3 * MS)
    logs = [
        LogRecord(run_id=run.id, task_id=tr.task_id, attempt=1, time=T0, level="INFO", message=text)
        for tr, text in [(a, "a one"), (b, "b one"), (a, "a two"), (c, "c one"), (a, "a 3")]
    ]

    assert await intruder.report("w2", [ok, failed, cut], []) == set()
    assert await storage.reported_outcomes(["etl"], 10) == []

    accepted = await storage.report("w1", [ok, failed, cut], logs)

    assert accepted == {a.key, b.key, c.key}
    outcomes = await storage.reported_outcomes(["etl"], 10)
    assert [(tr.task_id, tr.status, tr.result, tr.error) for tr in outcomes] == [
        (a.task_id, TaskStatus.success, {"n": 1}, None),
        (b.task_id, TaskStatus.failed, None, "boom"),
        (c.task_id, TaskStatus.interrupted, None, None),
    ]
    assert [tr.finished_at for tr in outcomes] == [T0 + 1 * MS, T0 + 2 * MS, T0 + 3 * MS]
    assert len(await storage.reported_outcomes(["etl"], 2)) == 2
    assert await storage.reported_outcomes(["other"], 10) == []
    assert [r.message for r in await storage.logs(run.id)] == [r.message for r in logs]
    # Reporting gave the lease up: the same attempt cannot be reported again.
    assert await storage.report("w1", [ok], []) == set()
    with pytest.raises(ValueError, match="outcome of task"):
        await storage.report("w1", [attrs.evolve(a, status=TaskStatus.scheduled)], [])
    # Once the leader applied them, they are no longer waiting.
    await storage.commit(Changes(task_runs=outcomes))
    assert await storage.reported_outcomes(["etl"], 10) == []


@pytest.mark.postgres
async def test_a_report_after_the_lease_was_reaped_is_dropped(make: Make) -> None:
    storage, worker = make(), make(lease=timedelta(milliseconds=50))
    await storage.open()
    await worker.open()
    _, (row,) = await scheduled_attempts(storage, "etl", 1)
    ((_, claimed),), _ = await worker.claim("w1", ["etl"], 1, T0)

    reaped = await reap_until_some(storage)

    assert [(tr.key, tr.status) for tr in reaped] == [(row.key, TaskStatus.interrupted)]
    error = reaped[0].error or ""
    assert "w1" in error and "stopped renewing its lease" in error
    late = attrs.evolve(claimed, status=TaskStatus.success, finished_at=T0, result=42)
    assert await worker.report("w1", [late], []) == set()
    (outcome,) = await storage.reported_outcomes(["etl"], 10)
    assert (outcome.key, outcome.status, outcome.result) == (row.key, TaskStatus.interrupted, None)
    assert outcome.error == reaped[0].error
    assert await storage.reap() == [], "an attempt was reaped twice"


@pytest.mark.postgres
async def test_renew_leases_extends_only_the_callers_attempts(make: Make) -> None:
    short, long = make(lease=timedelta(milliseconds=500)), make(lease=timedelta(hours=1))
    await short.open()
    await long.open()
    await scheduled_attempts(short, "etl", 2)
    # Claimed first: without a renewal it would expire before the other one.
    ((_, kept),), _ = await short.claim("keeper", ["etl"], 1, T0)
    ((_, dropped),), _ = await short.claim("leaver", ["etl"], 1, T0)

    await long.renew_leases("keeper", [kept.key])

    reaped = await reap_until_some(short)
    assert [tr.key for tr in reaped] == [dropped.key]
    assert await short.reap() == [], "the renewed lease expired anyway"
    ok = attrs.evolve(kept, status=TaskStatus.success, finished_at=T0)
    assert await short.report("keeper", [ok], []) == {kept.key}


@pytest.mark.postgres
async def test_an_attempt_claimed_but_not_held_is_not_renewed_and_is_reaped(make: Make) -> None:
    # The reply to a claim can be lost with the connection: the row is the process's,
    # but the process never learnt so. Renewing by owner alone would keep it forever.
    storage = make(lease=timedelta(milliseconds=500))
    await storage.open()
    await scheduled_attempts(storage, "etl", 2)
    ((_, held),), _ = await storage.claim("worker", ["etl"], 1, T0)
    ((_, lost),), _ = await storage.claim("worker", ["etl"], 1, T0)

    reaped: list[TaskRun] = []
    with anyio.fail_after(10):
        while not reaped:
            await storage.renew_leases("worker", [held.key])
            reaped = await storage.reap()

    assert [tr.key for tr in reaped] == [lost.key]


@pytest.mark.postgres
async def test_lease_due_says_when_the_earliest_lease_runs_out(make: Make) -> None:
    hour, two_hours = make(lease=timedelta(hours=1)), make(lease=timedelta(hours=2))
    await hour.open()
    await two_hours.open()
    assert await hour.lease_due() is None
    await scheduled_attempts(hour, "etl", 2)
    assert await hour.lease_due() is None, "a scheduled attempt holds no lease"
    ((_, first),), _ = await hour.claim("w1", ["etl"], 1, T0)
    due = await hour.lease_due()
    assert due is not None and timedelta(minutes=59) < due <= timedelta(hours=1)

    ((_, second),), _ = await two_hours.claim("w2", ["etl"], 1, T0)
    await two_hours.renew_leases("w1", [first.key])
    due = await hour.lease_due()
    assert due is not None and timedelta(hours=1, minutes=59) < due <= timedelta(hours=2)

    for worker, tr in (("w1", first), ("w2", second)):
        done = attrs.evolve(tr, status=TaskStatus.success, finished_at=T0)
        assert await hour.report(worker, [done], []) == {tr.key}
    assert await hour.lease_due() is None, "a reported attempt holds no lease"


# -- the leader claiming for its own workers in its commits --------------------------------


async def leases(admin: Any, schema: str, run_id: int) -> dict[str, tuple[str, str | None]]:
    """task -> (status, lease owner) of attempt 1 of each task of a run."""
    rows = await admin.fetch(
        f'SELECT task_id, status, lease_owner FROM "{schema}".task_runs '
        "WHERE run_id = $1 AND attempt = 1",
        run_id,
    )
    return {row["task_id"]: (row["status"], row["lease_owner"]) for row in rows}


@pytest.mark.postgres
async def test_a_commit_claims_ready_attempts_for_a_process_alone_with_its_dags(
    make: Make, admin: Any, schema: str
) -> None:
    storage = make()
    await storage.open()
    run, stored = await scheduled_attempts(storage, "etl", 3)
    ready = [
        TaskRun(
            run_id=run.id,
            task_id=f"n{n}",
            attempt=1,
            status=TaskStatus.scheduled,
            scheduled_at=T0,
        )
        for n in range(3)
    ]
    # Another process took t001 meanwhile: it is not claimed twice.
    ((_, other),), _ = await storage.claim("other", ["etl"], 1, T0)
    assert other.key == stored[0].key
    claim = LocalClaim(
        worker_id="leader",
        dag_ids=("etl",),
        now=T0 + HOUR,
        fresh=frozenset(tr.key for tr in ready[:2]),
        stored=tuple(tr.key for tr in stored[:2]),
    )

    taken = await storage.commit_claiming(Changes(task_runs=ready), claim)

    assert taken == {ready[0].key, ready[1].key, stored[1].key}
    assert await leases(admin, schema, run.id) == {
        "n0": ("running", "leader"),
        "n1": ("running", "leader"),
        "n2": ("scheduled", None),
        "t000": ("running", "other"),
        "t001": ("running", "leader"),
        "t002": ("scheduled", None),
    }
    rows = {tr.task_id: tr for tr in await storage.task_runs(run.id)}
    assert rows["n0"].started_at == rows["t001"].started_at == T0 + HOUR
    # What the leader claimed is its own: renewed, reported, reaped like any claim.
    ok = attrs.evolve(ready[0], status=TaskStatus.success, finished_at=T0 + HOUR)
    assert await storage.report("leader", [ok], []) == {ready[0].key}


@pytest.mark.postgres
async def test_a_commit_claims_nothing_while_another_process_runs_the_same_dags(
    make: Make, admin: Any, schema: str
) -> None:
    storage = make()
    await storage.open()
    await storage.register_worker("peer", "worker", T0, ["etl"])
    await storage.register_worker("elsewhere", "worker", T0, ["other"])
    await storage.register_worker("planner", "scheduler", T0, ["etl"])
    run, stored = await scheduled_attempts(storage, "etl", 1)
    ready = TaskRun(
        run_id=run.id, task_id="n0", attempt=1, status=TaskStatus.scheduled, scheduled_at=T0
    )
    claim = LocalClaim(
        worker_id="leader",
        dag_ids=("etl",),
        now=T0,
        fresh=frozenset([ready.key]),
        stored=(stored[0].key,),
    )

    assert await storage.commit_claiming(Changes(task_runs=[ready]), claim) == set()

    assert await leases(admin, schema, run.id) == {
        "n0": ("scheduled", None),
        "t000": ("scheduled", None),
    }
    claimed, _ = await storage.claim("peer", ["etl"], 10, T0)
    assert sorted(tr.task_id for _, tr in claimed) == ["n0", "t000"]


@pytest.mark.postgres
async def test_a_commit_sent_in_chunks_claims_in_its_first_and_writes_no_chunk_without_a_lease(
    make: Make, admin: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ppacer_async.storage.postgres import storage as pg_storage

    monkeypatch.setattr(pg_storage, "COMMIT_CHUNK", 2)  # 5 rows: three statements
    storage, short = make(), make(lease=timedelta(milliseconds=50))
    await storage.open()
    await short.open()
    run, _ = await scheduled_attempts(storage, "etl", 1)
    ready = [
        TaskRun(run_id=run.id, task_id=f"n{n}", attempt=1, status=TaskStatus.scheduled)
        for n in range(5)
    ]
    # The attempts to claim are the last rows: they are written in the first chunk.
    claim = LocalClaim(
        worker_id="leader",
        dag_ids=("etl",),
        now=T0,
        fresh=frozenset(tr.key for tr in ready[3:]),
    )

    taken = await storage.commit_claiming(Changes(task_runs=ready), claim)

    assert taken == {ready[3].key, ready[4].key}
    assert await leases(admin, schema, run.id) == {
        "n0": ("scheduled", None),
        "n1": ("scheduled", None),
        "n2": ("scheduled", None),
        "n3": ("running", "leader"),
        "n4": ("running", "leader"),
        "t000": ("scheduled", None),
    }

    ((_, lost),), _ = await short.claim("leader", ["etl"], 1, T0)
    assert [tr.key for tr in await reap_until_some(storage)] == [lost.key]
    done = attrs.evolve(lost, status=TaskStatus.success, finished_at=T0)
    more = [attrs.evolve(tr, task_id=f"m{n}") for n, tr in enumerate(ready)]
    with pytest.raises(LeaseLost, match="given up"):
        await storage.commit_claiming(
            Changes(task_runs=[done, *more]),
            LocalClaim(worker_id="leader", dag_ids=("etl",), now=T0, applied=(done.key,)),
        )
    assert len(await storage.task_runs(run.id)) == 6  # no chunk was written


@pytest.mark.postgres
async def test_outcomes_applied_by_the_leader_are_written_only_while_it_holds_their_leases(
    make: Make, admin: Any, schema: str
) -> None:
    storage, short = make(), make(lease=timedelta(milliseconds=50))
    await storage.open()
    await short.open()
    run, _ = await scheduled_attempts(storage, "etl", 3)
    claimed, _ = await storage.claim("leader", ["etl"], 2, T0)
    (a, b), ((_, c),) = [tr for _, tr in claimed], (await short.claim("leader", ["etl"], 1, T0))[0]
    done = [
        attrs.evolve(tr, status=TaskStatus.success, finished_at=T0, result=n)
        for n, tr in enumerate((a, b, c))
    ]
    finished = attrs.evolve(run, status=DagRunStatus.success, finished_at=T0)

    def applying(*outcomes: TaskRun) -> LocalClaim:
        return LocalClaim(
            worker_id="leader",
            dag_ids=("etl",),
            now=T0,
            applied=tuple(tr.key for tr in outcomes),
        )

    await storage.commit_claiming(Changes(task_runs=done[:2]), applying(*done[:2]))
    assert await leases(admin, schema, run.id) == {
        "t000": ("success", None),
        "t001": ("success", None),
        "t002": ("running", "leader"),
    }
    assert await storage.reported_outcomes(["etl"], 10) == []

    assert [tr.key for tr in await reap_until_some(storage)] == [c.key]
    with pytest.raises(LeaseLost, match="given up"):
        await storage.commit_claiming(
            Changes(task_runs=done[2:], dag_runs=[finished]), applying(done[2])
        )
    stored = await storage.get_run(run.id)
    assert stored is not None and stored.status is run.status  # nothing was written
    ((outcome, _),) = [(tr.status, tr.error) for tr in await storage.reported_outcomes(["etl"], 10)]
    assert outcome is TaskStatus.interrupted  # the reap's, for the leader to apply


@pytest.mark.postgres
async def test_a_lone_scheduler_stores_every_outcome_of_a_wide_run_and_gives_up_each_lease(
    make: Make, admin: Any, schema: str
) -> None:
    width = 300

    async def leaf(ctx: TaskContext) -> int:
        return int(ctx.task_id[1:])

    @task
    async def total(ctx: TaskContext) -> int:
        return sum(ctx.upstream.values())

    dag = DAG("wide").add([task(leaf, id=f"l{n}") for n in range(width)] >> total)
    async with Scheduler([dag], storage=make(), max_concurrent_tasks=16) as s:
        run = await s.trigger("wide")
        done = await s.wait_for_run(run.id, timeout=30)
        rows = await s.task_runs(run.id)

    assert done.status is DagRunStatus.success
    assert [(tr.status, tr.attempt) for tr in rows] == [(TaskStatus.success, 1)] * (width + 1)
    assert {tr.task_id: tr.result for tr in rows}["total"] == sum(range(width))
    left = await admin.fetchval(
        f'SELECT count(*) FROM "{schema}".task_runs WHERE run_id = $1 '
        "AND (lease_owner IS NOT NULL OR lease_expires_at IS NOT NULL OR outcome IS NOT NULL)",
        run.id,
    )
    assert left == 0  # no outcome went through a report: the commits stored them


# -- schedulers sharing a schema ---------------------------------------------------------


@pytest.mark.postgres
async def test_two_schedulers_create_one_run_per_schedule_point(make: Make) -> None:
    clock = FakeClock(T0)
    ran = [Recorder(), Recorder()]
    first, second = (
        Scheduler([hourly_dag(recorder)], storage=make(), clock=clock) for recorder in ran
    )
    points = [T0 + k * HOUR for k in (1, 2, 3)]
    async with first, second:
        for point in points:
            clock.set(point)

            async def done(point: datetime = point) -> bool:
                runs = await first.list_runs("hourly")
                return any(
                    r.logical_time == point and r.status is DagRunStatus.success for r in runs
                )

            await eventually(done, f"the run for {point}")
        runs = await second.list_runs("hourly")
        events = await first.storage.schedule_events("hourly")
        commits = [first.statistics().commits, second.statistics().commits]

    assert sorted((r.logical_time, r.trigger, r.status) for r in runs) == [
        (point, RunTrigger.schedule, DagRunStatus.success) for point in points
    ]
    assert sorted((e.logical_time, e.kind) for e in events) == [
        (point, ScheduleEventKind.regular) for point in points
    ]
    assert sorted(ran[0].values + ran[1].values) == points, "a point ran twice or never"
    assert len([n for n in commits if n > 0]) == 1, f"not exactly one leader: commits {commits}"


@pytest.mark.postgres
async def test_two_schedulers_share_the_tasks_of_a_wide_run(make: Make) -> None:
    gate = Gate()

    def wide(recorder: Recorder) -> DAG:
        tasks = []
        for n in range(4):

            async def hold(ctx: TaskContext) -> None:
                recorder.add(ctx.task_id)
                await gate.enter()

            tasks.append(task(hold, id=f"t{n}"))
        return DAG("wide").add(*tasks)

    ran = [Recorder(), Recorder()]
    first, second = (
        Scheduler([wide(recorder)], storage=make(), max_concurrent_tasks=2) for recorder in ran
    )
    async with first, second:
        run = await second.trigger("wide")
        # Each runs two at most: four inside means both claimed.
        await gate.wait_inside(4)
        assert len(ran[0].values) == 2 and len(ran[1].values) == 2
        gate.open()
        done = await first.wait_for_run(run.id, timeout=10)
        rows = await first.task_runs(run.id)

    assert done.status is DagRunStatus.success
    assert sorted(ran[0].values + ran[1].values) == ["t0", "t1", "t2", "t3"]
    assert all(tr.status is TaskStatus.success and tr.attempt == 1 for tr in rows)


@pytest.mark.postgres
async def test_when_the_leader_stops_mid_run_another_takes_over_and_finishes_it(
    make: Make,
) -> None:
    gate = Gate()

    def chain(recorder: Recorder) -> DAG:
        @task
        async def begin(ctx: TaskContext) -> int:
            recorder.add((ctx.task_id, ctx.attempt))
            return 1

        holds = []
        for n in range(4):

            async def hold(ctx: TaskContext) -> int:
                recorder.add((ctx.task_id, ctx.attempt))
                await gate.enter()
                return int(ctx.upstream["begin"]) + 1

            holds.append(task(hold, id=f"h{n}"))

        @task
        async def end(ctx: TaskContext) -> int:
            recorder.add((ctx.task_id, ctx.attempt))
            return sum(ctx.upstream.values())

        return DAG("failover").add(begin >> holds >> end)

    ran = {"one": Recorder(), "two": Recorder()}
    served = {
        name: Serving(
            Scheduler(
                [chain(recorder)],
                storage=make(poll_interval=timedelta(milliseconds=100), lease=timedelta(seconds=2)),
                max_concurrent_tasks=2,
            )
        )
        for name, recorder in ran.items()
    }
    async with anyio.create_task_group() as tg:
        for s in served.values():
            await tg.start(s.serve)
        try:
            run = await served["two"].scheduler.trigger("failover")
            await gate.wait_inside(4)
            leading = [n for n, s in served.items() if s.scheduler.statistics().commits > 0]
            assert len(leading) == 1, f"not exactly one leader: {leading}"
            (leader,) = leading
            (follower,) = set(served) - {leader}
            stayed = served[follower].scheduler

            await served[leader].stop()
            await eventually(lambda: stayed.statistics().commits > 0, "the takeover")
            gate.open()
            done = await stayed.wait_for_run(run.id, timeout=10)
            rows = await stayed.task_runs(run.id)
        finally:
            for s in served.values():
                s.scheduler.stop()

    assert done.status is DagRunStatus.success
    cut = sorted(t for t, attempt in ran[leader].values if t.startswith("h"))
    kept = sorted(t for t, attempt in ran[follower].values if t.startswith("h") and attempt == 1)
    assert len(cut) == 2 and len(kept) == 2
    found = attempts(rows)
    for task_id in cut:  # cut short by the stop, run again by the new leader
        assert found[task_id] == [
            (1, TaskStatus.interrupted, AttemptReason.initial),
            (2, TaskStatus.success, AttemptReason.interrupted),
        ]
        assert (task_id, 2) in ran[follower].values
    for task_id in kept:
        assert found[task_id] == [(1, TaskStatus.success, AttemptReason.initial)]
    assert found["begin"] == found["end"] == [(1, TaskStatus.success, AttemptReason.initial)]
    assert {tr.task_id: tr.result for tr in rows if tr.status is TaskStatus.success}["end"] == 8


# -- roles -------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_scheduler_role_schedules_and_a_worker_role_runs_the_tasks(make: Make) -> None:
    ran = {"scheduler": Recorder(), "worker": Recorder()}
    leader = Scheduler([plain_dag("roles", ran["scheduler"])], storage=make(), role="scheduler")
    worker = Scheduler([plain_dag("roles", ran["worker"])], storage=make(), role="worker")
    async with leader, worker:
        run = await leader.trigger("roles")
        done = await leader.wait_for_run(run.id, timeout=10)
        assert leader.statistics().commits > 0
        assert worker.statistics().commits == 0

    assert done.status is DagRunStatus.success
    assert ran["scheduler"].values == []
    assert sorted(ran["worker"].values) == ["t0", "t1", "t2"]


class SlowToStart(PostgresStorage):
    """A worker's storage whose reads of upstream results, between claiming attempts and
    starting them, wait until ``go`` is set; it notes each run it reads cancelled."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reading = anyio.Event()
        self.go = anyio.Event()
        self.seen_cancelled: set[int] = set()
        self._seen = anyio.Event()

    async def upstream_results(self, keys: Any) -> dict[tuple[int, str], Any]:
        self.reading.set()
        await self.go.wait()
        return await super().upstream_results(keys)

    async def get_run(self, run_id: int) -> DagRun | None:
        run = await super().get_run(run_id)
        if run is not None and run.status is DagRunStatus.cancelled:
            self.seen_cancelled.add(run_id)
            self._seen.set()
        return run

    async def wait_for_seen_cancelled(self, run_id: int) -> None:
        with anyio.fail_after(10):
            while run_id not in self.seen_cancelled:
                self._seen = anyio.Event()
                await self._seen.wait()


@pytest.mark.postgres
async def test_an_attempt_claimed_but_not_started_when_its_run_is_cancelled_never_starts(
    make: Make, schema: str
) -> None:
    ran = Recorder()

    @task
    async def first(ctx: TaskContext) -> int:
        ran.add(ctx.task_id)
        return 1

    @task
    async def second(ctx: TaskContext) -> None:
        ran.add(ctx.task_id)

    @task
    async def later(ctx: TaskContext) -> None:
        ran.add(ctx.task_id)

    dags = [DAG("guarded").add(first >> second), DAG("after").add(later)]
    poll = timedelta(milliseconds=200)
    slow = SlowToStart(dsn=POSTGRES_DSN, schema=schema, poll_interval=poll)
    leader = Scheduler(dags, storage=make(poll_interval=poll), role="scheduler")
    worker = Scheduler(dags, storage=slow, role="worker", max_concurrent_tasks=1)
    async with leader, worker:
        run = await leader.trigger("guarded")
        await ran.wait_for(1)
        with anyio.fail_after(10):
            await slow.reading.wait()  # second is claimed, not started
        cancelled = await leader.cancel_run(run.id)
        await slow.wait_for_seen_cancelled(run.id)
        slow.go.set()
        # The worker takes work again once past the cancelled attempt.
        other = await leader.trigger("after")
        assert (await leader.wait_for_run(other.id, timeout=10)).status is DagRunStatus.success
        rows = {tr.task_id: tr for tr in await leader.task_runs(run.id)}
        stats = worker.statistics()
    assert cancelled.status is DagRunStatus.cancelled
    assert ran.values == ["first", "later"]
    assert (rows["second"].attempt, rows["second"].status) == (1, TaskStatus.cancelled)
    assert stats.running_tasks == 0


@pytest.mark.postgres
async def test_every_role_keeps_its_process_listed_past_the_lease(make: Make, admin: Any) -> None:
    lease = timedelta(milliseconds=300)
    schedulers = [
        Scheduler([plain_dag("listed", Recorder())], storage=make(lease=lease), role=role)
        for role in ("scheduler", "worker", "all")
    ]
    reader = make()
    await reader.open()
    async with schedulers[0], schedulers[1], schedulers[2]:
        # Several leases go by: only renewals keep the rows from expiring.
        deadline = await admin.fetchval("SELECT clock_timestamp()") + 4 * lease
        await eventually(
            lambda: admin.fetchval("SELECT clock_timestamp() > $1", deadline),
            "four leases passing",
        )
        listed = {w.id: w.role for w in await reader.workers()}
    assert listed == {s.worker_id: s.role for s in schedulers}


@pytest.mark.postgres
async def test_workers_alone_never_schedule_but_queue_manual_runs_for_a_scheduler(
    make: Make,
) -> None:
    clock = FakeClock(T0)  # T0 is due at once: a leader would create its run at start
    ran = {"scheduler": Recorder(), "worker": Recorder()}
    worker = Scheduler(
        [hourly_dag(ran["worker"], catchup=True)], storage=make(), role="worker", clock=clock
    )
    async with worker:
        await anyio.wait_all_tasks_blocked()
        assert await worker.list_runs("hourly") == [], "a worker created a scheduled run"
        manual = await worker.trigger("hourly")
        await anyio.wait_all_tasks_blocked()
        assert (await worker.get_run(manual.id)).status is DagRunStatus.queued
        assert ran["worker"].values == []

        leader = Scheduler(
            [hourly_dag(ran["scheduler"], catchup=True)],
            storage=make(),
            role="scheduler",
            clock=clock,
        )

        async def both() -> list[DagRun] | None:
            runs = await worker.list_runs("hourly")
            return runs if len(runs) == 2 else None

        async with leader:
            runs = await eventually(both, "the scheduled run for T0")
            finished = [await worker.wait_for_run(r.id, timeout=10) for r in runs]

    assert sorted((r.trigger, r.logical_time, r.status) for r in finished) == [
        (RunTrigger.manual, T0, DagRunStatus.success),
        (RunTrigger.schedule, T0, DagRunStatus.success),
    ]
    assert ran["scheduler"].values == []
    assert len(ran["worker"].values) == 2


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_roles_other_than_all_need_postgres(role: Any, tmp_path: Path) -> None:
    from ppacer_async.storage.sqlite import SQLiteStorage

    for storage in (MemoryStorage(), SQLiteStorage(path=str(tmp_path / "p.db")), "memory://"):
        with pytest.raises(ValueError, match="PostgreSQL") as caught:
            Scheduler([], storage=storage, role=role)
        assert repr(role) in str(caught.value)


@pytest.mark.parametrize("kind", ["memory", "postgres"])
def test_an_unknown_role_is_refused(kind: str) -> None:
    storage = MemoryStorage() if kind == "memory" else PostgresStorage(dsn=POSTGRES_DSN)
    expected = "role must be 'all', 'scheduler' or 'worker', got 'boss'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        Scheduler([], storage=storage, role="boss")  # type: ignore[arg-type]


# -- leases in a serving scheduler -------------------------------------------------------


@pytest.mark.postgres
async def test_a_task_longer_than_the_lease_keeps_it_by_renewal(make: Make) -> None:
    @task
    async def slow(ctx: TaskContext) -> str:
        await anyio.sleep(2.5)  # the work being measured: 2.5 leases long
        return "done"

    dag = DAG("slow").add(slow)
    async with Scheduler([dag], storage=make(lease=timedelta(seconds=1))) as s:
        run = await s.trigger("slow")
        done = await s.wait_for_run(run.id, timeout=10)
        rows = await s.task_runs(run.id)

    assert done.status is DagRunStatus.success
    assert [(tr.attempt, tr.status, tr.result) for tr in rows] == [
        (1, TaskStatus.success, "done")
    ], "the lease expired under a running task"


@pytest.mark.postgres
async def test_an_attempt_whose_worker_vanished_is_reaped_and_run_again(make: Make) -> None:
    gate = Gate()
    ran = Recorder()

    async def work(ctx: TaskContext) -> int:
        ran.add((ctx.task_id, ctx.attempt))
        await gate.enter()
        return ctx.attempt

    dag = DAG("reaped").add(task(work, id="x"), task(work, id="y"))
    ghost = make(lease=timedelta(milliseconds=50))
    await ghost.open()
    # One worker: it claims one task and waits in the gate; the other stays ready.
    s = Scheduler([dag], storage=make(lease=timedelta(seconds=1)), max_concurrent_tasks=1)
    async with s:
        run = await s.trigger("reaped")
        await gate.wait_inside(1)

        async def claim() -> list[tuple[DagRun, TaskRun]]:
            # A worker that claims and then vanishes: it never renews nor reports.
            found, _ = await ghost.claim("ghost-worker", ["reaped"], 10, T0)
            return found

        ((_, lost),) = await eventually(claim, "the ghost worker's claim")
        gate.open()
        done = await s.wait_for_run(run.id, timeout=10)
        rows = await s.task_runs(run.id)

    assert done.status is DagRunStatus.success
    (kept,) = {"x", "y"} - {lost.task_id}
    found = attempts(rows)
    assert found[kept] == [(1, TaskStatus.success, AttemptReason.initial)]
    assert found[lost.task_id] == [
        (1, TaskStatus.interrupted, AttemptReason.initial),
        (2, TaskStatus.success, AttemptReason.interrupted),
    ]
    first = next(tr for tr in rows if tr.key == lost.key)
    assert "ghost-worker" in (first.error or "")
    assert "stopped renewing its lease" in (first.error or "")
    assert sorted(ran.values) == [(kept, 1), (lost.task_id, 2)]


# -- notifications -----------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_trigger_from_a_worker_reaches_the_leader_without_polling(make: Make) -> None:
    ran = {"scheduler": Recorder(), "worker": Recorder()}
    leader = Scheduler(
        [plain_dag("notified", ran["scheduler"])],
        storage=make(poll_interval=NEVER),
        role="scheduler",
    )
    worker = Scheduler(
        [plain_dag("notified", ran["worker"])], storage=make(poll_interval=NEVER), role="worker"
    )
    async with leader, worker:
        run = await worker.trigger("notified")
        # changes -> leader, work -> worker, outcomes -> leader, finished -> worker
        done = await worker.wait_for_run(run.id, timeout=10)

    assert done.status is DagRunStatus.success
    assert sorted(ran["worker"].values) == ["t0", "t1", "t2"]


@pytest.mark.postgres
async def test_a_trigger_through_storage_alone_reaches_the_leader_without_polling(
    make: Make,
) -> None:
    @task
    async def echo(ctx: TaskContext) -> Any:
        return ctx.params["n"]

    dag = DAG("echo", params={"n": 1}).add(echo)
    handle = make(poll_interval=NEVER)
    async with Scheduler([dag], storage=make(poll_interval=NEVER)) as leader:
        await handle.open()
        run = await operations.trigger(handle, "echo", {"n": 3}, T0)
        done = await leader.wait_for_run(run.id, timeout=10)
        (row,) = await leader.task_runs(run.id)

    assert done.status is DagRunStatus.success
    assert row.result == 3


@pytest.mark.postgres
async def test_a_pause_and_unpause_through_storage_alone_are_followed_without_polling(
    make: Make,
) -> None:
    clock = WatchedClock(T0)
    recorder = Recorder()
    handle = make(poll_interval=NEVER)
    storage = make(poll_interval=NEVER)
    async with Scheduler([hourly_dag(recorder)], storage=storage, clock=clock) as leader:
        await handle.open()
        await clock.wait_for_sleep(T0 + HOUR, "the leader waiting for its first point")

        await operations.pause(handle, "hourly")

        await clock.wait_for_sleep(None, "the leader following the pause")
        clock.set(T0 + HOUR)
        await anyio.wait_all_tasks_blocked()
        assert await leader.list_runs("hourly") == [], "a paused DAG got a scheduled run"

        await operations.unpause(handle, "hourly", "now", clock.now())

        await clock.wait_for_sleep(T0 + 2 * HOUR, "the leader following the unpause")
        clock.set(T0 + 2 * HOUR)
        await recorder.wait_for(1)
        (run,) = await leader.list_runs("hourly")
        assert (await leader.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success
        events = await storage.schedule_events("hourly")

    assert recorder.values == [T0 + 2 * HOUR]
    assert sorted((e.logical_time, e.kind) for e in events) == [
        (T0 + HOUR, ScheduleEventKind.skipped),
        (T0 + 2 * HOUR, ScheduleEventKind.regular),
    ]


class StallingStorage(PostgresStorage):
    """Once armed, its next ``active_runs`` waits until ``go_on`` is set: a slow query."""

    armed = False
    entered: anyio.Event | None = None
    go_on: anyio.Event | None = None

    def arm(self) -> None:
        self.armed = True
        self.entered, self.go_on = anyio.Event(), anyio.Event()

    async def active_runs(self) -> list[DagRun]:
        if self.armed:
            self.armed = False
            assert self.entered is not None and self.go_on is not None
            self.entered.set()
            await self.go_on.wait()
        return await super().active_runs()


@pytest.mark.postgres
async def test_a_pause_notified_while_the_leader_reads_the_storage_is_not_lost(
    make: Make, schema: str
) -> None:
    clock = WatchedClock(T0)
    handle = make(poll_interval=NEVER)
    storage = StallingStorage(dsn=POSTGRES_DSN, schema=schema, poll_interval=NEVER)
    notices = 0

    def count() -> None:
        nonlocal notices
        notices += 1

    storage.add_notice_callback("changes", count)
    dags = [hourly_dag(Recorder()), plain_dag("other", Recorder(), width=1)]
    try:
        async with Scheduler(dags, storage=storage, clock=clock) as leader:
            await handle.open()
            # Listening: (re)connecting calls every callback once.
            await eventually(lambda: notices >= 1, "listening")
            await clock.wait_for_sleep(T0 + HOUR, "the leader waiting for its first point")
            seen = notices
            storage.arm()
            run = await operations.trigger(handle, "other", None, T0)
            await eventually(
                lambda: storage.entered and storage.entered.is_set() and notices > seen,
                "the leader reading the storage after the trigger notice",
            )
            # The leader has read the DAGs (not paused) and waits for the runs: pause now.
            await operations.pause(handle, "hourly")
            await eventually(lambda: notices > seen + 1, "the pause notice reaching the leader")
            assert storage.go_on is not None
            storage.go_on.set()

            done = await leader.wait_for_run(run.id, timeout=10)
            assert done.status is DagRunStatus.success
            followed = await clock.sleeps_until(None, timeout=3)
    finally:
        await storage.close()

    assert followed, (
        "the leader never followed a pause whose notice arrived while it was reading the "
        "storage: PostgresStorage.wait_for_external_change listens only while it waits, so "
        "a 'changes' notice that comes during Coordinator._sync_with_storage is lost until "
        "the next poll_interval (here an hour)"
    )


# -- URL options and passwords -----------------------------------------------------------


def test_from_url_sets_the_shared_storage_options_and_keeps_driver_parameters() -> None:
    url = (
        f"postgresql://u:{SECRET}@h/db?schema=x&lease=2.5&max_pool_size=3"
        "&sslmode=disable&statement_timeout=none&poll_interval=0.25"
    )

    storage = from_url(url)

    assert isinstance(storage, PostgresStorage)
    assert storage.dsn == f"postgresql://u:{SECRET}@h/db?sslmode=disable"
    assert storage.schema == "x"
    assert storage.lease == timedelta(seconds=2.5)
    assert storage.poll_interval == timedelta(seconds=0.25)
    assert storage.max_pool_size == 3
    assert storage.statement_timeout is None
    assert SECRET not in repr(storage)
    assert "sslmode=disable" in repr(storage)


@pytest.mark.parametrize(
    "base",
    [f"postgresql://u:{SECRET}@h/db?", f"postgresql://u@h/db?password={SECRET}&"],
    ids=["user-password", "password-parameter"],
)
@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("lease=abc", "lease"),
        ("lease=-1", "lease"),
        ("lease=inf", "lease"),
        ("poll_interval=0", "poll_interval"),
        ("max_pool_size=x", "max_pool_size"),
    ],
)
def test_from_url_refuses_bad_options_naming_them_but_not_the_password(
    base: str, query: str, name: str
) -> None:
    try:
        from_url(base + query)
    except StorageError as exc:
        message = str(exc)
        shown = "".join(traceback.format_exception(exc))
    except Exception as exc:  # anything else is a bug: say which
        pytest.fail(f"from_url raised {type(exc).__name__}: {exc} instead of StorageError")
    else:
        pytest.fail(f"from_url accepted {query}")
    assert name in message
    assert SECRET not in shown, f"the password is in the error: {message}"


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://ppacer:{SECRET}@127.0.0.1:1/test",
        f"postgresql://ppacer@127.0.0.1:1/test?password={SECRET}",
    ],
    ids=["user-password", "password-parameter"],
)
async def test_reconnection_warnings_never_show_the_password(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    storage = PostgresStorage(dsn=dsn, connect_timeout=timedelta(seconds=2))
    standing = Recorder()

    async def stand() -> None:
        async with storage.leadership(on_standby=lambda: standing.add(1)):
            pytest.fail("took the leadership of an unreachable server")

    def warnings(start: str) -> int:
        return sum(
            1 for r in caplog.records if r.levelno >= logging.WARNING and r.msg.startswith(start)
        )

    async with anyio.create_task_group() as tg:
        await tg.start(storage.listen)
        tg.start_soon(stand)
        await standing.wait_for(2)
        await eventually(
            lambda: warnings("cannot listen") >= 2 and warnings("cannot connect") >= 2,
            "two reconnection warnings from each loop",
        )
        tg.cancel_scope.cancel()
    await storage.close()

    assert SECRET not in caplog.text
    assert "127.0.0.1:1" in caplog.text
    assert "***" in caplog.text
