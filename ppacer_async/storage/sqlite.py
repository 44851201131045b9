"""SQLite storage on aiosqlite: the default back end, for one scheduler process.

The database runs in WAL mode so that the command line can read and write while a scheduler
serves the same file from another process. Every storage method runs as one function in
aiosqlite's connection thread: one thread hop per method, and a transaction that a cancelled
caller can never leave half-open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import aiosqlite
import anyio
import attrs

from .._definition import stored_definition
from .._enums import (
    DagRunStatus,
    RunTrigger,
    ScheduleEventKind,
    prunable_statuses,
)
from .._exceptions import (
    DagNotFound,
    SchemaVersionError,
    StorageError,
)
from .._structures import (
    Changes,
    DagInfo,
    DagRun,
    LogRecord,
    NewRun,
    PoolUsage,
    PruneCounts,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
    WorkerInfo,
)
from ..abc import Storage
from . import _sqlite_prune
from . import _sqlite_work as q
from ._codec import (
    EVENT_KINDS,
    RUN_TRIGGERS,
    SCHEDULE_KINDS,
    SCHEDULED_TRIGGERS,
    check_member,
    dt,
    opt_dt,
    ts,
)
from ._migrations import Migration, migrations, read_migrations, schema_version
from ._sqlite_files import check_files, lock_file, unlock_file

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "SQLiteStorage",
    "apply_migrations",
    "list_migrations",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_SECONDS = 5.0
#: How often a serving scheduler looks for changes made by other processes.
EXTERNAL_POLL_SECONDS = 0.25


# -- migrations --------------------------------------------------------------------------


def list_migrations() -> tuple[Migration, ...]:
    """Read the SQLite migrations shipped with the package, oldest first.

    :raises RuntimeError: the files are not numbered 0001, 0002, ... without gaps.
    """
    return read_migrations("sqlite")


#: Every SQLite migration, oldest first; a new database gets all of them.
MIGRATIONS = migrations("sqlite")
#: The schema version this program creates and understands.
SCHEMA_VERSION = schema_version("sqlite")


def apply_migrations(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    label: str = "the database",
) -> int:
    """Bring a database up to the last of ``migrations``, one transaction per migration.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Safe against another
    process migrating the same file at the same time: the version is re-read under the
    write lock before each step.

    :param label: how messages name the database (its path).
    :return: the schema version after migrating.
    :raises SchemaVersionError: the database is newer than the last migration.
    """
    latest = migrations[-1].version if migrations else 0
    current = _schema_version(conn)
    _check_not_newer(current, latest, label)
    while current < latest:
        with q.write_transaction(conn):
            current = _schema_version(conn)
            _check_not_newer(current, latest, label)
            pending = [m for m in migrations if m.version > current]
            if not pending:
                break
            step = pending[0]
            for statement in step.statements():
                conn.execute(statement)
            conn.execute(q.RECORD_VERSION, (step.version, ts(datetime.now(UTC))))
            current = step.version
    return current


def _schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database; 0 when it has no ``schema_version`` table."""
    exists = conn.execute(q.HAS_SCHEMA_VERSION).fetchone()
    if exists is None:
        return 0
    (version,) = conn.execute(q.CURRENT_VERSION).fetchone()
    return int(version)


def _check_not_newer(current: int, latest: int, label: str) -> None:
    if current > latest:
        raise SchemaVersionError(
            f"{label} has schema version {current}, but this ppacer-async knows versions "
            f"up to {latest}; upgrade ppacer-async (pip install -U ppacer-async) to use it"
        )


