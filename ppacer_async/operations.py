"""What every interface to ppacer-async does: list, show, trigger, restart, cancel, pause,
backfill, read logs. The command line formats what these return; a web app serves it
as JSON; the ``Scheduler`` methods share the writing ones.

Each function is a plain coroutine over an open :class:`~ppacer_async.abc.Storage` and
returns records. None needs a serving scheduler: a scheduler serving the same storage,
in this process or another, picks the effect up (within about a second from another
process). Times passed in are tz-aware; "now" is always a parameter, so callers decide
the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
import attrs

from ._enums import DagRunStatus, RunTrigger, ScheduleEventKind, TaskStatus
from ._exceptions import (
    DagNotFound,
    InvalidOperation,
    PpacerError,
    RunNotFound,
    TaskNotFound,
)
from ._params import params_problem
from ._structures import (
    Changes,
    DagDetail,
    DagInfo,
    DagRun,
    DagSummary,
    DbInfo,
    LogPage,
    NewRun,
    PoolUsage,
    PruneCounts,
    RunDetail,
    ScheduleEvent,
    TaskDefinition,
    TaskDetail,
    TaskRun,
    WorkerInfo,
    instance_id,
)
from ._time import to_utc
from .abc import Schedule, Storage
from .schedules import schedule_from_spec, schedule_points

__all__ = [
    "MAX_BACKFILL_RUNS",
    "DagDetail",
    "DagSummary",
    "DbInfo",
    "LogPage",
    "PruneCounts",
    "RunDetail",
    "TaskDefinition",
    "TaskDetail",
    "backfill",
    "cancel",
    "db_info",
    "get_dag",
    "get_run",
    "get_run_detail",
    "list_dags",
    "list_runs",
    "logs",
    "manual_run",
    "next_due",
    "pause",
    "prune",
    "queue_manual_run",
    "recorded_dag",
    "restart",
    "schedule_events",
    "schema_version_on_disk",
    "serving",
    "stored_schedule",
    "trigger",
    "unpause",
    "waiting_state",
]

#: Backfilling more points than this at once is refused (split the range).
MAX_BACKFILL_RUNS = 10_000
#: A refused backfill range's points are counted up to this many.
COUNT_POINTS_UP_TO = 100_000


# -- DAGs --------------------------------------------------------------------------------


async def recorded_dag(storage: Storage, dag_id: str) -> DagInfo:
    """:raises DagNotFound: no scheduler ever served a DAG with this id on ``storage``."""
    info = await storage.get_dag(dag_id)
    if info is None:
        known = ", ".join(d.dag_id for d in await storage.list_dags()) or "none"
        raise DagNotFound(
            f"no DAG {dag_id!r} in this storage (known: {known}); a DAG is recorded when "
            "a scheduler serving it starts"
        )
    return info


def stored_schedule(info: DagInfo) -> Schedule:
    """Rebuild a recorded DAG's schedule. :raises InvalidOperation: it cannot be."""
    spec = info.definition.get("schedule_spec")
    if spec is None:
        what = info.definition.get("schedule")
        raise InvalidOperation(
            f"DAG {info.dag_id!r} has "
            + ("no schedule" if what is None else f"a custom schedule ({what})")
            + "; backfill needs an Interval or a Cron schedule"
        )
    return schedule_from_spec(spec)


def next_due(info: DagInfo, last_point: datetime | None, now: datetime) -> datetime | None:
    """When the schedule of a recorded DAG is next due, given its last schedule point;
    ``None`` when paused, without a schedule, or not computable from storage alone."""
    if info.paused or info.definition.get("schedule_spec") is None:
        return None
    try:
        schedule = stored_schedule(info)
        after = now if last_point is None else max(last_point, now)
        start = info.definition.get("start")
        if start is not None:
            first = datetime.fromisoformat(start)
            if first > after:
                after = first - timedelta(microseconds=1)
        return schedule.next(after)
    except (PpacerError, ValueError):
        return None


