"""SQLite storage on aiosqlite: the default back end, for one scheduler process.

The database runs in WAL mode so that the command line can read and write while a scheduler
serves the same file from another process. Every storage method runs as one function in
aiosqlite's connection thread: one thread hop per method, and a transaction that a cancelled
caller can never leave half-open.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import aiosqlite
import anyio
import attrs

from .._enums import (
    AttemptReason,
    DagRunStatus,
    RunTrigger,
    ScheduleEventKind,
    TaskStatus,
)
from .._exceptions import (
    DagNotFound,
    ResultNotStorable,
    SchemaVersionError,
    StorageError,
)
from .._structures import (
    Changes,
    DagInfo,
    DagRun,
    LogRecord,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
    WorkerInfo,
)
from .._time import to_utc
from ..abc import Storage
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

_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
_SCHEDULED_TRIGGERS = frozenset({RunTrigger.schedule, RunTrigger.catchup, RunTrigger.backfill})
_SCHEDULE_KINDS = (
    ScheduleEventKind.regular,
    ScheduleEventKind.caught_up,
    ScheduleEventKind.skipped,
)
_RUN_STATUSES = frozenset(DagRunStatus)
_RUN_TRIGGERS = frozenset(RunTrigger)
_TASK_STATUSES = frozenset(TaskStatus)
_ATTEMPT_REASONS = frozenset(AttemptReason)
_EVENT_KINDS = frozenset(ScheduleEventKind)
_JSON = json.JSONEncoder(separators=(",", ":"))


# -- migrations --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Migration:
    """One numbered schema step, from ``sql/sqlite/NNNN_name.sql``."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The SQL statements of the file, in order (a ``;`` inside a string or a trigger
        body does not split a statement)."""
        statements: list[str] = []
        buffer = ""
        pieces = self.sql.split(";")
        for index, piece in enumerate(pieces):
            buffer += piece
            if index < len(pieces) - 1:
                buffer += ";"
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        if buffer.strip():
            # Trailing comments: harmless; an unfinished statement fails loudly when run.
            statements.append(buffer.strip())
        return statements


def list_migrations() -> tuple[Migration, ...]:
    """Read the SQLite migrations shipped with the package, oldest first.

    :raises RuntimeError: the files are not numbered 1, 2, 3, ... without gaps.
    """
    folder = resources.files("ppacer_async.storage") / "sql" / "sqlite"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is not None:
            found.append(
                Migration(
                    version=int(match[1]), name=entry.name, sql=entry.read_text(encoding="utf-8")
                )
            )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"SQLite migrations must be numbered 1, 2, 3, ...; found {versions}")
    return tuple(found)


#: Every SQLite migration, oldest first; a new database gets all of them.
MIGRATIONS = list_migrations()
#: The schema version this program creates and understands.
SCHEMA_VERSION = MIGRATIONS[-1].version


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
        with _write_transaction(conn):
            current = _schema_version(conn)
            _check_not_newer(current, latest, label)
            pending = [m for m in migrations if m.version > current]
            if not pending:
                break
            step = pending[0]
            for statement in step.statements():
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (step.version, _ts(datetime.now(UTC))),
            )
            current = step.version
    return current


def _schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database; 0 when it has no ``schema_version`` table."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    (version,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
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
            names = {
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                )
            }
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


# -- conversions -------------------------------------------------------------------------


def _ts(moment: datetime) -> str:
    """A tz-aware datetime as fixed-width UTC text, so that text order is time order."""
    if moment.tzinfo is not UTC:
        moment = to_utc(moment)
    return moment.isoformat(timespec="microseconds")


def _ts_memo(moment: datetime, memo: dict[datetime, str]) -> str:
    text = memo.get(moment)
    if text is None:
        text = memo[moment] = _ts(moment)
    return text


def _opt_ts(moment: datetime | None) -> str | None:
    return None if moment is None else _ts(moment)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json(value: Any, what: str) -> str:
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc


def _check_member(value: object, members: frozenset[Any], what: str) -> None:
    if value not in members:
        allowed = ", ".join(sorted(str(m) for m in members))
        raise ValueError(f"{what} is {value!r}; expected one of: {allowed}")


_RUN_COLUMNS = (
    "id, dag_id, logical_time, status, trigger, params, dag_version, "
    "created_at, started_at, finished_at"
)
_TASK_COLUMNS = (
    "run_id, task_id, attempt, status, reason, scheduled_at, started_at, finished_at, error, result"
)
_DAG_COLUMNS = (
    "d.dag_id, v.version, v.definition_hash, v.definition, d.paused, v.created_at, d.resume_after"
)


def _run_from_row(row: tuple[Any, ...]) -> DagRun:
    return DagRun(
        id=row[0],
        dag_id=row[1],
        logical_time=_dt(row[2]),
        status=DagRunStatus(row[3]),
        trigger=RunTrigger(row[4]),
        params=json.loads(row[5]),
        dag_version=row[6],
        created_at=_dt(row[7]),
        started_at=_opt_dt(row[8]),
        finished_at=_opt_dt(row[9]),
    )


def _task_run_from_row(row: tuple[Any, ...]) -> TaskRun:
    return TaskRun(
        run_id=row[0],
        task_id=row[1],
        attempt=row[2],
        status=TaskStatus(row[3]),
        reason=AttemptReason(row[4]),
        scheduled_at=_opt_dt(row[5]),
        started_at=_opt_dt(row[6]),
        finished_at=_opt_dt(row[7]),
        error=row[8],
        result=None if row[9] is None else json.loads(row[9]),
    )


def _dag_from_row(row: tuple[Any, ...]) -> DagInfo:
    return DagInfo(
        dag_id=row[0],
        version=row[1],
        definition_hash=row[2],
        definition=json.loads(row[3]),
        paused=bool(row[4]),
        created_at=_dt(row[5]),
        resume_after=_opt_dt(row[6]),
    )


def _event_from_row(row: tuple[Any, ...]) -> ScheduleEvent:
    return ScheduleEvent(
        dag_id=row[0],
        logical_time=_dt(row[1]),
        kind=ScheduleEventKind(row[2]),
        created_at=_dt(row[3]),
        run_id=row[4],
    )


def _log_from_row(row: tuple[Any, ...]) -> LogRecord:
    return LogRecord(
        run_id=row[0],
        task_id=row[1],
        attempt=row[2],
        time=_dt(row[3]),
        level=row[4],
        message=row[5],
    )


# -- work done in the connection thread ------------------------------------------------


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A transaction that takes the write lock up front: a deferred one that starts
    reading and then writes can fail with "database is locked" without waiting."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _prepare(conn: sqlite3.Connection, label: str) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL loses no integrity on power loss, only the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Read the module attribute at call time, so tests can add migrations.
    apply_migrations(conn, MIGRATIONS, label=label)


def _sync_dag(
    conn: sqlite3.Connection, dag_id: str, definition_hash: str, definition: str, now: str
) -> int:
    with _write_transaction(conn):
        row = conn.execute(
            "SELECT version, definition_hash FROM dag_versions WHERE dag_id = ? "
            "ORDER BY version DESC LIMIT 1",
            (dag_id,),
        ).fetchone()
        if row is not None and row[1] == definition_hash:
            return int(row[0])
        version = 1 if row is None else int(row[0]) + 1
        conn.execute(
            "INSERT INTO dags (dag_id, paused, created_at) VALUES (?, 0, ?) "
            "ON CONFLICT (dag_id) DO NOTHING",
            (dag_id, now),
        )
        conn.execute(
            "INSERT INTO dag_versions (dag_id, version, definition_hash, definition, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (dag_id, version, definition_hash, definition, now),
        )
        return version


def _create_run(
    conn: sqlite3.Connection,
    row: tuple[Any, ...],
    event: tuple[str, str, str, str] | None,
) -> int | None:
    with _write_transaction(conn):
        cursor = conn.execute(
            "INSERT INTO dag_runs (dag_id, logical_time, status, trigger, scheduled, params, "
            "dag_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (dag_id, logical_time) WHERE scheduled = 1 DO NOTHING",
            row,
        )
        if cursor.rowcount == 0:
            return None
        run_id = cursor.lastrowid
        if event is not None:
            conn.execute(
                "INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (*event, run_id),
            )
        return run_id


_UPDATE_RUN = (
    "UPDATE dag_runs SET status = ?, trigger = ?, started_at = ?, finished_at = ? WHERE id = ?"
)
_UPSERT_TASK_RUN = (
    f"INSERT INTO task_runs ({_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET "
    "status = excluded.status, reason = excluded.reason, "
    "scheduled_at = excluded.scheduled_at, started_at = excluded.started_at, "
    "finished_at = excluded.finished_at, error = excluded.error, result = excluded.result"
)
_INSERT_LOG = (
    "INSERT INTO task_logs (run_id, task_id, attempt, time, level, message) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _commit(conn: sqlite3.Connection, changes: Changes) -> None:
    # Everything is converted and checked before the transaction starts: bad input
    # raises with nothing written.
    run_rows = []
    for run in changes.dag_runs:
        _check_member(run.status, _RUN_STATUSES, f"status of run {run.id}")
        _check_member(run.trigger, _RUN_TRIGGERS, f"trigger of run {run.id}")
        run_rows.append(
            (run.status, run.trigger, _opt_ts(run.started_at), _opt_ts(run.finished_at), run.id)
        )
    task_rows = []
    memo: dict[datetime, str] = {}  # attempts made ready together share scheduled_at
    for tr in changes.task_runs:
        scheduled = tr.scheduled_at
        if tr.status not in _TASK_STATUSES or tr.reason not in _ATTEMPT_REASONS:
            where = f"task {tr.task_id!r} attempt {tr.attempt} of run {tr.run_id}"
            _check_member(tr.status, _TASK_STATUSES, f"status of {where}")
            _check_member(tr.reason, _ATTEMPT_REASONS, f"reason of {where}")
        result = tr.result
        if result is not None:
            try:
                result = _JSON.encode(result)
            except (TypeError, ValueError) as exc:
                raise ResultNotStorable(
                    f"the result of task {tr.task_id!r} (run {tr.run_id}, attempt "
                    f"{tr.attempt}) cannot be stored as JSON: {exc}; return JSON values "
                    "(dict, list, str, int, float, bool, None)"
                ) from exc
        task_rows.append(
            (
                tr.run_id,
                tr.task_id,
                tr.attempt,
                tr.status,
                tr.reason,
                None if scheduled is None else _ts_memo(scheduled, memo),
                None if tr.started_at is None else _ts(tr.started_at),
                None if tr.finished_at is None else _ts(tr.finished_at),
                tr.error,
                result,
            )
        )
    log_rows = [
        (r.run_id, r.task_id, r.attempt, _ts(r.time), r.level, r.message) for r in changes.logs
    ]
    with _write_transaction(conn):
        if run_rows:
            updated = conn.executemany(_UPDATE_RUN, run_rows).rowcount
            if updated != len(run_rows):
                wanted = sorted({row[-1] for row in run_rows})
                marks = ", ".join("?" * len(wanted))
                found = {
                    row_id
                    for (row_id,) in conn.execute(
                        f"SELECT id FROM dag_runs WHERE id IN ({marks})", wanted
                    )
                }
                missing = [run_id for run_id in wanted if run_id not in found]
                raise StorageError(
                    f"commit updates DAG runs that do not exist: {missing}; nothing was written"
                )
        try:
            if task_rows:
                conn.executemany(_UPSERT_TASK_RUN, task_rows)
            if log_rows:
                conn.executemany(_INSERT_LOG, log_rows)
        except sqlite3.IntegrityError as exc:
            raise StorageError(
                f"commit refers to a DAG run that does not exist ({exc}); nothing was written"
            ) from exc


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
    return row


def _register_worker(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> None:
    """Record or renew a serving process, forgetting those that expired (crashed)."""
    with _write_transaction(conn):
        conn.execute("DELETE FROM workers WHERE expires_at < ?", (params[6],))
        conn.execute(sql, params)


def _run_statement(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Run one statement (its own transaction) and return the number of changed rows."""
    return conn.execute(sql, params).rowcount


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
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
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
        row = await self._call("check for changes", _fetch_one, "PRAGMA data_version", ())
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
        self, dag_id: str, definition_hash: str, definition: dict[str, Any], now: datetime
    ) -> int:
        text = _json(definition, f"the definition of DAG {dag_id!r}")
        return await self._call("record DAG", _sync_dag, dag_id, definition_hash, text, _ts(now))

    async def get_dag(self, dag_id: str) -> DagInfo | None:
        row = await self._call(
            "read DAG",
            _fetch_one,
            f"SELECT {_DAG_COLUMNS} FROM dags AS d JOIN dag_versions AS v "
            "ON v.dag_id = d.dag_id WHERE d.dag_id = ? ORDER BY v.version DESC LIMIT 1",
            (dag_id,),
        )
        return None if row is None else _dag_from_row(row)

    async def list_dags(self) -> list[DagInfo]:
        rows = await self._call(
            "list DAGs",
            _fetch,
            f"SELECT {_DAG_COLUMNS} FROM dags AS d JOIN dag_versions AS v "
            "ON v.dag_id = d.dag_id AND v.version = "
            "(SELECT MAX(version) FROM dag_versions WHERE dag_id = d.dag_id) "
            "ORDER BY d.dag_id",
            (),
        )
        return [_dag_from_row(row) for row in rows]

    async def set_paused(
        self, dag_id: str, paused: bool, resume_after: datetime | None = None
    ) -> None:
        changed = await self._call(
            "pause DAG",
            _run_statement,
            "UPDATE dags SET paused = ?, resume_after = ? WHERE dag_id = ?",
            (int(bool(paused)), None if resume_after is None else _ts(resume_after), dag_id),
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
        _check_member(trigger, _RUN_TRIGGERS, "trigger")
        if event is not None:
            _check_member(event, _EVENT_KINDS, "event")
        logical = _ts(logical_time)
        created = _ts(created_at)
        params_text = _json(params, f"params of a run of DAG {dag_id!r}")
        row = (
            dag_id,
            logical,
            DagRunStatus.queued,
            trigger,
            int(trigger in _SCHEDULED_TRIGGERS),
            params_text,
            dag_version,
            created,
        )
        event_row = None if event is None else (dag_id, logical, event, created)
        run_id = await self._call("create a run", _create_run, row, event_row)
        if run_id is None:
            return None
        return DagRun(
            id=run_id,
            dag_id=dag_id,
            logical_time=_dt(logical),
            status=DagRunStatus.queued,
            trigger=RunTrigger(trigger),
            params=json.loads(params_text),
            dag_version=dag_version,
            created_at=_dt(created),
        )

    async def record_schedule_event(self, event: ScheduleEvent) -> None:
        _check_member(event.kind, _EVENT_KINDS, "kind of the schedule event")
        await self._call(
            "record a schedule event",
            _run_statement,
            "INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                event.dag_id,
                _ts(event.logical_time),
                event.kind,
                _ts(event.created_at),
                event.run_id,
            ),
        )

    async def last_schedule_point(self, dag_id: str) -> datetime | None:
        row = await self._call(
            "read the last schedule point",
            _fetch_one,
            "SELECT MAX(logical_time) FROM schedule_events WHERE dag_id = ? AND kind IN (?, ?, ?)",
            (dag_id, *_SCHEDULE_KINDS),
        )
        return None if row is None else _opt_dt(row[0])

    async def schedule_events(self, dag_id: str, limit: int = 100) -> list[ScheduleEvent]:
        rows = await self._call(
            "read schedule events",
            _fetch,
            "SELECT dag_id, logical_time, kind, created_at, run_id FROM schedule_events "
            "WHERE dag_id = ? ORDER BY logical_time DESC, id DESC LIMIT ?",
            (dag_id, limit),
        )
        return [_event_from_row(row) for row in rows]

    async def commit(self, changes: Changes) -> None:
        if changes:
            await self._call("commit", _commit, changes)

    async def get_run(self, run_id: int) -> DagRun | None:
        row = await self._call(
            "read a run", _fetch_one, f"SELECT {_RUN_COLUMNS} FROM dag_runs WHERE id = ?", (run_id,)
        )
        return None if row is None else _run_from_row(row)

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
            params.append(_ts(since))
        if before is not None:
            conditions.append("id < ?")
            params.append(before)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._call(
            "list runs",
            _fetch,
            f"SELECT {_RUN_COLUMNS} FROM dag_runs{where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [_run_from_row(row) for row in rows]

    async def active_runs(self) -> list[DagRun]:
        rows = await self._call(
            "list active runs",
            _fetch,
            f"SELECT {_RUN_COLUMNS} FROM dag_runs WHERE status IN (?, ?) ORDER BY id",
            (DagRunStatus.queued, DagRunStatus.running),
        )
        return [_run_from_row(row) for row in rows]

    async def task_runs(self, run_id: int) -> list[TaskRun]:
        rows = await self._call(
            "read task runs",
            _fetch,
            f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? ORDER BY task_id, attempt",
            (run_id,),
        )
        return [_task_run_from_row(row) for row in rows]

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
        rows = await self._call("read logs", _fetch, sql + " ORDER BY id LIMIT ? OFFSET ?", params)
        return [_log_from_row(row) for row in rows]

    # -- serving processes -----------------------------------------------------------

    async def register_worker(
        self, worker_id: str, role: str, now: datetime, dag_ids: Collection[str] = ()
    ) -> None:
        renewed = datetime.now(UTC)
        await self._call(
            "record this process",
            _register_worker,
            "INSERT INTO workers (id, host, pid, role, dag_ids, started_at, renewed_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "renewed_at = excluded.renewed_at, expires_at = excluded.expires_at, "
            "dag_ids = excluded.dag_ids",
            (
                worker_id,
                os.uname().nodename,
                os.getpid(),
                role,
                _json(list(dag_ids), "the DAG ids"),
                _ts(now),
                _ts(renewed),
                _ts(renewed + self.lease),
            ),
        )

    async def unregister_worker(self, worker_id: str) -> None:
        await self._call(
            "forget this process", _run_statement, "DELETE FROM workers WHERE id = ?", (worker_id,)
        )

    async def workers(self) -> list[WorkerInfo]:
        rows = await self._call(
            "list the serving processes",
            _fetch,
            "SELECT id, host, pid, role, started_at, renewed_at, expires_at, dag_ids "
            "FROM workers WHERE expires_at >= ? ORDER BY id",
            (_ts(datetime.now(UTC)),),
        )
        return [
            WorkerInfo(
                id=row[0],
                host=row[1],
                pid=row[2],
                role=row[3],
                started_at=_dt(row[4]),
                renewed_at=_dt(row[5]),
                expires_at=_dt(row[6]),
                dag_ids=json.loads(row[7]),
            )
            for row in rows
        ]

    async def counts(self) -> StorageCounts:
        row = await self._call(
            "count rows",
            _fetch_one,
            "SELECT (SELECT COALESCE(MAX(version), 0) FROM schema_version), "
            "(SELECT COUNT(*) FROM dags), (SELECT COUNT(*) FROM dag_runs), "
            "(SELECT COUNT(*) FROM task_runs), (SELECT COUNT(*) FROM task_logs), "
            "(SELECT COUNT(*) FROM schedule_events)",
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