def _inspect_existing_file(path: str) -> None:
    """Refuse a file that is not a ppacer-async database, without changing a byte of it.

    A file that does not exist or is empty is fine: it becomes a new database.
    """
    try:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    if not header:
        return
    if header != SQLITE_HEADER:
        raise StorageError(
            f"{path} is not a SQLite database; point --storage at a new file "
            "or a ppacer-async database"
        )
    # "immutable" reads without locks and never creates -wal/-shm/-journal files; it is
    # only right when no -wal file holds newer pages, otherwise a plain read-only open
    # (which reuses the existing sidecars) sees them.
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    if not os.path.exists(path + "-wal"):
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            names = {name for (name,) in conn.execute(q.TABLE_NAMES)}
            version = _schema_version(conn) if "schema_version" in names else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(
            f"{path} cannot be read as a SQLite database ({exc}); point --storage at a new "
            "file or a ppacer-async database"
        ) from exc
    if version is None and names:
        shown = ", ".join(sorted(names)[:5])
        raise StorageError(
            f"{path} is a SQLite database but not a ppacer-async one (it holds {shown} and "
            "no schema_version table); point --storage at a new file or a ppacer-async database"
        )
    if version is not None:
        _check_not_newer(version, MIGRATIONS[-1].version, path)


def _prepare(conn: sqlite3.Connection, label: str) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # A new file: pages freed by pruning go back to the file system (incremental
        # vacuum). Only possible before the first table; older files need one VACUUM.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL loses no integrity on power loss, only the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Read the module attribute at call time, so tests can add migrations.
    apply_migrations(conn, MIGRATIONS, label=label)


# -- the storage ---------------------------------------------------------------------------