async def _summary(
    storage: Storage, info: DagInfo, now: datetime, workers: list[WorkerInfo]
) -> DagSummary:
    newest = await storage.list_runs(dag_id=info.dag_id, limit=1)
    due = next_due(info, await storage.last_schedule_point(info.dag_id), now)
    definition = info.definition
    return DagSummary(
        dag_id=info.dag_id,
        schedule=definition.get("schedule"),
        paused=info.paused,
        next_due=due,
        last_run=newest[0] if newest else None,
        tasks=len(definition.get("tasks", {})),
        version=info.version,
        description=definition.get("description", ""),
        tags=tuple(definition.get("tags", ())),
        served_by=tuple(w for w in workers if info.dag_id in w.dag_ids),
    )


async def list_dags(storage: Storage, now: datetime) -> list[DagSummary]:
    """Every recorded DAG, sorted by id (a DAG is recorded when a scheduler serving it
    starts)."""
    workers = await storage.workers()
    return [await _summary(storage, info, now, workers) for info in await storage.list_dags()]


async def get_dag(storage: Storage, dag_id: str, now: datetime) -> DagDetail:
    """A recorded DAG with its tasks. :raises DagNotFound: no such DAG."""
    info = await recorded_dag(storage, dag_id)
    definition = info.definition
    tasks = tuple(
        TaskDefinition(
            task_id=task_id,
            upstream=tuple(spec.get("upstream", ())),
            options={key: value for key, value in spec.items() if key != "upstream"},
        )
        for task_id, spec in definition.get("tasks", {}).items()
    )
    start = definition.get("start")
    return DagDetail(
        summary=await _summary(storage, info, now, await storage.workers()),
        tasks=tasks,
        start=None if start is None else to_utc(datetime.fromisoformat(start)),
        catchup=bool(definition.get("catchup", False)),
        max_active_runs=int(definition.get("max_active_runs", 0)),
        params=dict(definition.get("params", {})),
    )


async def pause(storage: Storage, dag_id: str) -> None:
    """Stop a DAG's schedule from creating runs (manual triggers still run).

    :raises DagNotFound: no such DAG.
    """
    await recorded_dag(storage, dag_id)
    await storage.set_paused(dag_id, True)


async def unpause(
    storage: Storage, dag_id: str, from_: Literal["now", "last"], now: datetime
) -> None:
    """Resume a DAG's schedule; ``from_="now"`` skips the points missed while paused,
    ``"last"`` follows the DAG's catch-up rule from its last schedule point.

    :raises DagNotFound: no such DAG. :raises ValueError: ``from_`` is something else.
    """
    if from_ not in ("now", "last"):
        raise ValueError(f"from_ must be 'now' or 'last', got {from_!r}")
    await recorded_dag(storage, dag_id)
    await storage.set_paused(dag_id, False, to_utc(now) if from_ == "now" else None)


# -- creating runs -------------------------------------------------------------------------


async def trigger(
    storage: Storage, dag_id: str, params: Mapping[str, Any] | None, now: datetime
) -> DagRun:
    """Queue a manual run of a recorded DAG; ``params`` override its default params.

    :raises DagNotFound: no such DAG. :raises ValueError: ``params`` are not JSON.
    """
    info = await recorded_dag(storage, dag_id)
    return await queue_manual_run(
        storage, dag_id, info.version, info.definition.get("params", {}), params, now
    )


def manual_run(
    dag_id: str,
    version: int,
    defaults: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    now: datetime,
) -> NewRun:
    """The manual run of a known DAG version to queue; ``params`` override ``defaults``.

    :raises ValueError: the params are not JSON.
    """
    merged = {**defaults, **(params or {})}
    problem = params_problem(merged)
    if problem is not None:
        raise ValueError(problem)
    return NewRun(
        dag_id=dag_id,
        logical_time=now,
        trigger=RunTrigger.manual,
        params=merged,
        dag_version=version,
        created_at=now,
        event=ScheduleEventKind.manual,
    )


async def queue_manual_run(
    storage: Storage,
    dag_id: str,
    version: int,
    defaults: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    now: datetime,
) -> DagRun:
    """Queue a manual run of a known DAG version; ``params`` override ``defaults``."""
    new = manual_run(dag_id, version, defaults, params, now)
    run = await storage.create_run(**attrs.asdict(new, recurse=False))
    assert run is not None  # manual runs are never refused
    return run


