"""In-process storage: the reference implementation, for tests and benchmarks."""

from __future__ import annotations

import copy
import itertools
import os
from bisect import insort
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .._definition import stored_definition
from .._enums import DagRunStatus, RunTrigger, ScheduleEventKind, prunable_statuses
from .._exceptions import DagNotFound, StorageError
from .._structures import (
    Changes,
    DagInfo,
    DagRun,
    LogRecord,
    PoolUsage,
    PruneCounts,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
    WorkerInfo,
    moved_run,
)
from .._time import to_utc
from ..abc import Storage
from ._codec import SCHEDULE_KINDS, SCHEDULED_TRIGGERS
from ._migrations import schema_version

#: The schema this storage behaves as: that of SQLite, the other single-process storage.
SCHEMA_VERSION = schema_version("sqlite")


#: The statuses that may replace ``cancelled``: a restart queues the run again.
_REOPENING = (DagRunStatus.cancelled, DagRunStatus.queued)


@attrs.define(eq=False, kw_only=True)
class MemoryStorage(Storage):
    """Keeps everything in dictionaries; behaves like the SQL back ends but for durability."""

    _dags: dict[str, list[DagInfo]] = attrs.field(init=False, factory=dict)
    _paused: dict[str, tuple[bool, datetime | None]] = attrs.field(init=False, factory=dict)
    _runs: dict[int, DagRun] = attrs.field(init=False, factory=dict)
    _scheduled_keys: set[tuple[str, datetime]] = attrs.field(init=False, factory=set)
    _task_runs: dict[int, dict[tuple[str, int], TaskRun]] = attrs.field(init=False, factory=dict)
    _logs: dict[int, list[LogRecord]] = attrs.field(init=False, factory=dict)
    _events: dict[str, list[ScheduleEvent]] = attrs.field(init=False, factory=dict)
    _ids: itertools.count[int] = attrs.field(init=False, factory=lambda: itertools.count(1))
    _workers: dict[str, WorkerInfo] = attrs.field(init=False, factory=dict)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def sync_dag(
        self,
        dag_id: str,
        definition_hash: str,
        definition: bytes | Mapping[str, Any],
        now: datetime,
    ) -> int:
        versions = self._dags.setdefault(dag_id, [])
        if versions and versions[-1].definition_hash == definition_hash:
            return versions[-1].version
        # Kept in its stored form: immutable, compact, and decoded only when read.
        stored = stored_definition(definition)
        info = DagInfo(
            dag_id=dag_id,
            version=len(versions) + 1,
            definition_hash=definition_hash,
            definition=stored,
            paused=self._paused.setdefault(dag_id, (False, None))[0],
            created_at=to_utc(now),
        )
        versions.append(info)
        return info.version

    async def get_dag(self, dag_id: str) -> DagInfo | None:
        versions = self._dags.get(dag_id)
        if not versions:
            return None
        paused, resume_after = self._paused[dag_id]
        return attrs.evolve(versions[-1], paused=paused, resume_after=resume_after)

    async def list_dags(self) -> list[DagInfo]:
        return [info for dag_id in sorted(self._dags) if (info := await self.get_dag(dag_id))]

    async def set_paused(
        self, dag_id: str, paused: bool, resume_after: datetime | None = None
    ) -> None:
        if dag_id not in self._dags:
            raise DagNotFound(f"DAG {dag_id!r} is not recorded in this storage")
        self._paused[dag_id] = (
            bool(paused),
            None if resume_after is None else to_utc(resume_after),
        )

    async def wait_for_external_change(self) -> None:
        """Nothing outside this process can change a memory storage."""
        import anyio

        await anyio.sleep_forever()

    async def create_run(
        self,
        *,
        dag_id: str,
        logical_time: datetime,
        trigger: RunTrigger,
        params: dict[str, Any],
        dag_version: int,
        created_at: datetime,
        event: ScheduleEventKind | None = None,
    ) -> DagRun | None:
        logical_time = to_utc(logical_time)
        if trigger in SCHEDULED_TRIGGERS:
            key = (dag_id, logical_time)
            if key in self._scheduled_keys:
                return None
            self._scheduled_keys.add(key)
        run = DagRun(
            id=next(self._ids),
            dag_id=dag_id,
            logical_time=logical_time,
            status=DagRunStatus.queued,
            trigger=trigger,
            params=copy.deepcopy(params) if params else {},
            dag_version=dag_version,
            created_at=to_utc(created_at),
        )
        self._runs[run.id] = run
        self._task_runs[run.id] = {}
        if event is not None:
            self._add_event(
                ScheduleEvent(
                    dag_id=dag_id,
                    logical_time=logical_time,
                    kind=event,
                    created_at=run.created_at,
                    run_id=run.id,
                )
            )
        return run

    def _add_event(self, event: ScheduleEvent) -> None:
        events = self._events.setdefault(event.dag_id, [])
        insort(events, event, key=lambda e: e.logical_time)

    async def record_schedule_event(self, event: ScheduleEvent) -> None:
        self._add_event(
            attrs.evolve(
                event,
                logical_time=to_utc(event.logical_time),
                created_at=to_utc(event.created_at),
            )
        )

    async def last_schedule_point(self, dag_id: str) -> datetime | None:
        for event in reversed(self._events.get(dag_id, ())):
            if event.kind in SCHEDULE_KINDS:
                return event.logical_time
        return None

    async def schedule_events(self, dag_id: str, limit: int = 100) -> list[ScheduleEvent]:
        return list(reversed(self._events.get(dag_id, ())))[:limit]

    async def commit(self, changes: Changes) -> None:
        missing = {run.id for run in changes.dag_runs if run.id not in self._runs} | {
            tr.run_id for tr in changes.task_runs if tr.run_id not in self._runs
        }
        if missing:
            raise StorageError(
                f"commit refers to unknown runs {sorted(missing)}; nothing was written"
            )
        for run in changes.dag_runs:
            old = self._runs[run.id]
            if old.status is DagRunStatus.cancelled and run.status not in _REOPENING:
                continue  # cancelled until queued again (a restart)
            self._runs[run.id] = moved_run(
                old,
                run.status,
                run.trigger,
                _utc_or_none(run.started_at),
                _utc_or_none(run.finished_at),
                run.note,
            )
        task_runs = self._task_runs
        for tr in changes.task_runs:
            if not (
                _is_utc(tr.scheduled_at) and _is_utc(tr.started_at) and _is_utc(tr.finished_at)
            ):
                tr = attrs.evolve(
                    tr,
                    scheduled_at=_utc_or_none(tr.scheduled_at),
                    started_at=_utc_or_none(tr.started_at),
                    finished_at=_utc_or_none(tr.finished_at),
                )
            task_runs[tr.run_id][(tr.task_id, tr.attempt)] = tr
        logs = self._logs
        for record in changes.logs:
            if not _is_utc(record.time):
                record = attrs.evolve(record, time=to_utc(record.time))
            logs.setdefault(record.run_id, []).append(record)

    async def get_run(self, run_id: int) -> DagRun | None:
        return self._runs.get(run_id)

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        status: DagRunStatus | None = None,
        since: datetime | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[DagRun]:
        found: list[DagRun] = []
        if limit <= 0:
            return found
        cutoff = None if since is None else to_utc(since)
        for run_id in sorted(self._runs, reverse=True):
            if before is not None and run_id >= before:
                continue
            run = self._runs[run_id]
            if (
                (dag_id is None or run.dag_id == dag_id)
                and (status is None or run.status == status)
                and (cutoff is None or run.logical_time >= cutoff)
            ):
                found.append(run)
                if len(found) >= limit:
                    break
        return found

    async def active_runs(self) -> list[DagRun]:
        return [
            run
            for run_id, run in sorted(self._runs.items())
            if run.status in (DagRunStatus.queued, DagRunStatus.running)
        ]

    async def task_runs(self, run_id: int) -> list[TaskRun]:
        rows = self._task_runs.get(run_id, {})
        return [rows[key] for key in sorted(rows)]

    async def logs(
        self,
        run_id: int,
        task_id: str | None = None,
        attempt: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        found = [
            r
            for r in self._logs.get(run_id, ())
            if (task_id is None or r.task_id == task_id)
            and (attempt is None or r.attempt == attempt)
        ]
        return found[offset:] if limit is None else found[offset : offset + limit]

    async def save_pools(self, pools: Collection[PoolUsage], now: datetime) -> None:
        self._pools = [attrs.evolve(pool, updated_at=to_utc(now)) for pool in pools]

    async def pools(self) -> list[PoolUsage]:
        return sorted(getattr(self, "_pools", []), key=lambda pool: pool.name)

    async def register_worker(
        self, worker_id: str, role: str, now: datetime, dag_ids: Collection[str] = ()
    ) -> None:
        renewed = datetime.now(UTC)
        known = self._workers.get(worker_id)
        self._workers[worker_id] = WorkerInfo(
            id=worker_id,
            host=os.uname().nodename,
            pid=os.getpid(),
            role=role,
            started_at=to_utc(now) if known is None else known.started_at,
            renewed_at=renewed,
            expires_at=renewed + self.lease,
            dag_ids=tuple(dag_ids),
        )

    async def unregister_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        now = datetime.now(UTC)
        return [w for _, w in sorted(self._workers.items()) if w.expires_at >= now]

    async def counts(self) -> StorageCounts:
        return StorageCounts(
            schema_version=SCHEMA_VERSION,
            dags=len(self._dags),
            dag_runs=len(self._runs),
            task_runs=sum(len(rows) for rows in self._task_runs.values()),
            task_logs=sum(len(rows) for rows in self._logs.values()),
            schedule_events=sum(len(rows) for rows in self._events.values()),
        )

    async def prune(
        self,
        before: datetime,
        *,
        dag_id: str | None = None,
        keep_failed: bool = False,
        limit: int = 100,
    ) -> PruneCounts:
        doomed = self._prunable_runs(before, dag_id, keep_failed)[:limit]
        gone = set()
        task_runs = task_logs = 0
        for run in doomed:
            gone.add(run.id)
            del self._runs[run.id]
            self._scheduled_keys.discard((run.dag_id, run.logical_time))
            task_runs += len(self._task_runs.pop(run.id, {}))
            task_logs += len(self._logs.pop(run.id, []))
        events = 0
        orphans = 0
        for key, rows in self._events.items():
            last = _last_point(rows)
            kept: list[ScheduleEvent] = []
            for event in rows:
                old = _may_go(event, last)
                if old and event.run_id in gone:
                    events += 1
                    continue
                if (
                    old
                    and orphans < limit
                    and event.run_id is None
                    and event.created_at < before
                    and (dag_id is None or key == dag_id)
                ):
                    orphans += 1
                    continue
                if event.run_id in gone:
                    event = attrs.evolve(event, run_id=None)
                kept.append(event)
            rows[:] = kept
        return PruneCounts(
            dag_runs=len(doomed),
            task_runs=task_runs,
            task_logs=task_logs,
            schedule_events=events + orphans,
        )

    async def prunable(
        self, before: datetime, *, dag_id: str | None = None, keep_failed: bool = False
    ) -> PruneCounts:
        doomed = {run.id for run in self._prunable_runs(before, dag_id, keep_failed)}
        events = 0
        for key, rows in self._events.items():
            last = _last_point(rows)
            for event in rows:
                if not _may_go(event, last):
                    continue
                if event.run_id in doomed or (
                    event.run_id is None
                    and event.created_at < before
                    and (dag_id is None or key == dag_id)
                ):
                    events += 1
        return PruneCounts(
            dag_runs=len(doomed),
            task_runs=sum(len(self._task_runs.get(i, ())) for i in doomed),
            task_logs=sum(len(self._logs.get(i, ())) for i in doomed),
            schedule_events=events,
        )

    def _prunable_runs(
        self, before: datetime, dag_id: str | None, keep_failed: bool
    ) -> list[DagRun]:
        statuses = prunable_statuses(keep_failed=keep_failed)
        found = [
            run
            for run in self._runs.values()
            if run.status in statuses
            and run.finished_at is not None
            and run.finished_at < before
            and (dag_id is None or run.dag_id == dag_id)
        ]
        found.sort(key=lambda run: (run.finished_at, run.id))
        return found


def _is_utc(moment: datetime | None) -> bool:
    return moment is None or moment.tzinfo is UTC


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else to_utc(moment)


def _may_go(event: ScheduleEvent, last: datetime | None) -> bool:
    """Whether pruning may delete a schedule event: not a DAG's last schedule point or
    anything after it (the watcher continues from there); other events always."""
    if event.kind not in SCHEDULE_KINDS:
        return True
    return last is not None and event.logical_time < last


def _last_point(events: list[ScheduleEvent]) -> datetime | None:
    """The logical time of a DAG's last schedule point (events sorted by time)."""
    for event in reversed(events):
        if event.kind in SCHEDULE_KINDS:
            return event.logical_time
    return None
