"""PostgreSQL storage on an asyncpg pool: for several schedulers sharing one database.

The storage reads and writes runs; it hands the jobs that hold connections of their
own to its parts: :mod:`.notices` (LISTEN/NOTIFY), :mod:`.leadership` (the advisory
lock of the process that schedules) and :mod:`.claims` (leases on attempts, reaping).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.abc
import asyncpg  # type: ignore[import-untyped, unused-ignore]
import attrs

from ..._definition import stored_definition
from ..._enums import DagRunStatus, RunTrigger, ScheduleEventKind, TaskStatus, prunable_statuses
from ..._exceptions import DagNotFound, LeaseLost, StorageError
from ..._structures import (
    Changes,
    DagInfo,
    DagRun,
    LocalClaim,
    LogRecord,
    PoolUsage,
    PruneCounts,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
    WorkerInfo,
)
from ..._time import to_utc
from ...abc import Leadership, Notice, SharedStorage
from .. import check_postgres_url, redact_url
from .._codec import (
    ATTEMPT_REASONS,
    EVENT_KINDS,
    RUN_STATUSES,
    RUN_TRIGGERS,
    SCHEDULE_KINDS,
    SCHEDULED_TRIGGERS,
    TASK_STATUSES,
    check_member,
)
from . import _queries as q
from ._connection import Database
from ._values import (
    dag_info,
    dag_run,
    log_record,
    result_json,
    schedule_event,
    task_run,
    text,
    to_json,
)
from .claims import Claims, lease_key_arrays
from .leadership import Election
from .notices import Notices, channels
from .schema import migrate

__all__ = ["PostgresStorage"]


def _validate_positive(name: str, value: timedelta | None, *, optional: bool) -> None:
    if value is not None and value <= timedelta(0):
        fix = "; pass None for no limit" if optional else ""
        raise ValueError(f"{name} must be positive, got {value.total_seconds():g} s{fix}")


@attrs.define(eq=False, kw_only=True)
class PostgresStorage(SharedStorage):
    """Storage in a PostgreSQL database, through an asyncpg connection pool.

    Several processes, on one or many machines, may serve the same database: they share
    the work (see :class:`~ppacer_async.abc.SharedStorage`).

    :param dsn: ``postgresql://user:password@host:port/database``.
    :param schema: the schema holding the tables; created if missing. Several
        independent installations can share a database with one schema each.
    :param min_pool_size: connections opened up front and kept.
    :param max_pool_size: the most connections open at once.
    :param statement_timeout: the server aborts any statement running longer;
        ``None`` keeps the server's setting.
    :param connect_timeout: how long to wait for a new connection.
    :param application_name: shown in ``pg_stat_activity``.
    :param lease: how long an attempt stays claimed by a process that stops renewing
        it (renewed at half the lease); after that it is recorded ``interrupted`` and
        runs again elsewhere.
    :param poll_interval: how often processes look for work and changes on their own,
        in case a notification was lost.
    """

    dsn: str = attrs.field(
        repr=lambda dsn: repr(redact_url(dsn)),
        validator=lambda _, __, dsn: check_postgres_url(dsn),
    )
    schema: str = "public"
    min_pool_size: int = 1
    max_pool_size: int = 10
    statement_timeout: timedelta | None = timedelta(seconds=30)
    connect_timeout: timedelta = timedelta(seconds=10)
    application_name: str = "ppacer-async"
    lease: timedelta = timedelta(seconds=30)
    poll_interval: timedelta = timedelta(seconds=2)
    _db: Database = attrs.field(init=False, repr=False)
    _notices: Notices = attrs.field(init=False, repr=False)
    _election: Election = attrs.field(init=False, repr=False)
    _claims: Claims = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.schema:
            raise ValueError("schema must be a non-empty name, e.g. schema='ppacer'")
        if self.max_pool_size < 1:
            raise ValueError(f"max_pool_size must be at least 1, got {self.max_pool_size}")
        if not 0 <= self.min_pool_size <= self.max_pool_size:
            raise ValueError(
                f"min_pool_size must be between 0 and max_pool_size ({self.max_pool_size}), "
                f"got {self.min_pool_size}"
            )
        _validate_positive("statement_timeout", self.statement_timeout, optional=True)
        _validate_positive("connect_timeout", self.connect_timeout, optional=False)
        _validate_positive("lease", self.lease, optional=False)
        _validate_positive("poll_interval", self.poll_interval, optional=False)
        self._db = Database(
            dsn=self.dsn,
            schema=self.schema,
            min_pool_size=self.min_pool_size,
            max_pool_size=self.max_pool_size,
            statement_timeout=self.statement_timeout,
            connect_timeout=self.connect_timeout,
            application_name=self.application_name,
        )
        interval = self.poll_interval.total_seconds()
        self._notices = Notices(db=self._db, poll_interval=interval, channels=channels(self.schema))
        self._election = Election(db=self._db, poll_interval=interval)
        self._claims = Claims(db=self._db, notices=self._notices, lease=self.lease)

    @property
    def _pool(self) -> Any:
        """The asyncpg pool, or None when the storage is not open."""
        return self._db.pool

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._db.pool is not None:
            return
        pool = await self._db.create_pool()
        try:
            with self._db.errors("migrate"):
                async with pool.acquire() as conn:
                    await migrate(conn, self.schema, self.dsn)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._db.close_pool(pool)
            raise
        self._db.pool = pool

    async def close(self) -> None:
        pool, self._db.pool = self._db.pool, None
        with anyio.CancelScope(shield=True):
            await self._claims.close()
            if pool is not None:
                await self._db.close_pool(pool)

    async def acquire_scheduler_lock(self) -> None:
        """Several schedulers may share a PostgreSQL database: nothing to claim here;
        they elect the one that schedules with :meth:`leadership`."""

    # -- DAG definitions ---------------------------------------------------------------

    async def sync_dag(
        self,
        dag_id: str,
        definition_hash: str,
        definition: bytes | Mapping[str, Any],
        now: datetime,
    ) -> int:
        now = to_utc(now)
        stored = stored_definition(definition)
        pool = self._db.connections
        with self._db.errors("write to"):
            latest = await pool.fetchrow(q.LATEST_DAG_VERSION, dag_id)
            if latest is not None and latest["definition_hash"] == definition_hash:
                return int(latest["version"])
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(q.INSERT_DAG, dag_id, now)
                await conn.execute(q.LOCK_DAG, dag_id)
                # Read again under the row lock: another process may have just written.
                latest = await conn.fetchrow(q.LATEST_DAG_VERSION, dag_id)
                if latest is not None and latest["definition_hash"] == definition_hash:
                    return int(latest["version"])
                version = 1 if latest is None else int(latest["version"]) + 1
                await conn.execute(
                    q.INSERT_DAG_VERSION, dag_id, version, definition_hash, stored, now
                )
                return version

    async def get_dag(self, dag_id: str) -> DagInfo | None:
        with self._db.errors("read from"):
            row = await self._db.connections.fetchrow(q.GET_DAG, dag_id)
        return None if row is None else dag_info(row)

    async def list_dags(self) -> list[DagInfo]:
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(q.LIST_DAGS)
        return [dag_info(row) for row in rows]

    async def dag_pauses(self) -> list[tuple[str, bool, datetime | None]]:
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(q.DAG_PAUSES)
        return [(row["dag_id"], row["paused"], row["resume_after"]) for row in rows]

    async def set_paused(
        self, dag_id: str, paused: bool, resume_after: datetime | None = None
    ) -> None:
        with self._db.errors("write to"):
            status = await self._db.connections.execute(
                q.SET_PAUSED,
                dag_id,
                paused,
                resume_after,
                self._notices.channels["changes"],
                self._notices.sender,
            )
        if status == "UPDATE 0":
            raise DagNotFound(f"DAG {dag_id!r} is not recorded in this storage")

    # -- runs --------------------------------------------------------------------------

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
        check_member(trigger, RUN_TRIGGERS, "trigger")
        if event is not None:
            check_member(event, EVENT_KINDS, "event")
        args = (
            dag_id,
            to_utc(logical_time),
            trigger,
            trigger in SCHEDULED_TRIGGERS,
            to_json(params, "params"),
            dag_version,
            to_utc(created_at),
            event,
        )
        with self._db.errors("write to"):
            row = await self._db.connections.fetchrow(
                q.CREATE_RUN, *args, self._notices.channels["changes"], self._notices.sender
            )
        return None if row is None else dag_run(row)

    async def record_schedule_event(self, event: ScheduleEvent) -> None:
        check_member(event.kind, EVENT_KINDS, "kind of the schedule event")
        with self._db.errors("write to"):
            await self._db.connections.execute(
                q.INSERT_SCHEDULE_EVENT,
                event.dag_id,
                to_utc(event.logical_time),
                event.kind,
                to_utc(event.created_at),
                event.run_id,
            )

    async def record_schedule_events(self, events: Sequence[ScheduleEvent]) -> None:
        for event in events:
            check_member(event.kind, EVENT_KINDS, "kind of the schedule event")
        rows = [
            (e.dag_id, to_utc(e.logical_time), e.kind, to_utc(e.created_at), e.run_id)
            for e in events
        ]
        with self._db.errors("write to"):
            await self._db.connections.executemany(q.INSERT_SCHEDULE_EVENT, rows)

    async def last_schedule_point(self, dag_id: str) -> datetime | None:
        with self._db.errors("read from"):
            point: datetime | None = await self._db.connections.fetchval(
                q.LAST_SCHEDULE_POINT, dag_id
            )
        return point

    async def schedule_events(self, dag_id: str, limit: int = 100) -> list[ScheduleEvent]:
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(q.SCHEDULE_EVENTS, dag_id, limit)
        return [schedule_event(row) for row in rows]

    async def commit(self, changes: Changes) -> None:
        if changes:
            await self._commit(changes, None)

    async def commit_claiming(
        self, changes: Changes, claim: LocalClaim
    ) -> set[tuple[int, str, int]]:
        if not changes:
            return set()
        return await self._commit(changes, claim)

    async def _commit(
        self, changes: Changes, claim: LocalClaim | None
    ) -> set[tuple[int, str, int]]:
        # Later entries win, as they would applied one by one.
        runs = {run.id: run for run in changes.dag_runs}
        task_runs = {tr.key: tr for tr in changes.task_runs}
        task_rows = list(task_runs.values())
        leased: list[bool] = []
        fresh: set[tuple[int, str, int]] = set()
        if claim is not None:
            leased, fresh = _leased(task_runs, claim)
            if fresh and len(task_rows) > COMMIT_CHUNK:
                task_rows, leased, fresh = _leased_first(task_rows, leased, fresh)
        # A commit of very many task runs (a run of a million tasks starting) is sent as
        # several statements of one transaction, each well within statement_timeout;
        # the first one claims (the rows it leases come first), the others write rows.
        first, rest = task_rows[:COMMIT_CHUNK], task_rows[COMMIT_CHUNK:]
        query = q.COMMIT[bool(runs), bool(first), bool(changes.logs), claim is not None]
        args: list[Any] = _commit_arguments(runs.values(), first, changes.logs)
        if claim is not None:
            if first:
                args.append(leased[: len(first)])
            args += [
                claim.worker_id,
                self.lease,
                to_utc(claim.now),
                list(claim.dag_ids),
                *lease_key_arrays(claim.stored),
                *lease_key_arrays(claim.applied),
                # if another process may run the attempts, they are all scheduled
                [self._notices.channels["work"]] if fresh else [],
            ]
        args += [
            self._notices.commit_channels(runs.values(), task_rows, leased),
            self._notices.sender,
        ]
        more = [
            [*_commit_arguments((), rest[i : i + COMMIT_CHUNK], ()), (), self._notices.sender]
            for i in range(0, len(rest), COMMIT_CHUNK)
        ]

        async def send(conn: Any) -> Any:
            if not more:
                return await conn.fetchrow(query, *args)
            async with conn.transaction():
                row = await conn.fetchrow(query, *args)
                if row["ok"] and (claim is None or row["held"]):  # else nothing was written
                    for chunk in more:
                        await conn.fetchval(q.COMMIT[False, True, False, False], *chunk)
            return row

        with self._db.errors("write to"):
            try:
                leader = self._election.current
                if leader is None:
                    if more:
                        async with self._db.connections.acquire() as conn:
                            row = await send(conn)
                    else:
                        row = await self._db.connections.fetchrow(query, *args)
                else:
                    # On the connection holding the advisory lock: a process that lost
                    # the scheduling role cannot write a transition any more.
                    async with leader.lock:
                        if leader.lost.is_set():
                            raise StorageError(
                                "this process lost the scheduling role (its connection "
                                "to PostgreSQL dropped); nothing was written"
                            )
                        row = await send(leader.conn)
            except asyncpg.ForeignKeyViolationError as exc:
                raise StorageError(
                    f"commit refers to a DAG run that does not exist ({exc.detail or exc}); "
                    "nothing was written"
                ) from None
            if not row["ok"]:
                rows = await self._db.connections.fetch(q.EXISTING_RUN_IDS, list(runs))
                missing = sorted(set(runs) - {row["id"] for row in rows})
                raise StorageError(
                    f"commit updates DAG runs that do not exist: {missing}; nothing was written"
                )
        if claim is None:
            return set()
        if not row["held"]:
            raise LeaseLost(
                "the lease of an attempt this process ran was given up (it stopped "
                "renewing it for longer than the lease); nothing was written"
            )
        if not row["alone"]:
            return set()
        if row["run_ids"]:
            fresh.update(zip(row["run_ids"], row["task_ids"], row["attempts"], strict=True))
        return fresh

    async def get_run(self, run_id: int) -> DagRun | None:
        with self._db.errors("read from"):
            row = await self._db.connections.fetchrow(q.GET_RUN, run_id)
        return None if row is None else dag_run(row)

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        status: DagRunStatus | None = None,
        since: datetime | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[DagRun]:
        # In the order of q.LIST_RUNS_FILTERS; each has an index (see the migrations).
        filters = (dag_id, status, None if since is None else to_utc(since), before)
        query = q.LIST_RUNS[tuple(a is not None for a in filters)]
        args = [a for a in filters if a is not None]
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(query, *args, limit)
        return [dag_run(row) for row in rows]

    async def active_runs(self) -> list[DagRun]:
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(q.ACTIVE_RUNS)
        return [dag_run(row) for row in rows]

    async def task_runs(self, run_id: int) -> list[TaskRun]:
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(q.TASK_RUNS, run_id)
        return [task_run(row) for row in rows]

    async def logs(
        self,
        run_id: int,
        task_id: str | None = None,
        attempt: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        query = q.LOGS[task_id is not None, attempt is not None]
        args = [a for a in (task_id, attempt) if a is not None]
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(query, run_id, *args, offset, limit)
        return [log_record(row) for row in rows]

    async def save_pools(self, pools: Collection[PoolUsage], now: datetime) -> None:
        columns = [[p.name for p in pools], [p.slots for p in pools]]
        columns += [[p.used for p in pools], [p.waiting for p in pools]]
        with self._db.errors("write to"):
            await self._db.connections.execute(q.SAVE_POOLS, *columns, to_utc(now))

    async def pools(self) -> list[PoolUsage]:
        with self._db.errors("read from"):
            rows = await self._db.connections.fetch(q.POOLS)
        return [PoolUsage(**row) for row in rows]

    async def counts(self) -> StorageCounts:
        with self._db.errors("read from"):
            row = await self._db.connections.fetchrow(q.COUNTS)
        return StorageCounts(
            schema_version=row["schema_version"],
            dags=row["dags"],
            dag_runs=row["dag_runs"],
            task_runs=row["task_runs"],
            task_logs=row["task_logs"],
            schedule_events=row["schedule_events"],
        )

    async def prune(
        self,
        before: datetime,
        *,
        dag_id: str | None = None,
        keep_failed: bool = False,
        limit: int = 100,
    ) -> PruneCounts:
        statuses = [str(s) for s in prunable_statuses(keep_failed=keep_failed)]
        kinds = sorted(str(k) for k in SCHEDULE_KINDS)
        before = to_utc(before)
        with self._db.errors("prune"):
            async with self._db.connections.acquire() as conn, conn.transaction():
                ids = [
                    row["id"]
                    for row in await conn.fetch(
                        q.PRUNE_SELECT_RUNS, before, statuses, dag_id, limit
                    )
                ]
                events = logs = task_runs = 0
                if ids:
                    events = _count(await conn.execute(q.PRUNE_RUN_EVENTS, ids, kinds))
                    logs = _count(await conn.execute(q.PRUNE_LOGS, ids))
                    task_runs = _count(await conn.execute(q.PRUNE_TASK_RUNS, ids))
                    await conn.execute(q.PRUNE_RUNS, ids)
                events += _count(
                    await conn.execute(q.PRUNE_ORPHAN_EVENTS, before, dag_id, kinds, limit)
                )
        return PruneCounts(
            dag_runs=len(ids), task_runs=task_runs, task_logs=logs, schedule_events=events
        )

    async def prunable(
        self, before: datetime, *, dag_id: str | None = None, keep_failed: bool = False
    ) -> PruneCounts:
        statuses = [str(s) for s in prunable_statuses(keep_failed=keep_failed)]
        kinds = sorted(str(k) for k in SCHEDULE_KINDS)
        with self._db.errors("read from"):
            row = await self._db.connections.fetchrow(
                q.PRUNABLE, to_utc(before), statuses, dag_id, kinds
            )
        return PruneCounts(
            dag_runs=row["dag_runs"],
            task_runs=row["task_runs"],
            task_logs=row["task_logs"],
            schedule_events=row["schedule_events"],
        )

    # -- shared work: telling (notices.py) -------------------------------------------

    def add_notice_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        self._notices.add_callback(kind, callback)

    def remove_notice_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        self._notices.remove_callback(kind, callback)

    async def listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await self._notices.listen(task_status=task_status)

    async def wait_for_external_change(self) -> None:
        """Return on a ``changes`` notice, or after ``poll_interval`` at the latest.

        A notice that arrives between two calls (while the caller reads the storage)
        makes the next call return at once: it is never lost.
        """
        await self._notices.wait_for_external_change()

    # -- shared work: who schedules (leadership.py) -----------------------------------

    def leadership(
        self, on_standby: Callable[[], None] | None = None
    ) -> AbstractAsyncContextManager[Leadership]:
        return self._election.leadership(on_standby)

    # -- shared work: claims and leases (claims.py) ----------------------------------

    async def register_worker(
        self, worker_id: str, role: str, now: datetime, dag_ids: Collection[str] = ()
    ) -> None:
        await self._claims.register_worker(worker_id, role, now, dag_ids)

    async def unregister_worker(self, worker_id: str) -> None:
        await self._claims.unregister_worker(worker_id)

    async def renew_leases(self, worker_id: str, keys: Collection[tuple[int, str, int]]) -> None:
        await self._claims.renew_leases(worker_id, keys)

    def renew_leases_from_thread(
        self, worker_id: str, keys: Collection[tuple[int, str, int]]
    ) -> None:
        async def renew() -> None:
            conn = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout.total_seconds(),
                server_settings=self._db.server_settings(),
            )
            try:
                await conn.execute(q.RENEW_WORKER, worker_id, self.lease)
                await conn.execute(q.RENEW_LEASES, worker_id, self.lease, *lease_key_arrays(keys))
            finally:
                await conn.close()

        with self._db.errors("renew leases in"):
            asyncio.run(renew())

    async def claim(
        self, worker_id: str, dag_ids: Collection[str], limit: int, now: datetime
    ) -> tuple[list[tuple[DagRun, TaskRun]], int | None]:
        return await self._claims.claim(worker_id, dag_ids, limit, now)

    async def claim_keys(
        self, worker_id: str, keys: Collection[tuple[int, str, int]], now: datetime
    ) -> set[tuple[int, str, int]]:
        return await self._claims.claim_keys(worker_id, keys, now)

    async def held(
        self, worker_id: str, keys: Collection[tuple[int, str, int]]
    ) -> set[tuple[int, str, int]]:
        return await self._claims.held(worker_id, keys)

    async def upstream_results(
        self, keys: Collection[tuple[int, str]]
    ) -> dict[tuple[int, str], Any]:
        return await self._claims.upstream_results(keys)

    async def report(
        self,
        worker_id: str,
        outcomes: Collection[TaskRun],
        logs: Collection[LogRecord],
        *,
        notify: bool = True,
    ) -> set[tuple[int, str, int]]:
        return await self._claims.report(worker_id, outcomes, logs, notify=notify)

    async def reported_outcomes(self, dag_ids: Collection[str], limit: int) -> list[TaskRun]:
        return await self._claims.reported_outcomes(dag_ids, limit)

    async def reap(self) -> list[TaskRun]:
        return await self._claims.reap()

    async def lease_due(self) -> timedelta | None:
        return await self._claims.lease_due()

    async def workers(self) -> list[WorkerInfo]:
        return await self._claims.workers()


#: The most task runs one statement of a commit writes.
COMMIT_CHUNK = 50_000


def _count(status: str) -> int:
    """The row count of a command status such as ``DELETE 12``."""
    return int(status.rsplit(" ", 1)[-1])


def _leased(
    task_runs: dict[tuple[int, str, int], TaskRun], claim: LocalClaim
) -> tuple[list[bool], set[tuple[int, str, int]]]:
    """Which rows of ``task_runs`` (in order) are the ``scheduled`` rows of
    ``claim.fresh``, and their keys."""
    leased = [False] * len(task_runs)
    fresh = claim.fresh
    found: set[tuple[int, str, int]] = set()
    if not fresh:
        return leased, found
    scheduled = TaskStatus.scheduled
    for j, (key, tr) in enumerate(task_runs.items()):
        if key in fresh and tr.status is scheduled:
            leased[j] = True
            found.add(key)
            if len(found) == len(fresh):
                break
    return leased, found


def _leased_first(
    task_rows: list[TaskRun], leased: list[bool], fresh: set[tuple[int, str, int]]
) -> tuple[list[TaskRun], list[bool], set[tuple[int, str, int]]]:
    """For a commit sent in chunks: the rows to lease first, so that the first
    statement (the one that claims) holds them; those past it are left scheduled."""
    rows = [tr for tr, lease in zip(task_rows, leased, strict=True) if lease]
    n = min(len(rows), COMMIT_CHUNK)
    rows += [tr for tr, lease in zip(task_rows, leased, strict=True) if not lease]
    if n < len(fresh):
        fresh = {tr.key for tr in rows[:n]}
    return rows, [True] * n + [False] * (len(rows) - n), fresh


def _commit_arguments(
    runs: Collection[DagRun], task_runs: Collection[TaskRun], logs: Collection[LogRecord]
) -> list[tuple[Any, ...]]:
    """Transpose the rows of one commit into the column arrays that COMMIT unnests,
    leaving out the kinds that have no rows. Everything is checked before anything is
    sent: bad input raises with nothing written."""
    args: list[tuple[Any, ...]] = []
    if runs:
        for run in runs:
            check_member(run.status, RUN_STATUSES, f"status of run {run.id}")
            check_member(run.trigger, RUN_TRIGGERS, f"trigger of run {run.id}")
        args += zip(
            *[(r.id, r.status, r.trigger, r.started_at, r.finished_at, r.note) for r in runs],
            strict=True,
        )
    if task_runs:
        for tr in task_runs:
            if tr.status not in TASK_STATUSES or tr.reason not in ATTEMPT_REASONS:
                where = f"task {tr.task_id!r} attempt {tr.attempt} of run {tr.run_id}"
                check_member(tr.status, TASK_STATUSES, f"status of {where}")
                check_member(tr.reason, ATTEMPT_REASONS, f"reason of {where}")
        args += zip(
            *[
                (
                    tr.run_id,
                    tr.task_id,
                    tr.attempt,
                    tr.status,
                    tr.reason,
                    tr.scheduled_at,
                    tr.started_at,
                    tr.finished_at,
                    None if tr.error is None else text(tr.error),
                    None if tr.result is None else result_json(tr),
                )
                for tr in task_runs
            ],
            strict=True,
        )
    if logs:
        args += zip(
            *[(r.run_id, r.task_id, r.attempt, r.time, r.level, text(r.message)) for r in logs],
            strict=True,
        )
    return args