async def restart(storage: Storage, run_id: int) -> DagRun:
    """Queue a failed or cancelled run again; the scheduler re-runs what did not
    succeed. Its ``started_at`` becomes the time it starts again, from which its
    ``run_timeout`` counts.

    :raises RunNotFound: no such run. :raises InvalidOperation: the run is not failed
        or cancelled.
    """
    run = await get_run(storage, run_id)
    if run.status not in (DagRunStatus.failed, DagRunStatus.cancelled):
        raise InvalidOperation(
            f"run {run_id} is {run.status}; only failed or cancelled runs can be restarted"
        )
    # Started again when the scheduler takes it up: its run_timeout counts from then.
    queued = attrs.evolve(
        run,
        status=DagRunStatus.queued,
        trigger=RunTrigger.restart,
        started_at=None,
        finished_at=None,
        note=None,
    )
    await storage.commit(Changes(dag_runs=[queued]))
    return queued


async def cancel(storage: Storage, run_id: int, now: datetime, note: str | None = None) -> DagRun:
    """Cancel a queued or running run. The run is recorded ``cancelled`` at once; the
    scheduler serving it (in this or another process) then cancels its attempts and
    records them ``cancelled``; tasks not started never start.

    :raises RunNotFound: no such run. :raises InvalidOperation: the run has finished.
    """
    run = await get_run(storage, run_id)
    if run.status.finished:
        raise InvalidOperation(
            f"run {run_id} is {run.status}; only queued or running runs can be cancelled"
        )
    note = note or "cancelled"
    now = to_utc(now)
    cancelled = attrs.evolve(run, status=DagRunStatus.cancelled, finished_at=now, note=note)
    # Attempts left scheduled or running (by a process that is gone, or one that is
    # about to learn of the cancel) say so at once.
    live = [
        attrs.evolve(tr, status=TaskStatus.cancelled, finished_at=now, error=note)
        for tr in await storage.task_runs(run_id)
        if tr.status in (TaskStatus.scheduled, TaskStatus.running)
    ]
    await storage.commit(Changes(dag_runs=[cancelled], task_runs=live))
    return cancelled


async def backfill(
    storage: Storage,
    dag_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    schedule: Schedule | None = None,
) -> list[DagRun]:
    """Queue a run for every schedule point in ``[start, end]`` that has none.

    The runs are queued oldest first and started as ``max_active_runs`` allows.
    :param schedule: the DAG's schedule; by default rebuilt from its recorded definition.
    :raises InvalidOperation: the range is empty or too large, or there is no schedule.
    """
    info = await recorded_dag(storage, dag_id)
    start, end = to_utc(start), to_utc(end)
    if end < start:
        raise InvalidOperation(f"backfill end {end} is before its start {start}")
    schedule = schedule or stored_schedule(info)
    points = []
    try:
        found = schedule_points(schedule, start - timedelta(microseconds=1), end)
        for point in found:
            points.append(point)
            if len(points) > MAX_BACKFILL_RUNS:
                raise InvalidOperation(_too_many_points(points, found))
    except OverflowError:
        raise InvalidOperation(
            f"backfill range {start.isoformat()} to {end.isoformat()} reaches past the "
            "dates the schedule can compute (years 1 to 9999); choose a narrower range"
        ) from None
    created = []
    for point in points:
        run = await storage.create_run(
            dag_id=dag_id,
            logical_time=point,
            trigger=RunTrigger.backfill,
            params=dict(info.definition.get("params", {})),
            dag_version=info.version,
            created_at=now,
            event=ScheduleEventKind.backfill,
        )
        if run is not None:
            created.append(run)
    return created


# -- reading runs ----------------------------------------------------------------------------


def _too_many_points(points: list[datetime], rest: Iterator[datetime]) -> str:
    """Why a backfill range is refused: how many points it has (counted up to
    ``COUNT_POINTS_UP_TO``) and where a range the size allowed would end."""
    total = len(points)
    for _ in rest:
        total += 1
        if total >= COUNT_POINTS_UP_TO:
            break
    counted = f"at least {total:,}" if total >= COUNT_POINTS_UP_TO else f"{total:,}"
    return (
        f"the range has {counted} schedule points, more than the {MAX_BACKFILL_RUNS:,} a "
        f"backfill queues at once; backfill it in smaller ranges, the first ending at "
        f"{points[MAX_BACKFILL_RUNS - 1].isoformat()}"
    )


