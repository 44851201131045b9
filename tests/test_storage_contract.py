"""The storage contract: every back end (memory, SQLite, PostgreSQL) must pass all of it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import attrs
import pytest

from ppacer_async._enums import (
    AttemptReason,
    DagRunStatus,
    RunTrigger,
    ScheduleEventKind,
    TaskStatus,
)
from ppacer_async._exceptions import DagNotFound
from ppacer_async._structures import (
    Changes,
    DagRun,
    LogRecord,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
)
from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage

pytestmark = pytest.mark.anyio

#: The ``storage_factory`` fixture of conftest.py: each call gives a handle on one database.
StorageFactory = Callable[[], Storage]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def new_run(
    storage: Storage,
    *,
    dag_id: str = "etl",
    logical_time: datetime = T0,
    trigger: RunTrigger = RunTrigger.schedule,
    params: dict[str, Any] | None = None,
    dag_version: int = 1,
    created_at: datetime | None = None,
    event: ScheduleEventKind | None = None,
) -> DagRun:
    run = await storage.create_run(
        dag_id=dag_id,
        logical_time=logical_time,
        trigger=trigger,
        params={} if params is None else params,
        dag_version=dag_version,
        created_at=at(1000) if created_at is None else created_at,
        event=event,
    )
    assert run is not None
    return run


def attempt(
    run_id: int,
    task_id: str,
    number: int = 1,
    status: TaskStatus = TaskStatus.scheduled,
    **fields: Any,
) -> TaskRun:
    return TaskRun(run_id=run_id, task_id=task_id, attempt=number, status=status, **fields)


def log(run_id: int, task_id: str, number: int, message: str, minute: float = 0) -> LogRecord:
    return LogRecord(
        run_id=run_id,
        task_id=task_id,
        attempt=number,
        time=at(minute),
        level="INFO",
        message=message,
    )


def is_utc(moment: datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)


# -- DAG definitions -----------------------------------------------------------------------


async def test_first_sync_of_a_dag_records_version_1(storage: Storage) -> None:
    definition = {"tasks": ["a", "b"], "edges": [["a", "b"]], "schedule": "@daily"}

    version = await storage.sync_dag("etl", "hash-1", definition, at(0))

    assert version == 1
    info = await storage.get_dag("etl")
    assert info is not None
    assert (info.dag_id, info.version, info.definition_hash) == ("etl", 1, "hash-1")
    assert info.definition == definition
    assert info.paused is False
    assert info.created_at == at(0)
    assert is_utc(info.created_at)


async def test_sync_of_an_unchanged_definition_writes_nothing(storage: Storage) -> None:
    await storage.sync_dag("etl", "hash-1", {"v": 1}, at(0))

    version = await storage.sync_dag("etl", "hash-1", {"v": 1}, at(5))

    assert version == 1
    info = await storage.get_dag("etl")
    assert info is not None
    assert (info.version, info.created_at) == (1, at(0))


async def test_sync_of_a_changed_definition_adds_a_version(storage: Storage) -> None:
    await storage.sync_dag("etl", "hash-1", {"v": 1}, at(0))

    assert await storage.sync_dag("etl", "hash-2", {"v": 2}, at(5)) == 2
    info = await storage.get_dag("etl")
    assert info is not None
    assert (info.version, info.definition_hash, info.definition) == (2, "hash-2", {"v": 2})
    assert info.created_at == at(5)
    # Only the latest version counts: going back to an old definition is a new version.
    assert await storage.sync_dag("etl", "hash-1", {"v": 1}, at(10)) == 3


async def test_get_dag_of_an_unknown_dag_is_none(storage: Storage) -> None:
    assert await storage.get_dag("nope") is None


async def test_list_dags_gives_the_latest_version_of_each_sorted_by_id(storage: Storage) -> None:
    assert await storage.list_dags() == []
    await storage.sync_dag("zeta", "z1", {"n": "z"}, at(0))
    await storage.sync_dag("alpha", "a1", {"n": "a1"}, at(1))
    await storage.sync_dag("alpha", "a2", {"n": "a2"}, at(2))
    await storage.sync_dag("Mid", "m1", {}, at(3))

    dags = await storage.list_dags()

    assert [(d.dag_id, d.version, d.definition_hash) for d in dags] == [
        ("Mid", 1, "m1"),
        ("alpha", 2, "a2"),
        ("zeta", 1, "z1"),
    ]
    assert dags[1].definition == {"n": "a2"}


async def test_set_paused_pauses_and_unpauses_and_survives_new_versions(
    storage: Storage,
) -> None:
    await storage.sync_dag("etl", "hash-1", {}, at(0))

    await storage.set_paused("etl", True)
    info = await storage.get_dag("etl")
    assert info is not None
    assert info.paused is True
    assert [d.paused for d in await storage.list_dags()] == [True]

    await storage.sync_dag("etl", "hash-2", {}, at(1))
    info = await storage.get_dag("etl")
    assert info is not None
    assert (info.version, info.paused) == (2, True)

    await storage.set_paused("etl", False)
    info = await storage.get_dag("etl")
    assert info is not None
    assert info.paused is False


async def test_set_paused_of_an_unknown_dag_raises_dag_not_found(storage: Storage) -> None:
    with pytest.raises(DagNotFound, match="nope"):
        await storage.set_paused("nope", True)
    with pytest.raises(LookupError):
        await storage.set_paused("nope", False)


async def test_definitions_of_several_json_shapes_round_trip(storage: Storage) -> None:
    definition: dict[str, Any] = {
        "tasks": [{"id": "a", "retries": 2, "timeout": 60.5, "priority": -1}],
        "tags": [],
        "params": {"nested": {"deep": [1, "two", None, True]}},
        "description": "zażółć gęślą jaźń 🚀",
    }

    await storage.sync_dag("etl", "h", definition, at(0))

    info = await storage.get_dag("etl")
    assert info is not None
    assert info.definition == definition


# -- creating runs -------------------------------------------------------------------------


async def test_create_run_inserts_a_queued_run(storage: Storage) -> None:
    run = await storage.create_run(
        dag_id="etl",
        logical_time=at(60),
        trigger=RunTrigger.manual,
        params={"day": "2026-01-01", "n": [1, 2]},
        dag_version=3,
        created_at=at(61),
    )

    assert run is not None
    assert run.dag_id == "etl"
    assert run.logical_time == at(60)
    assert run.status == DagRunStatus.queued
    assert run.trigger == RunTrigger.manual
    assert run.params == {"day": "2026-01-01", "n": [1, 2]}
    assert run.dag_version == 3
    assert run.created_at == at(61)
    assert (run.started_at, run.finished_at) == (None, None)
    assert await storage.get_run(run.id) == run


async def test_run_ids_increase_across_dags(storage: Storage) -> None:
    ids = [
        (await new_run(storage, dag_id=dag_id, logical_time=at(i))).id
        for i, dag_id in enumerate(["a", "b", "a", "c", "b"])
    ]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (RunTrigger.schedule, RunTrigger.schedule),
        (RunTrigger.schedule, RunTrigger.catchup),
        (RunTrigger.catchup, RunTrigger.backfill),
        (RunTrigger.backfill, RunTrigger.schedule),
    ],
)
async def test_a_second_scheduled_run_for_one_point_is_refused(
    storage: Storage, first: RunTrigger, second: RunTrigger
) -> None:
    original = await new_run(storage, trigger=first, event=ScheduleEventKind.regular)
    before = await storage.counts()

    duplicate = await storage.create_run(
        dag_id="etl",
        logical_time=T0,
        trigger=second,
        params={},
        dag_version=1,
        created_at=at(1),
        event=ScheduleEventKind.caught_up,
    )

    assert duplicate is None
    assert await storage.counts() == before
    assert await storage.list_runs() == [original]
    assert [e.run_id for e in await storage.schedule_events("etl")] == [original.id]


async def test_the_same_point_in_time_can_be_scheduled_once_per_dag(storage: Storage) -> None:
    first = await new_run(storage, dag_id="a")
    second = await new_run(storage, dag_id="b")

    assert first.id != second.id


async def test_manual_runs_for_one_point_are_never_refused(storage: Storage) -> None:
    scheduled = await new_run(storage, trigger=RunTrigger.schedule)
    manual_1 = await new_run(storage, trigger=RunTrigger.manual, event=ScheduleEventKind.manual)
    manual_2 = await new_run(storage, trigger=RunTrigger.manual, event=ScheduleEventKind.manual)
    restart = await new_run(storage, trigger=RunTrigger.restart)

    assert len({scheduled.id, manual_1.id, manual_2.id, restart.id}) == 4
    assert (await storage.counts()).dag_runs == 4


async def test_a_scheduled_run_still_blocks_its_point_after_a_restart(storage: Storage) -> None:
    run = await new_run(storage, trigger=RunTrigger.schedule)
    await storage.commit(
        Changes(dag_runs=[attrs.evolve(run, trigger=RunTrigger.restart)]),
    )

    again = await storage.create_run(
        dag_id="etl",
        logical_time=T0,
        trigger=RunTrigger.schedule,
        params={},
        dag_version=1,
        created_at=at(1),
    )

    assert again is None


async def test_concurrent_creation_of_one_scheduled_run_creates_it_once(
    storage: Storage,
) -> None:
    created: list[DagRun | None] = []

    async def create() -> None:
        created.append(
            await storage.create_run(
                dag_id="etl",
                logical_time=T0,
                trigger=RunTrigger.schedule,
                params={},
                dag_version=1,
                created_at=at(1),
                event=ScheduleEventKind.regular,
            )
        )

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(create)

    assert len([run for run in created if run is not None]) == 1
    assert len(await storage.schedule_events("etl")) == 1


async def test_create_run_records_its_schedule_event(storage: Storage) -> None:
    run = await new_run(
        storage, logical_time=at(60), created_at=at(61), event=ScheduleEventKind.regular
    )

    assert await storage.schedule_events("etl") == [
        ScheduleEvent(
            dag_id="etl",
            logical_time=at(60),
            kind=ScheduleEventKind.regular,
            created_at=at(61),
            run_id=run.id,
        )
    ]


async def test_create_run_without_an_event_records_none(storage: Storage) -> None:
    await new_run(storage, trigger=RunTrigger.manual)

    assert await storage.schedule_events("etl") == []
    assert (await storage.counts()).schedule_events == 0


async def test_params_of_several_json_shapes_round_trip(storage: Storage) -> None:
    params: dict[str, Any] = {
        "s": "tekst ąę",
        "i": -7,
        "f": 2.5,
        "b": False,
        "n": None,
        "l": [1, [2, [3]]],
        "d": {"x": {}},
    }

    run = await new_run(storage, params=params)

    assert run.params == params
    stored = await storage.get_run(run.id)
    assert stored is not None
    assert stored.params == params


# -- schedule events -----------------------------------------------------------------------


async def test_last_schedule_point_is_none_without_events(storage: Storage) -> None:
    assert await storage.last_schedule_point("etl") is None


async def test_last_schedule_point_counts_regular_caught_up_and_skipped(
    storage: Storage,
) -> None:
    await new_run(storage, logical_time=at(10), event=ScheduleEventKind.regular)
    assert await storage.last_schedule_point("etl") == at(10)

    await new_run(
        storage, logical_time=at(20), trigger=RunTrigger.catchup, event=ScheduleEventKind.caught_up
    )
    assert await storage.last_schedule_point("etl") == at(20)

    await storage.record_schedule_event(
        ScheduleEvent(
            dag_id="etl",
            logical_time=at(30),
            kind=ScheduleEventKind.skipped,
            created_at=at(31),
        )
    )
    assert await storage.last_schedule_point("etl") == at(30)
    assert await storage.last_schedule_point("other") is None


async def test_last_schedule_point_ignores_manual_and_backfill(storage: Storage) -> None:
    await new_run(storage, logical_time=at(10), event=ScheduleEventKind.regular)
    await new_run(
        storage, logical_time=at(50), trigger=RunTrigger.manual, event=ScheduleEventKind.manual
    )
    await new_run(
        storage,
        logical_time=at(60),
        trigger=RunTrigger.backfill,
        event=ScheduleEventKind.backfill,
    )

    assert await storage.last_schedule_point("etl") == at(10)


async def test_last_schedule_point_is_the_latest_time_not_the_latest_written(
    storage: Storage,
) -> None:
    await new_run(storage, logical_time=at(30), event=ScheduleEventKind.regular)
    await new_run(
        storage, logical_time=at(10), trigger=RunTrigger.catchup, event=ScheduleEventKind.caught_up
    )

    assert await storage.last_schedule_point("etl") == at(30)


async def test_schedule_events_are_newest_logical_time_first_per_dag(storage: Storage) -> None:
    for minute in (20, 0, 40, 10):
        await storage.record_schedule_event(
            ScheduleEvent(
                dag_id="etl",
                logical_time=at(minute),
                kind=ScheduleEventKind.skipped,
                created_at=at(100 + minute),
            )
        )
    await storage.record_schedule_event(
        ScheduleEvent(
            dag_id="other", logical_time=at(5), kind=ScheduleEventKind.skipped, created_at=at(5)
        )
    )

    events = await storage.schedule_events("etl")

    assert [e.logical_time for e in events] == [at(40), at(20), at(10), at(0)]
    assert [e.created_at for e in events] == [at(140), at(120), at(110), at(100)]
    assert all(e.dag_id == "etl" and e.run_id is None for e in events)
    assert [e.logical_time for e in await storage.schedule_events("etl", limit=2)] == [
        at(40),
        at(20),
    ]
    assert len(await storage.schedule_events("other")) == 1
    assert await storage.schedule_events("none") == []


async def test_record_schedule_event_keeps_a_run_id(storage: Storage) -> None:
    run = await new_run(storage, trigger=RunTrigger.manual)
    event = ScheduleEvent(
        dag_id="etl",
        logical_time=T0,
        kind=ScheduleEventKind.manual,
        created_at=at(1),
        run_id=run.id,
    )

    await storage.record_schedule_event(event)

    assert await storage.schedule_events("etl") == [event]


async def test_schedule_events_recorded_together_keep_their_order(storage: Storage) -> None:
    events = [
        ScheduleEvent(
            dag_id="etl",
            logical_time=T0 + timedelta(minutes=k),
            kind=ScheduleEventKind.skipped,
            created_at=at(1),
        )
        for k in range(3)
    ]

    await storage.record_schedule_events(events)
    await storage.record_schedule_events([])

    assert await storage.schedule_events("etl") == list(reversed(events))
    assert await storage.last_schedule_point("etl") == T0 + timedelta(minutes=2)


# -- commits -------------------------------------------------------------------------------


async def test_commit_inserts_then_updates_a_task_run_by_key(storage: Storage) -> None:
    run = await new_run(storage)
    scheduled = attempt(run.id, "extract", scheduled_at=at(1))
    await storage.commit(Changes(task_runs=[scheduled]))
    assert await storage.task_runs(run.id) == [scheduled]

    running = attrs.evolve(scheduled, status=TaskStatus.running, started_at=at(2))
    await storage.commit(Changes(task_runs=[running]))
    assert await storage.task_runs(run.id) == [running]

    done = attrs.evolve(running, status=TaskStatus.success, finished_at=at(3), result={"rows": 10})
    await storage.commit(Changes(task_runs=[done]))
    assert await storage.task_runs(run.id) == [done]
    assert (await storage.counts()).task_runs == 1


async def test_each_attempt_is_its_own_task_run(storage: Storage) -> None:
    run = await new_run(storage)
    first = attempt(
        run.id,
        "load",
        1,
        TaskStatus.up_for_retry,
        started_at=at(1),
        finished_at=at(2),
        error="Traceback (most recent call last):\n  ...\nValueError: boom",
    )
    second = attempt(run.id, "load", 2, TaskStatus.running, reason=AttemptReason.retry)
    await storage.commit(Changes(task_runs=[first, second]))

    third = attempt(run.id, "load", 3, TaskStatus.scheduled, reason=AttemptReason.interrupted)
    second_done = attrs.evolve(second, status=TaskStatus.interrupted, finished_at=at(3))
    await storage.commit(Changes(task_runs=[second_done, third]))

    assert await storage.task_runs(run.id) == [first, second_done, third]


async def test_task_runs_are_ordered_by_task_id_then_attempt(storage: Storage) -> None:
    run = await new_run(storage)
    other = await new_run(storage, logical_time=at(1))
    rows = [
        attempt(run.id, "b", 2),
        attempt(run.id, "a", 1),
        attempt(run.id, "b", 1),
        attempt(run.id, "B", 1),
        attempt(run.id, "a", 10),
        attempt(run.id, "a", 2),
        attempt(other.id, "a", 1),
    ]

    await storage.commit(Changes(task_runs=rows))

    assert [(tr.task_id, tr.attempt) for tr in await storage.task_runs(run.id)] == [
        ("B", 1),
        ("a", 1),
        ("a", 2),
        ("a", 10),
        ("b", 1),
        ("b", 2),
    ]
    assert len(await storage.task_runs(other.id)) == 1
    assert await storage.task_runs(other.id + 1000) == []


async def test_the_last_version_of_a_key_in_one_commit_wins(storage: Storage) -> None:
    run = await new_run(storage)
    scheduled = attempt(run.id, "t")
    running = attrs.evolve(scheduled, status=TaskStatus.running, started_at=at(1))

    await storage.commit(Changes(task_runs=[scheduled, running]))

    assert await storage.task_runs(run.id) == [running]


async def test_a_large_commit_keeps_every_row_and_the_last_version_of_each_key(
    storage: Storage,
) -> None:
    # More rows than a storage may write in one statement, with later versions of some
    # keys both within and across such groups, and start times shared with the end of
    # the row before (attempts run back to back).
    run = await new_run(storage)
    times = [at(m) for m in range(1_101)]
    rows: list[TaskRun] = []
    for k in range(1_100):
        rows.append(
            attempt(
                run.id,
                f"p[{k}]",
                status=TaskStatus.success,
                started_at=times[k],
                finished_at=times[k + 1],
                result=k if k % 3 else {"k": k},
            )
        )
    redone = [
        attrs.evolve(rows[k], status=TaskStatus.failed, error=f"redone {k}")
        for k in (0, 99, 100, 201, 511, 512, 1_099)
    ]
    await storage.commit(
        Changes(
            task_runs=rows[:150]
            + redone[:2]
            + rows[150:700]
            + redone[2:5]
            + rows[700:]
            + redone[5:]
        )
    )

    stored = {tr.task_id: tr for tr in await storage.task_runs(run.id)}
    assert len(stored) == 1_100
    expected = {tr.task_id: tr for tr in rows + redone}
    assert stored == expected
    assert stored["p[7]"].started_at == stored["p[6]"].finished_at == at(7)
    assert stored["p[7]"].result == 7 and stored["p[6]"].result == {"k": 6}


async def test_long_runs_of_alike_rows_keep_every_column_of_each_row(storage: Storage) -> None:
    # Rows that share their run, attempt, status, reason, scheduled time and error (a
    # batch made ready together that ended alike) may be written with those once: a
    # long run of them among other rows, or a shorter one that is a whole commit. Each
    # run of rows here differs from the one before in one of them; the second commit
    # repeats keys of the first, later versions.
    first = await new_run(storage)
    second = await new_run(storage, logical_time=at(1))
    n = 520
    waiting = [attempt(first.id, f"w[{k}]", scheduled_at=at(0)) for k in range(n)]
    batches = [
        [
            attempt(
                second.id,
                f"a[{k}]",
                2,
                TaskStatus.failed,
                reason=AttemptReason.retry,
                scheduled_at=at(5),
                started_at=at(6 + k),
                finished_at=at(7 + k),
                error="RuntimeError: down",
            )
            for k in range(n)
        ]
    ]
    changes: list[tuple[str, dict[str, Any]]] = [
        ("b", {"error": "RuntimeError: other"}),
        ("c", {"reason": AttemptReason.interrupted}),
        ("d", {"scheduled_at": at(4)}),
        ("e", {"attempt": 3}),
        ("f", {"status": TaskStatus.up_for_retry}),
        ("g", {"run_id": first.id}),
    ]
    for name, change in changes:
        batches.append(
            [attrs.evolve(tr, task_id=f"{name}[{k}]", **change) for k, tr in enumerate(batches[-1])]
        )
    alone = attempt(first.id, "alone", 3, TaskStatus.up_for_retry, error="once")
    done = [
        attrs.evolve(tr, status=TaskStatus.success, started_at=at(k), finished_at=at(k + 1))
        for k, tr in enumerate(waiting[:40])
    ]
    rows = [*waiting, alone, *itertools.chain.from_iterable(batches)]
    await storage.commit(Changes(task_runs=rows))
    await storage.commit(Changes(task_runs=done))

    latest = {(tr.run_id, tr.task_id, tr.attempt): tr for tr in rows + done}
    for run in (first, second):
        expected = [tr for key, tr in sorted(latest.items()) if key[0] == run.id]
        assert await storage.task_runs(run.id) == expected


async def test_commit_updates_run_status_trigger_and_times(storage: Storage) -> None:
    run = await new_run(storage, params={"p": 1}, dag_version=4)
    other = await new_run(storage, logical_time=at(1))

    running = attrs.evolve(run, status=DagRunStatus.running, started_at=at(2))
    await storage.commit(Changes(dag_runs=[running]))
    assert await storage.get_run(run.id) == running

    restarted = attrs.evolve(
        running,
        status=DagRunStatus.queued,
        trigger=RunTrigger.restart,
        started_at=None,
        finished_at=None,
    )
    await storage.commit(Changes(dag_runs=[restarted]))
    assert await storage.get_run(run.id) == restarted

    finished = attrs.evolve(
        restarted, status=DagRunStatus.success, started_at=at(3), finished_at=at(4)
    )
    await storage.commit(Changes(dag_runs=[finished]))
    assert await storage.get_run(run.id) == finished
    assert await storage.get_run(other.id) == other


async def test_commit_writes_task_runs_runs_and_logs_together(storage: Storage) -> None:
    run = await new_run(storage)
    changes = Changes(
        task_runs=[attempt(run.id, "a", status=TaskStatus.success, result=1)],
        dag_runs=[attrs.evolve(run, status=DagRunStatus.success, finished_at=at(5))],
        logs=[log(run.id, "a", 1, "done")],
    )

    await storage.commit(changes)

    assert await storage.task_runs(run.id) == changes.task_runs
    assert await storage.get_run(run.id) == changes.dag_runs[0]
    assert await storage.logs(run.id) == changes.logs


async def test_an_empty_commit_changes_nothing(storage: Storage) -> None:
    run = await new_run(storage)
    before = await storage.counts()

    await storage.commit(Changes())

    assert await storage.counts() == before
    assert await storage.get_run(run.id) == run


@pytest.mark.parametrize(
    "result",
    [
        None,
        {"rows": 10, "nested": {"list": [1, 2.5, "x", None, True]}},
        [1, "two", {"three": 3}],
        "plain text with ąę and 🚀",
        "",
        0,
        -12345678901234,
        3.25,
        True,
        False,
        [],
        {},
    ],
    ids=repr,
)
async def test_task_results_of_several_json_shapes_round_trip(
    storage: Storage, result: Any
) -> None:
    run = await new_run(storage)

    await storage.commit(
        Changes(task_runs=[attempt(run.id, "t", status=TaskStatus.success, result=result)])
    )

    (stored,) = await storage.task_runs(run.id)
    assert stored.result == result
    assert type(stored.result) is type(result)


# -- logs ----------------------------------------------------------------------------------


async def test_logs_come_back_in_the_order_written(storage: Storage) -> None:
    run = await new_run(storage)
    other = await new_run(storage, logical_time=at(1))
    records = [
        log(run.id, "a", 1, "a1 first", 5),
        log(run.id, "b", 1, "b1", 1),
        log(run.id, "a", 1, "a1 second", 2),
        log(run.id, "a", 2, "a2", 3),
        log(other.id, "a", 1, "other run", 0),
    ]
    await storage.commit(Changes(logs=records[:2]))
    await storage.commit(Changes(logs=records[2:]))

    assert await storage.logs(run.id) == records[:4]
    assert await storage.logs(other.id) == records[4:]
    assert await storage.logs(other.id + 1000) == []


async def test_logs_filter_by_task_and_attempt_and_skip_an_offset(storage: Storage) -> None:
    run = await new_run(storage)
    records = [
        log(run.id, "a", 1, "a1 first"),
        log(run.id, "b", 1, "b1"),
        log(run.id, "a", 1, "a1 second"),
        log(run.id, "a", 2, "a2"),
    ]
    await storage.commit(Changes(logs=records))

    def messages(found: list[LogRecord]) -> list[str]:
        return [r.message for r in found]

    assert messages(await storage.logs(run.id, task_id="a")) == ["a1 first", "a1 second", "a2"]
    assert messages(await storage.logs(run.id, attempt=1)) == ["a1 first", "b1", "a1 second"]
    assert messages(await storage.logs(run.id, task_id="a", attempt=2)) == ["a2"]
    assert messages(await storage.logs(run.id, task_id="c")) == []
    assert messages(await storage.logs(run.id, offset=2)) == ["a1 second", "a2"]
    assert messages(await storage.logs(run.id, task_id="a", offset=1)) == ["a1 second", "a2"]
    assert messages(await storage.logs(run.id, offset=10)) == []
    assert messages(await storage.logs(run.id, limit=2)) == ["a1 first", "b1"]
    assert messages(await storage.logs(run.id, offset=1, limit=2)) == ["b1", "a1 second"]
    assert messages(await storage.logs(run.id, task_id="a", offset=2, limit=5)) == ["a2"]


async def test_log_fields_round_trip(storage: Storage) -> None:
    run = await new_run(storage)
    record = LogRecord(
        run_id=run.id,
        task_id="t",
        attempt=3,
        time=datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        level="WARNING",
        message="multi\nline ąę 'quoted' \"double\"; DROP TABLE task_logs; --",
    )

    await storage.commit(Changes(logs=[record]))

    assert await storage.logs(run.id) == [record]


# -- reading runs --------------------------------------------------------------------------


async def test_get_run_of_an_unknown_id_is_none(storage: Storage) -> None:
    assert await storage.get_run(12345) is None


async def test_list_runs_is_newest_first_with_filters_and_limit(storage: Storage) -> None:
    a1 = await new_run(storage, dag_id="a", logical_time=at(0))
    b1 = await new_run(storage, dag_id="b", logical_time=at(0))
    a2 = await new_run(storage, dag_id="a", logical_time=at(1))
    a3 = await new_run(storage, dag_id="a", logical_time=at(2))
    a2 = attrs.evolve(a2, status=DagRunStatus.failed, finished_at=at(5))
    b1 = attrs.evolve(b1, status=DagRunStatus.failed, finished_at=at(6))
    await storage.commit(Changes(dag_runs=[a2, b1]))

    assert await storage.list_runs() == [a3, a2, b1, a1]
    assert await storage.list_runs(dag_id="a") == [a3, a2, a1]
    assert await storage.list_runs(status=DagRunStatus.failed) == [a2, b1]
    assert await storage.list_runs(dag_id="a", status=DagRunStatus.failed) == [a2]
    assert await storage.list_runs(dag_id="a", status=DagRunStatus.running) == []
    assert await storage.list_runs(limit=2) == [a3, a2]
    assert await storage.list_runs(dag_id="a", limit=1) == [a3]
    assert await storage.list_runs(dag_id="nope") == []


async def test_list_runs_pages_with_a_before_cursor_and_filters_by_since(
    storage: Storage,
) -> None:
    runs = [
        await new_run(storage, dag_id=f"d{i % 2}", logical_time=at(i), trigger=RunTrigger.manual)
        for i in range(7)
    ]
    newest_first = list(reversed(runs))

    first = await storage.list_runs(limit=3)
    second = await storage.list_runs(before=first[-1].id, limit=3)
    third = await storage.list_runs(before=second[-1].id, limit=3)

    assert [*first, *second, *third] == newest_first
    assert await storage.list_runs(before=runs[0].id) == []
    assert await storage.list_runs(dag_id="d0", before=runs[4].id) == [runs[2], runs[0]]
    assert await storage.list_runs(since=at(5)) == [runs[6], runs[5]]
    assert await storage.list_runs(since=at(5).astimezone(timezone(timedelta(hours=2)))) == [
        runs[6],
        runs[5],
    ]
    assert await storage.list_runs(dag_id="d1", since=at(2), before=runs[5].id) == [runs[3]]
    failed = attrs.evolve(runs[2], status=DagRunStatus.failed, finished_at=at(9))
    await storage.commit(Changes(dag_runs=[failed]))
    assert await storage.list_runs(status=DagRunStatus.failed, before=runs[3].id) == [failed]
    assert await storage.list_runs(status=DagRunStatus.failed, before=runs[2].id) == []


async def test_list_runs_returns_50_by_default(storage: Storage) -> None:
    runs = [await new_run(storage, logical_time=at(i)) for i in range(55)]

    found = await storage.list_runs()

    assert [r.id for r in found] == [r.id for r in reversed(runs)][:50]


async def test_active_runs_are_queued_or_running_oldest_first(storage: Storage) -> None:
    runs = [await new_run(storage, dag_id=f"d{i % 2}", logical_time=at(i)) for i in range(5)]
    updated = [
        attrs.evolve(runs[0], status=DagRunStatus.success, finished_at=at(9)),
        attrs.evolve(runs[1], status=DagRunStatus.running, started_at=at(8)),
        attrs.evolve(runs[3], status=DagRunStatus.failed, finished_at=at(9)),
    ]
    await storage.commit(Changes(dag_runs=updated))

    assert await storage.active_runs() == [updated[1], runs[2], runs[4]]


async def test_counts_count_every_table(storage: Storage) -> None:
    empty = await storage.counts()
    assert empty.schema_version >= 1
    assert (empty.dags, empty.dag_runs, empty.task_runs, empty.task_logs) == (0, 0, 0, 0)
    assert empty.schedule_events == 0

    await storage.sync_dag("a", "h1", {}, at(0))
    await storage.sync_dag("a", "h2", {}, at(0))
    await storage.sync_dag("b", "h1", {}, at(0))
    run = await new_run(storage, dag_id="a", event=ScheduleEventKind.regular)
    await new_run(storage, dag_id="a", trigger=RunTrigger.manual)
    await storage.record_schedule_event(
        ScheduleEvent(
            dag_id="a", logical_time=at(9), kind=ScheduleEventKind.skipped, created_at=at(9)
        )
    )
    await storage.commit(
        Changes(
            task_runs=[attempt(run.id, "x"), attempt(run.id, "y"), attempt(run.id, "y", 2)],
            logs=[log(run.id, "x", 1, "one"), log(run.id, "x", 1, "two")],
        )
    )

    assert await storage.counts() == StorageCounts(
        schema_version=empty.schema_version,
        dags=2,
        dag_runs=2,
        task_runs=3,
        task_logs=2,
        schedule_events=2,
    )


# -- time ----------------------------------------------------------------------------------


WARSAW = datetime(2026, 7, 1, 14, 30, tzinfo=ZoneInfo("Europe/Warsaw"))
KOLKATA = datetime(2026, 7, 1, 18, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
NEW_YORK = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/New_York"))


def assert_same_instants_in_utc(pairs: list[tuple[datetime | None, datetime]]) -> None:
    for got, expected in pairs:
        assert got == expected
    for got, _ in pairs:
        assert is_utc(got), got


async def test_times_in_any_zone_come_back_as_the_same_instant_in_utc(storage: Storage) -> None:
    await storage.sync_dag("etl", "h", {}, NEW_YORK)
    run = await new_run(
        storage, logical_time=WARSAW, created_at=KOLKATA, event=ScheduleEventKind.regular
    )
    await storage.record_schedule_event(
        ScheduleEvent(
            dag_id="etl", logical_time=NEW_YORK, kind=ScheduleEventKind.skipped, created_at=WARSAW
        )
    )

    info = await storage.get_dag("etl")
    stored = await storage.get_run(run.id)
    created_event, skipped_event = await storage.schedule_events("etl")
    assert info is not None
    assert stored is not None
    assert_same_instants_in_utc(
        [
            (info.created_at, NEW_YORK),
            (run.logical_time, WARSAW),
            (run.created_at, KOLKATA),
            (stored.logical_time, WARSAW),
            (stored.created_at, KOLKATA),
            (created_event.logical_time, WARSAW),
            (created_event.created_at, KOLKATA),
            (skipped_event.logical_time, NEW_YORK),
            (skipped_event.created_at, WARSAW),
            (await storage.last_schedule_point("etl"), WARSAW),
        ]
    )


async def test_committed_times_in_any_zone_come_back_as_the_same_instant_in_utc(
    storage: Storage,
) -> None:
    run = await new_run(storage)
    await storage.commit(
        Changes(
            dag_runs=[attrs.evolve(run, started_at=KOLKATA, finished_at=NEW_YORK)],
            task_runs=[
                attempt(run.id, "t", scheduled_at=WARSAW, started_at=KOLKATA, finished_at=NEW_YORK)
            ],
            logs=[
                LogRecord(
                    run_id=run.id, task_id="t", attempt=1, time=WARSAW, level="INFO", message="m"
                )
            ],
        )
    )

    stored = await storage.get_run(run.id)
    (task_run,) = await storage.task_runs(run.id)
    (record,) = await storage.logs(run.id)
    assert stored is not None
    assert_same_instants_in_utc(
        [
            (stored.started_at, KOLKATA),
            (stored.finished_at, NEW_YORK),
            (task_run.scheduled_at, WARSAW),
            (task_run.started_at, KOLKATA),
            (task_run.finished_at, NEW_YORK),
            (record.time, WARSAW),
        ]
    )


async def test_times_keep_microseconds(storage: Storage) -> None:
    moments = [at(0) + timedelta(microseconds=us) for us in (1, 999_999, 123_457, 500_000)]
    runs = [
        await new_run(
            storage, logical_time=moment, created_at=moment, event=ScheduleEventKind.regular
        )
        for moment in moments
    ]
    await storage.commit(
        Changes(
            task_runs=[
                attempt(run.id, "t", scheduled_at=m, started_at=m, finished_at=m)
                for run, m in zip(runs, moments, strict=True)
            ],
            logs=[log(run.id, "t", 1, "x") for run in runs],
        )
    )

    for run, moment in zip(runs, moments, strict=True):
        stored = await storage.get_run(run.id)
        assert stored is not None
        assert (stored.logical_time, stored.created_at) == (moment, moment)
        (task_run,) = await storage.task_runs(run.id)
        assert (task_run.scheduled_at, task_run.started_at, task_run.finished_at) == (
            moment,
            moment,
            moment,
        )
    assert [e.logical_time for e in await storage.schedule_events("etl")] == sorted(
        moments, reverse=True
    )
    assert await storage.last_schedule_point("etl") == max(moments)


# -- many handles, persistence -------------------------------------------------------------


async def test_a_second_handle_sees_committed_data_and_it_persists(
    storage_factory: StorageFactory,
) -> None:
    first = storage_factory()
    await first.open()
    try:
        second = storage_factory()
        await second.open()
        try:
            await first.sync_dag("etl", "h", {"k": "v"}, at(0))
            run = await new_run(first, event=ScheduleEventKind.regular)
            finished = attrs.evolve(run, status=DagRunStatus.success, finished_at=at(3))
            task_run = attempt(run.id, "t", status=TaskStatus.success, result={"ok": True})
            record = log(run.id, "t", 1, "hello")
            await first.commit(Changes(task_runs=[task_run], dag_runs=[finished], logs=[record]))

            expected = await snapshot(first)
            assert await snapshot(second) == expected
            # The second handle writes, the first one reads.
            await second.set_paused("etl", True)
            info = await first.get_dag("etl")
            assert info is not None
            assert info.paused is True
            expected = await snapshot(first)
        finally:
            await second.close()
    finally:
        await first.close()

    if isinstance(first, MemoryStorage):
        return  # nothing outlives a memory storage
    async with storage_factory() as reopened:
        assert await snapshot(reopened) == expected


async def snapshot(storage: Storage) -> dict[str, Any]:
    runs = await storage.list_runs()
    return {
        "dags": await storage.list_dags(),
        "runs": runs,
        "task_runs": [await storage.task_runs(run.id) for run in runs],
        "logs": [await storage.logs(run.id) for run in runs],
        "events": await storage.schedule_events("etl"),
        "last_point": await storage.last_schedule_point("etl"),
        "counts": await storage.counts(),
    }


async def test_close_can_be_called_twice(storage_factory: StorageFactory) -> None:
    store = storage_factory()
    await store.open()

    await store.close()
    await store.close()
