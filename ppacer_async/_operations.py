"""Operations on a storage that need no serving scheduler: a running one (in this or
another process) picks their effect up. The ``Scheduler`` methods and the command line
share them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from ._enums import DagRunStatus, RunTrigger, ScheduleEventKind
from ._exceptions import DagNotFound, InvalidOperation, RunNotFound
from ._structures import Changes, DagInfo, DagRun
from ._time import to_utc
from .abc import Schedule, Storage
from .schedules import schedule_from_spec, schedule_points

#: Backfilling more points than this at once is refused (split the range).
MAX_BACKFILL_RUNS = 10_000


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


async def trigger_run(
    storage: Storage, dag_id: str, params: Mapping[str, Any] | None, now: datetime
) -> DagRun:
    """Queue a manual run; ``params`` override the DAG's default params."""
    info = await recorded_dag(storage, dag_id)
    return await queue_manual_run(
        storage, dag_id, info.version, info.definition.get("params", {}), params, now
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
    merged = {**defaults, **(params or {})}
    try:
        json.dumps(merged)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be JSON-serialisable: {exc}") from None
    run = await storage.create_run(
        dag_id=dag_id,
        logical_time=now,
        trigger=RunTrigger.manual,
        params=merged,
        dag_version=version,
        created_at=now,
        event=ScheduleEventKind.manual,
    )
    assert run is not None  # manual runs are never refused
    return run


async def request_restart(storage: Storage, run_id: int) -> DagRun:
    """Queue a failed run again; the scheduler re-runs what did not succeed.

    :raises RunNotFound: no such run. :raises InvalidOperation: the run is not failed.
    """
    run = await storage.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id}; list runs with `ppacer-async runs`")
    if run.status not in (DagRunStatus.failed, DagRunStatus.cancelled):
        raise InvalidOperation(
            f"run {run_id} is {run.status}; only failed or cancelled runs can be restarted"
        )
    queued = attrs.evolve(
        run, status=DagRunStatus.queued, trigger=RunTrigger.restart, finished_at=None, note=None
    )
    await storage.commit(Changes(dag_runs=[queued]))
    return queued


async def request_cancel(
    storage: Storage, run_id: int, now: datetime, note: str | None = None
) -> DagRun:
    """Cancel a queued or running run. The run is recorded ``cancelled`` at once; the
    scheduler serving it (in this or another process) then cancels its attempts.

    :raises RunNotFound: no such run. :raises InvalidOperation: the run has finished.
    """
    run = await storage.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id}; list runs with `ppacer-async runs`")
    if run.status.finished:
        raise InvalidOperation(
            f"run {run_id} is {run.status}; only queued or running runs can be cancelled"
        )
    cancelled = attrs.evolve(
        run, status=DagRunStatus.cancelled, finished_at=to_utc(now), note=note or "cancelled"
    )
    await storage.commit(Changes(dag_runs=[cancelled]))
    return cancelled


async def pause_dag(storage: Storage, dag_id: str) -> None:
    await recorded_dag(storage, dag_id)
    await storage.set_paused(dag_id, True)


async def unpause_dag(
    storage: Storage, dag_id: str, from_: Literal["now", "last"], now: datetime
) -> None:
    """Unpause; ``from_="now"`` skips the points missed while paused, ``"last"`` follows
    the DAG's catch-up rule from its last schedule point."""
    if from_ not in ("now", "last"):
        raise ValueError(f"from_ must be 'now' or 'last', got {from_!r}")
    await recorded_dag(storage, dag_id)
    await storage.set_paused(dag_id, False, to_utc(now) if from_ == "now" else None)


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
    :raises InvalidOperation: the range is empty or too large, or there is no schedule.
    """
    info = await recorded_dag(storage, dag_id)
    start, end = to_utc(start), to_utc(end)
    if end < start:
        raise InvalidOperation(f"backfill end {end} is before its start {start}")
    schedule = schedule or stored_schedule(info)
    points = []
    for point in schedule_points(schedule, start - timedelta(microseconds=1), end):
        points.append(point)
        if len(points) > MAX_BACKFILL_RUNS:
            raise InvalidOperation(
                f"the range has more than {MAX_BACKFILL_RUNS} schedule points; "
                "backfill it in smaller ranges"
            )
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