async def schedule_events(
    storage: Storage, dag_id: str | None = None, limit: int = 50
) -> list[ScheduleEvent]:
    """The schedule's decisions (a run on time, a missed point caught up or skipped, a
    manual run, a backfill), newest point first: of one DAG, or of every DAG.

    :raises DagNotFound: no such DAG. :raises ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if dag_id is not None:
        await recorded_dag(storage, dag_id)
        return await storage.schedule_events(dag_id, limit)
    found: list[ScheduleEvent] = []
    for info in await storage.list_dags():
        found.extend(await storage.schedule_events(info.dag_id, limit))
    found.sort(key=lambda event: (event.logical_time, event.created_at), reverse=True)
    return found[:limit]


async def get_run(storage: Storage, run_id: int) -> DagRun:
    """:raises RunNotFound: no such run."""
    run = await storage.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id}; list runs with `ppacer-async runs`")
    return run


async def list_runs(
    storage: Storage,
    *,
    dag_id: str | None = None,
    status: DagRunStatus | None = None,
    since: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[DagRun]:
    """Runs, newest (highest id) first.

    :param dag_id: only the runs of this DAG (:raises DagNotFound: when it is unknown).
    :param status: only runs with this status.
    :param since: only runs whose logical time is at or after this moment.
    :param before: only runs with an id lower than this: pass the last id of a page to
        get the next one.
    :param limit: at most this many runs (at least 1).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if dag_id is not None:
        await recorded_dag(storage, dag_id)
    return await storage.list_runs(
        dag_id=dag_id, status=status, since=since, before=before, limit=limit
    )


def waiting_state(
    task_id: str, info: DagInfo | None, latest: Mapping[str, TaskRun], run: DagRun
) -> str | None:
    """What a task without an attempt is doing: ``"scheduled"`` when its upstream tasks
    all succeeded in a running run (readiness is not written separately), else
    ``"pending"``; ``None`` once the run has finished (it never started)."""
    if run.status.finished or info is None:
        return None
    upstream = info.definition.get("tasks", {}).get(task_id, {}).get("upstream", [])
    done = all(
        (tr := latest.get(parent)) is not None and tr.status is TaskStatus.success
        for parent in upstream
    )
    return "scheduled" if done and run.status is DagRunStatus.running else "pending"


def _task_ids(info: DagInfo | None, attempts: Iterable[TaskRun]) -> list[str]:
    """Task ids of a run: the DAG's, in definition order, each mapped task followed by
    its instances in index order (``process[0]``, ...), then any only its attempts know."""
    instances: dict[str, set[int]] = {}
    others: dict[str, None] = {}
    for tr in attempts:
        k = tr.map_index
        if k is None:
            others[tr.task_id] = None
        else:
            instances.setdefault(tr.task, set()).add(k)
    ids: dict[str, None] = {}
    known = list(info.definition.get("tasks", {})) if info is not None else []
    for task_id in [*known, *others, *instances]:
        if task_id not in ids:
            ids[task_id] = None
            ids.update(
                dict.fromkeys(instance_id(task_id, k) for k in sorted(instances.get(task_id, ())))
            )
    return list(ids)


async def get_run_detail(storage: Storage, run_id: int) -> RunDetail:
    """A run and every task of it with all its attempts, including the tasks that have
    not started. :raises RunNotFound: no such run."""
    run = await get_run(storage, run_id)
    attempts = await storage.task_runs(run.id)
    info = await storage.get_dag(run.dag_id)
    by_task: dict[str, list[TaskRun]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_id, []).append(attempt)
    latest: dict[str, TaskRun] = {}
    for task_id, rows in by_task.items():
        rows.sort(key=lambda tr: tr.attempt)
        latest[task_id] = rows[-1]
    specs = {} if info is None else info.definition.get("tasks", {})
    tasks = []
    for task_id in _task_ids(info, attempts):
        rows = by_task.get(task_id, [])
        tasks.append(
            TaskDetail(
                task_id=task_id,
                upstream=tuple(specs.get(task_id, {}).get("upstream", ())),
                attempts=tuple(rows),
                waiting=None if rows else waiting_state(task_id, info, latest, run),
                branch=bool(specs.get(task_id, {}).get("branch", False)),
            )
        )
    return RunDetail(run=run, tasks=tuple(tasks))