class _ConnectionThread(Protocol):
    """The part of ``aiosqlite.Connection`` that runs a function in its thread.

    aiosqlite has no public API for this; ``_execute`` is what all its own methods use.
    ``tests/test_sqlite_storage.py`` checks it is still there.
    """

    @property
    def _conn(self) -> sqlite3.Connection: ...

    def _execute(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Awaitable[_T]: ...


def _open_failure(path: str, exc: sqlite3.Error) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"cannot open the SQLite database {path}: the directory {folder} does not exist"
    return f"cannot open the SQLite database {path}: {exc}"


def _check_path(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"path must be a non-empty file name, got {value!r}")


def _version_on_disk(path: str) -> int | None:
    """The schema version of the file at ``path``, read-only; ``None`` when there is no
    database there yet; ``-1`` when it cannot be told (opening says what is wrong)."""
    file = Path(path)
    if not file.exists() or file.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute(q.CURRENT_VERSION).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return -1
    return int(row[0])


@attrs.define(eq=False, kw_only=True)
class SQLiteStorage(Storage):
    """Storage in one SQLite file, served by one scheduler process at a time.

    :param path: the database file; created with the schema when it does not exist.
    """

    creates_runs_in_commit = True

    path: str = attrs.field(validator=_check_path)
    _db: aiosqlite.Connection | None = attrs.field(init=False, default=None, repr=False)
    _lock_fd: int | None = attrs.field(init=False, default=None, repr=False)
    _data_version: int | None = attrs.field(init=False, default=None, repr=False)

    async def _call(
        self,
        action: str,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(connection, *args)`` in the connection thread, as one unit."""
        db = self._db
        if db is None:
            raise StorageError(
                f"{self!r} is not open; call 'await storage.open()' or use 'async with storage:'"
            )
        thread = cast(_ConnectionThread, db)
        try:
            return await thread._execute(fn, thread._conn, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            hint = ""
            if "locked" in str(exc) or "busy" in str(exc):
                hint = (
                    f"; another process held {self.path} for more than {BUSY_TIMEOUT_SECONDS:g} s"
                )
            raise StorageError(f"SQLite could not {action} in {self.path}: {exc}{hint}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite could not {action} in {self.path}: {exc}") from exc

    async def __aenter__(self) -> SQLiteStorage:
        await self.open()
        return self

    async def open(self) -> None:
        if self._db is not None:
            return
        await anyio.to_thread.run_sync(check_files, self.path)
        await anyio.to_thread.run_sync(_inspect_existing_file, self.path)
        connection = aiosqlite.connect(
            self.path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
        )
        try:
            db = await connection
        except sqlite3.Error as exc:
            # aiosqlite stops its thread after a failed connect without waiting for it;
            # wait here, or the thread later reports to an event loop that may be closed.
            thread: threading.Thread | None = getattr(connection, "_thread", None)
            if thread is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(thread.join)
            raise StorageError(_open_failure(self.path, exc)) from exc
        self._db = db
        try:
            await self._call("prepare the database", _prepare, self.path)
            self._data_version = await self._read_data_version()
        except BaseException:
            self._db = None
            with anyio.CancelScope(shield=True):
                await db.close()
            raise

    async def schema_version_on_disk(self) -> int | None:
        return await anyio.to_thread.run_sync(_version_on_disk, self.path)

    async def wait_for_external_change(self) -> None:
        """Poll ``PRAGMA data_version``, which moves only when another connection (the
        command line, another process) commits: cheap enough to run every
        ``EXTERNAL_POLL_SECONDS`` on an idle scheduler."""
        while True:
            await anyio.sleep(EXTERNAL_POLL_SECONDS)
            version = await self._read_data_version()
            if version != self._data_version:
                self._data_version = version
                return

    async def _read_data_version(self) -> int | None:
        row = await self._call("check for changes", q.fetch_one, q.DATA_VERSION, ())
        return None if row is None else int(row[0])

    async def close(self) -> None:
        db, self._db = self._db, None
        lock_fd, self._lock_fd = self._lock_fd, None
        try:
            if db is not None:
                with anyio.CancelScope(shield=True):
                    await db.close()
        finally:
            if lock_fd is not None:
                unlock_file(lock_fd)

    async def acquire_scheduler_lock(self) -> None:
        if self._lock_fd is None:
            check_files(self.path)  # one name, so one lock file (see _sqlite_files)
            self._lock_fd = lock_file(self.path)

    # -- DAG definitions -----------------------------------------------------------------

    async def sync_dag(
        self,
        dag_id: str,
        definition_hash: str,
        definition: bytes | Mapping[str, Any],
        now: datetime,
    ) -> int:
        stored = stored_definition(definition)
        return await self._call("record DAG", q.sync_dag, dag_id, definition_hash, stored, ts(now))

    async def get_dag(self, dag_id: str) -> DagInfo | None:
        row = await self._call(
            "read DAG",
            q.fetch_one,
            q.GET_DAG,
            (dag_id,),
        )
        return None if row is None else q.dag_from_row(row)

    async def list_dags(self) -> list[DagInfo]:
        rows = await self._call(
            "list DAGs",
            q.fetch,
            q.LIST_DAGS,
            (),
        )
        return [q.dag_from_row(row) for row in rows]

    async def set_paused(
        self, dag_id: str, paused: bool, resume_after: datetime | None = None
    ) -> None:
        changed = await self._call(
            "pause DAG",
            q.run_statement,
            q.SET_PAUSED,
            (int(bool(paused)), None if resume_after is None else ts(resume_after), dag_id),
        )
        if not changed:
            raise DagNotFound(f"DAG {dag_id!r} is not recorded in this storage")

    # -- runs ----------------------------------------------------------------------------

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
        new = NewRun(
            dag_id=dag_id,
            logical_time=logical_time,
            trigger=trigger,
            params=params,
            dag_version=dag_version,
            created_at=created_at,
            event=event,
        )
        row, event_row = _new_run_rows(new)
        run_id = await self._call("create a run", q.create_run, row, event_row)
        return None if run_id is None else _stored_run(run_id, row)

    async def create_runs_and_commit(
        self, runs: Sequence[NewRun], changes: Changes
    ) -> list[DagRun]:
        rows = [_new_run_rows(new) for new in runs]
        ids = await self._call("commit", q.create_runs_and_commit, rows, changes)
        return [_stored_run(run_id, row) for run_id, (row, _) in zip(ids, rows, strict=True)]

    async def record_schedule_event(self, event: ScheduleEvent) -> None:
        check_member(event.kind, EVENT_KINDS, "kind of the schedule event")
        await self._call(
            "record a schedule event",
            q.run_statement,
            q.INSERT_SCHEDULE_EVENT,
            (
                event.dag_id,
                ts(event.logical_time),
                event.kind,
                ts(event.created_at),
                event.run_id,
            ),
        )

    async def record_schedule_events(self, events: Sequence[ScheduleEvent]) -> None:
        for event in events:
            check_member(event.kind, EVENT_KINDS, "kind of the schedule event")
        await self._call(
            "record schedule events",
            q.run_many,
            q.INSERT_SCHEDULE_EVENT,
            [(e.dag_id, ts(e.logical_time), e.kind, ts(e.created_at), e.run_id) for e in events],
        )

    async def last_schedule_point(self, dag_id: str) -> datetime | None:
        row = await self._call(
            "read the last schedule point",
            q.fetch_one,
            q.LAST_SCHEDULE_POINT,
            (dag_id, *SCHEDULE_KINDS),
        )
        return None if row is None else opt_dt(row[0])

    async def schedule_events(self, dag_id: str, limit: int = 100) -> list[ScheduleEvent]:
        rows = await self._call(
            "read schedule events",
            q.fetch,
            q.SCHEDULE_EVENTS,
            (dag_id, limit),
        )
        return [q.event_from_row(row) for row in rows]

    async def commit(self, changes: Changes) -> None:
        if changes:
            await self._call("commit", q.commit, changes)

    async def get_run(self, run_id: int) -> DagRun | None:
        row = await self._call("read a run", q.fetch_one, q.GET_RUN, (run_id,))
        return None if row is None else q.run_from_row(row)

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        status: DagRunStatus | None = None,
        since: datetime | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[DagRun]:
        # The indexes on dag_id and on status hold the row id too, so a page after a
        # ``before`` cursor is one index range whatever the size of the table (about
        # 1 ms at 100,000 runs). ``since`` filters while walking ids down: an index on
        # logical_time goes unused here, since the planner prefers to avoid the sort.
        conditions: list[str] = []
        params: list[Any] = []
        if dag_id is not None:
            conditions.append("dag_id = ?")
            params.append(dag_id)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        if since is not None:
            conditions.append("logical_time >= ?")
            params.append(ts(since))
        if before is not None:
            conditions.append("id < ?")
            params.append(before)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._call(
            "list runs",
            q.fetch,
            f"SELECT {q.RUN_COLUMNS} FROM dag_runs{where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [q.run_from_row(row) for row in rows]

    async def active_runs(self) -> list[DagRun]:
        rows = await self._call(
            "list active runs",
            q.fetch,
            q.ACTIVE_RUNS,
            (DagRunStatus.queued, DagRunStatus.running),
        )
        return [q.run_from_row(row) for row in rows]

    async def task_runs(self, run_id: int) -> list[TaskRun]:
        rows = await self._call(
            "read task runs",
            q.fetch,
            q.TASK_RUNS,
            (run_id,),
        )
        return [q.task_run_from_row(row) for row in rows]

    async def logs(
        self,
        run_id: int,
        task_id: str | None = None,
        attempt: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        sql = (
            "SELECT run_id, task_id, attempt, time, level, message FROM task_logs WHERE run_id = ?"
        )
        params: list[Any] = [run_id]
        if task_id is not None:
            sql += " AND task_id = ?"
            params.append(task_id)
        if attempt is not None:
            sql += " AND attempt = ?"
            params.append(attempt)
        params.extend((-1 if limit is None else limit, offset))
        rows = await self._call("read logs", q.fetch, sql + " ORDER BY id LIMIT ? OFFSET ?", params)
        return [q.log_from_row(row) for row in rows]

    async def save_pools(self, pools: Collection[PoolUsage], now: datetime) -> None:
        rows = [(p.name, p.slots, p.used, p.waiting, ts(now)) for p in pools]
        await self._call("record pools", q.save_pools, rows)

    async def pools(self) -> list[PoolUsage]:
        rows = await self._call("read pools", q.fetch, q.POOLS, ())
        return [
            PoolUsage(name=r[0], slots=r[1], used=r[2], waiting=r[3], updated_at=dt(r[4]))
            for r in rows
        ]

    # -- serving processes -----------------------------------------------------------

    async def register_worker(
        self, worker_id: str, role: str, now: datetime, dag_ids: Collection[str] = ()
    ) -> None:
        renewed = ts(datetime.now(UTC))
        params = (
            worker_id,
            os.uname().nodename,
            os.getpid(),
            role,
            q.json_text(list(dag_ids), "the DAG ids"),
            ts(now),
            renewed,
            ts(datetime.now(UTC) + self.lease),
        )
        await self._call("record this process", q.register_worker, params, renewed)

    async def unregister_worker(self, worker_id: str) -> None:
        await self._call("forget this process", q.run_statement, q.UNREGISTER_WORKER, (worker_id,))

    async def workers(self) -> list[WorkerInfo]:
        rows = await self._call(
            "list the serving processes", q.fetch, q.WORKERS, (ts(datetime.now(UTC)),)
        )
        return [q.worker_from_row(row) for row in rows]

    async def counts(self) -> StorageCounts:
        row = await self._call(
            "count rows",
            q.fetch_one,
            q.COUNTS,
            (),
        )
        assert row is not None
        return StorageCounts(
            schema_version=row[0],
            dags=row[1],
            dag_runs=row[2],
            task_runs=row[3],
            task_logs=row[4],
            schedule_events=row[5],
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
        return await self._call(
            "prune",
            _sqlite_prune.prune,
            ts(before),
            dag_id,
            statuses,
            [str(k) for k in SCHEDULE_KINDS],
            limit,
        )

    async def prunable(
        self, before: datetime, *, dag_id: str | None = None, keep_failed: bool = False
    ) -> PruneCounts:
        statuses = [str(s) for s in prunable_statuses(keep_failed=keep_failed)]
        return await self._call(
            "count what pruning would delete",
            _sqlite_prune.prunable,
            ts(before),
            dag_id,
            statuses,
            [str(k) for k in SCHEDULE_KINDS],
        )

    async def reclaim_space(self) -> bool:
        return await self._call("reclaim free pages", _sqlite_prune.reclaim_space)

    async def vacuum(self) -> None:
        """Switch the file to incremental vacuum and compact it: rewrites the whole
        file, holding the write lock meanwhile (run it while no scheduler serves)."""
        await self._call("vacuum", _sqlite_prune.vacuum)


def _new_run_rows(new: NewRun) -> tuple[tuple[Any, ...], tuple[str, str, str, str] | None]:
    """The ``dag_runs`` row of a new run and its schedule event's, checked."""
    check_member(new.trigger, RUN_TRIGGERS, "trigger")
    if new.event is not None:
        check_member(new.event, EVENT_KINDS, "event")
    logical = ts(new.logical_time)
    created = ts(new.created_at)
    params_text = q.json_text(new.params, f"params of a run of DAG {new.dag_id!r}")
    row = (
        new.dag_id,
        logical,
        DagRunStatus.queued,
        new.trigger,
        int(new.trigger in SCHEDULED_TRIGGERS),
        params_text,
        new.dag_version,
        created,
    )
    event_row = None if new.event is None else (new.dag_id, logical, new.event, created)
    return row, event_row


def _stored_run(run_id: int, row: tuple[Any, ...]) -> DagRun:
    """The run inserted from ``row`` (``_new_run_rows``) with id ``run_id``."""
    return DagRun(
        id=run_id,
        dag_id=row[0],
        logical_time=dt(row[1]),
        status=DagRunStatus.queued,
        trigger=RunTrigger(row[3]),
        params=json.loads(row[5]),
        dag_version=row[6],
        created_at=dt(row[7]),
    )