async def logs(
    storage: Storage,
    run_id: int,
    *,
    task_id: str | None = None,
    attempt: int | None = None,
    after: int = 0,
    limit: int | None = None,
) -> LogPage:
    """Task log records of a run, in the order written.

    :param task_id: only this task's records (:raises TaskNotFound: the run has no such
        task).
    :param attempt: only the records of this attempt number.
    :param after: the cursor: skip the first ``after`` matching records (pass the
        ``next_after`` of the previous page).
    :param limit: at most this many records (default: all).
    :raises RunNotFound: no such run.
    """
    if after < 0:
        raise ValueError(f"after must be 0 or more, got {after}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    # The run is read before the records: a run's last records are committed no later
    # than its end, so a finished run's records are all in the read that follows.
    run = await get_run(storage, run_id)
    if task_id is not None:
        known = _task_ids(await storage.get_dag(run.dag_id), await storage.task_runs(run.id))
        if task_id not in known:
            raise TaskNotFound(
                f"run {run.id} of {run.dag_id} has no task {task_id!r} "
                f"(tasks: {', '.join(known) or 'none'})"
            )
    records = await storage.logs(run.id, task_id, attempt, offset=after, limit=limit)
    return LogPage(run=run, records=records, next_after=after + len(records))


# -- the database ------------------------------------------------------------------------------


async def db_info(storage: Storage) -> DbInfo:
    """Schema version, row counts, and the live processes serving the storage."""
    counts = await storage.counts()
    return DbInfo(counts=counts, workers=await storage.workers())


async def serving(storage: Storage, dag_id: str) -> list[WorkerInfo]:
    """The live processes serving a DAG: registered with it and renewed within the
    storage's lease. Empty: a run queued now waits until a scheduler serving the DAG
    starts."""
    return [worker for worker in await storage.workers() if dag_id in worker.dag_ids]


async def pools(storage: Storage) -> list[PoolUsage]:
    """Each pool's slots, the attempts holding them and those waiting for one, as the
    scheduling process last recorded them (``updated_at``)."""
    return await storage.pools()


async def schema_version_on_disk(storage: Storage) -> int | None:
    """The schema version of a storage's database before it is opened (opening
    migrates it): ``None`` when there is no database yet, ``-1`` when it cannot be told
    without opening it. Call it on a storage that is not open."""
    return await storage.schema_version_on_disk()


#: Runs deleted per transaction when pruning: small, so a scheduler committing to the
#: same database waits for one batch at most.
PRUNE_BATCH = 100


async def prune(
    storage: Storage,
    *,
    older_than: timedelta,
    now: datetime,
    dag_id: str | None = None,
    keep_failed: bool = False,
    dry_run: bool = False,
    batch: int = PRUNE_BATCH,
    pause: float = 0.0,
) -> PruneCounts:
    """Delete runs that finished more than ``older_than`` before ``now``, with their
    attempts, logs and schedule events, in batches of ``batch`` runs; then give the
    space back (SQLite's incremental vacuum).

    Active runs and what the schedule continues from (each DAG's last schedule point)
    are kept. ``pause`` seconds pass between two batches.

    :param dry_run: delete nothing; count what would be deleted.
    :raises ValueError: ``older_than`` is not positive.
    :raises DagNotFound: ``dag_id`` is not in the storage.
    """
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise ValueError(
            f"older_than must be a positive timedelta (e.g. timedelta(days=30)), got {older_than!r}"
        )
    if dag_id is not None and await storage.get_dag(dag_id) is None:
        raise DagNotFound(f"no DAG {dag_id!r} in the storage; see `ppacer-async dags`")
    before = to_utc(now) - older_than
    if dry_run:
        return await storage.prunable(before, dag_id=dag_id, keep_failed=keep_failed)
    total = PruneCounts()
    while True:
        done = await storage.prune(before, dag_id=dag_id, keep_failed=keep_failed, limit=batch)
        total += done
        if done.dag_runs:
            await storage.reclaim_space()
        if done.dag_runs < batch and done.schedule_events < batch:
            break
        await anyio.sleep(pause)
    more = True
    while more:
        more = await storage.reclaim_space()
        if more:
            await anyio.sleep(pause)
    return total
