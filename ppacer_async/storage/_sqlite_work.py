"""The SQLite storage's work in its connection thread: named statements, rows to
records, and the transactions of a sync, a new run and a commit. Everything here runs
synchronously on a ``sqlite3.Connection``; ``sqlite.py`` runs it in aiosqlite's thread."""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .._enums import AttemptReason, DagRunStatus, RunTrigger, ScheduleEventKind, TaskStatus
from .._exceptions import StorageError
from .._structures import Changes, DagInfo, DagRun, LogRecord, ScheduleEvent, TaskRun, WorkerInfo
from ._codec import (
    ATTEMPT_REASONS,
    RUN_STATUSES,
    RUN_TRIGGERS,
    TASK_STATUSES,
    Second,
    check_member,
    compact_json,
    dt,
    opt_dt,
    opt_ts,
    result_json,
    to_json,
    ts,
    ts_by_second,
    ts_memo,
)
from ._queries import NamedQueries

# -- statements ---------------------------------------------------------------------------

_named = NamedQueries.load("sqlite")

LATEST_DAG_VERSION = _named.take("latest_dag_version")
INSERT_DAG = _named.take("insert_dag")
INSERT_DAG_VERSION = _named.take("insert_dag_version")
GET_DAG = _named.take("get_dag")
LIST_DAGS = _named.take("list_dags")
SET_PAUSED = _named.take("set_paused")
INSERT_RUN = _named.take("insert_run")
INSERT_SCHEDULE_EVENT = _named.take("insert_schedule_event")
LAST_SCHEDULE_POINT = _named.take("last_schedule_point")
SCHEDULE_EVENTS = _named.take("schedule_events")
UPDATE_RUN = _named.take("update_run")
UPSERT_TASK_RUN = _named.take("upsert_task_run")
#: Task rows written per statement, largest first: a commit of n rows takes n // 512
#: statements and then one of each smaller size its remainder needs, at most ten in all.
#: Each statement is one step of SQLite's, during which the writing thread gives the GIL
#: up and then waits to get it back from the event loop's thread (up to the switch
#: interval, 5 ms, while the loop is busy): few large statements, not a statement per
#: row. 512 rows bind 5,120 values, within SQLite's limit (32,766 since 3.32).
TASK_ROW_GROUPS = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_ONE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT_TASK_RUNS = {
    n: UPSERT_TASK_RUN.replace(_ONE_ROW, ", ".join([_ONE_ROW] * n), 1) for n in TASK_ROW_GROUPS
}
#: Rows that share their run, attempt, status, reason, scheduled time and error (a batch
#: of attempts made ready together that ended alike) bind those six values once per
#: statement and four for each row: every bound value costs the writing thread about
#: 0.12 µs holding the GIL. (``WHERE true`` tells SQLite's parser where the upsert's
#: SELECT ends.)
_SHARED_ROW = "(?, ?, ?, ?)"
UPSERT_SHARED_TASK_RUNS = {
    n: UPSERT_TASK_RUN.replace(
        f"VALUES {_ONE_ROW}",
        "SELECT ?, column1, ?, ?, ?, ?, column2, column3, ?, column4 "
        f"FROM (VALUES {', '.join([_SHARED_ROW] * n)}) WHERE true",
        1,
    )
    for n in TASK_ROW_GROUPS
}
#: The fewest rows alike written so: when they are all of a commit's task rows, and
#: when they are among others. Writing a run among others apart splits the others' rows
#: into more statements, and each statement costs the writing thread a wait for the
#: GIL (0.1 to 0.8 ms while the event loop is busy): the run must save more than that.
SHARED_ROWS_MIN = 32
SHARED_ROWS_AMONG_OTHERS = 512
_shared_part = operator.itemgetter(0, 2, 3, 4, 5, 8)
_own_part = operator.itemgetter(1, 6, 7, 9)
INSERT_LOG = _named.take("insert_log")
GET_RUN = _named.take("get_run")
ACTIVE_RUNS = _named.take("active_runs")
TASK_RUNS = _named.take("task_runs")
COUNTS = _named.take("counts")
CLEAR_POOLS = _named.take("clear_pools")
INSERT_POOL = _named.take("insert_pool")
POOLS = _named.take("pools")
DATA_VERSION = _named.take("data_version")
HAS_SCHEMA_VERSION = _named.take("has_schema_version")
CURRENT_VERSION = _named.take("current_version")
RECORD_VERSION = _named.take("record_version")
TABLE_NAMES = _named.take("table_names")
PURGE_WORKERS = _named.take("purge_workers")
REGISTER_WORKER = _named.take("register_worker")
UNREGISTER_WORKER = _named.take("unregister_worker")
WORKERS = _named.take("workers")

_named.check_all_taken()

#: The columns of a run, in the order of run_from_row, for statements put together here.
RUN_COLUMNS = (
    "id, dag_id, logical_time, status, trigger, params, dag_version, "
    "created_at, started_at, finished_at, note"
)


def json_text(value: Any, what: str) -> str:
    """``value`` as compact JSON text; :raises TypeError: it is not JSON."""
    return to_json(value, what, compact_json)


# -- rows to records ---------------------------------------------------------------------


def run_from_row(row: tuple[Any, ...]) -> DagRun:
    return DagRun(
        id=row[0],
        dag_id=row[1],
        logical_time=dt(row[2]),
        status=DagRunStatus(row[3]),
        trigger=RunTrigger(row[4]),
        params=json.loads(row[5]),
        dag_version=row[6],
        created_at=dt(row[7]),
        started_at=opt_dt(row[8]),
        finished_at=opt_dt(row[9]),
        note=row[10],
    )


def task_run_from_row(row: tuple[Any, ...]) -> TaskRun:
    return TaskRun(
        run_id=row[0],
        task_id=row[1],
        attempt=row[2],
        status=TaskStatus(row[3]),
        reason=AttemptReason(row[4]),
        scheduled_at=opt_dt(row[5]),
        started_at=opt_dt(row[6]),
        finished_at=opt_dt(row[7]),
        error=row[8],
        result=None if row[9] is None else json.loads(row[9]),
    )


def dag_from_row(row: tuple[Any, ...]) -> DagInfo:
    return DagInfo(
        dag_id=row[0],
        version=row[1],
        definition_hash=row[2],
        definition=row[3],
        paused=bool(row[4]),
        created_at=dt(row[5]),
        resume_after=opt_dt(row[6]),
    )


def event_from_row(row: tuple[Any, ...]) -> ScheduleEvent:
    return ScheduleEvent(
        dag_id=row[0],
        logical_time=dt(row[1]),
        kind=ScheduleEventKind(row[2]),
        created_at=dt(row[3]),
        run_id=row[4],
    )


def log_from_row(row: tuple[Any, ...]) -> LogRecord:
    return LogRecord(
        run_id=row[0],
        task_id=row[1],
        attempt=row[2],
        time=dt(row[3]),
        level=row[4],
        message=row[5],
    )


# -- work done in the connection thread ------------------------------------------------


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
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


def sync_dag(
    conn: sqlite3.Connection, dag_id: str, definition_hash: str, definition: bytes, now: str
) -> int:
    with write_transaction(conn):
        row = conn.execute(LATEST_DAG_VERSION, (dag_id,)).fetchone()
        if row is not None and row[1] == definition_hash:
            return int(row[0])
        version = 1 if row is None else int(row[0]) + 1
        conn.execute(INSERT_DAG, (dag_id, now))
        conn.execute(INSERT_DAG_VERSION, (dag_id, version, definition_hash, definition, now))
        return version


def create_run(
    conn: sqlite3.Connection,
    row: tuple[Any, ...],
    event: tuple[str, str, str, str] | None,
) -> int | None:
    with write_transaction(conn):
        cursor = conn.execute(INSERT_RUN, row)
        if cursor.rowcount == 0:
            return None
        run_id = cursor.lastrowid
        if event is not None:
            conn.execute(INSERT_SCHEDULE_EVENT, (*event, run_id))
        return run_id


#: A commit's run rows, task rows, where each run of task rows alike starts (see
#: ``UPSERT_SHARED_TASK_RUNS``), and log rows.
_Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int], list[tuple[Any, ...]]]


def _changed_rows(changes: Changes) -> _Rows:
    """The rows of a commit, converted and checked before its transaction starts: bad
    input raises with nothing written."""
    run_rows = []
    for run in changes.dag_runs:
        check_member(run.status, RUN_STATUSES, f"status of run {run.id}")
        check_member(run.trigger, RUN_TRIGGERS, f"trigger of run {run.id}")
        run_rows.append(
            (
                run.status,
                run.trigger,
                opt_ts(run.started_at),
                opt_ts(run.finished_at),
                run.note,
                run.id,
                run.status,
            )
        )
    task_rows: list[tuple[Any, ...]] = []
    memo: dict[datetime, str] = {}  # attempts made ready together share scheduled_at
    # Attempts run back to back by a worker (a streak, a range of mapped instances)
    # start as the one before ended: the same time, the same object, written once. (An
    # identity check, not the memo: hashing an aware datetime costs more than that.)
    ended: datetime | None = None
    ended_text: str | None = None
    seconds: dict[Second, str] = {}
    alike: list[int] = []
    # The shared part of the row before (what ``_shared_part`` picks, in its order),
    # compared by identity but for the numbers: in doubt, a new run of rows starts. Not
    # ``_shared_part(row) != last``: that costs 0.1 µs more per row, on the writer's GIL.
    # The first row starts one (no attempt is None).
    last: tuple[Any, ...] = (None,) * 6
    for tr in changes.task_runs:
        run_id, attempt, error = tr.run_id, tr.attempt, tr.error
        status, reason = tr.status, tr.reason
        if status not in TASK_STATUSES or reason not in ATTEMPT_REASONS:
            where = f"task {tr.task_id!r} attempt {attempt} of run {run_id}"
            check_member(status, TASK_STATUSES, f"status of {where}")
            check_member(reason, ATTEMPT_REASONS, f"reason of {where}")
        scheduled = tr.scheduled_at
        scheduled_text = None if scheduled is None else ts_memo(scheduled, memo)
        if (
            run_id != last[0]
            or attempt != last[1]
            or status is not last[2]
            or reason is not last[3]
            or scheduled_text is not last[4]
            or error is not last[5]
        ):
            alike.append(len(task_rows))
            last = (run_id, attempt, status, reason, scheduled_text, error)
        result = tr.result
        if result is not None:
            # An int's JSON is its decimal text (not a bool's: a subclass).
            result = str(result) if result.__class__ is int else result_json(tr, compact_json)
        started = tr.started_at
        if started is ended:  # (or both None)
            started_text = ended_text
        else:
            started_text = None if started is None else ts_by_second(started, seconds)
        ended = tr.finished_at
        ended_text = None if ended is None else ts_by_second(ended, seconds)
        task_rows.append(
            (
                run_id,
                tr.task_id,
                attempt,
                status,
                reason,
                scheduled_text,
                started_text,
                ended_text,
                error,
                result,
            )
        )
    log_rows = [
        (r.run_id, r.task_id, r.attempt, ts(r.time), r.level, r.message) for r in changes.logs
    ]
    return run_rows, task_rows, alike, log_rows


def _write_changes(conn: sqlite3.Connection, rows: _Rows) -> None:
    run_rows, task_rows, alike, log_rows = rows
    if run_rows:
        updated = conn.executemany(UPDATE_RUN, run_rows).rowcount
        if updated != len(run_rows):
            wanted = sorted({row[-2] for row in run_rows})
            marks = ", ".join("?" * len(wanted))
            found = {
                row_id
                for (row_id,) in conn.execute(
                    f"SELECT id FROM dag_runs WHERE id IN ({marks})", wanted
                )
            }
            missing = [run_id for run_id in wanted if run_id not in found]
            if missing:  # else: cancelled runs that stay so
                raise StorageError(
                    f"commit updates DAG runs that do not exist: {missing}; nothing was written"
                )
    try:
        if task_rows:
            _upsert_task_rows(conn, task_rows, alike)
        if log_rows:
            conn.executemany(INSERT_LOG, log_rows)
    except sqlite3.IntegrityError as exc:
        raise StorageError(
            f"commit refers to a DAG run that does not exist ({exc}); nothing was written"
        ) from exc


def commit(conn: sqlite3.Connection, changes: Changes) -> None:
    rows = _changed_rows(changes)
    with write_transaction(conn):
        _write_changes(conn, rows)


def create_runs_and_commit(
    conn: sqlite3.Connection,
    runs: Sequence[tuple[tuple[Any, ...], tuple[str, str, str, str] | None]],
    changes: Changes,
) -> list[int]:
    """Insert queued runs (a row and a schedule event each), then write ``changes``,
    in one transaction; return the new runs' ids."""
    rows = _changed_rows(changes)
    ids: list[int] = []
    with write_transaction(conn):
        for row, event in runs:
            cursor = conn.execute(INSERT_RUN, row)
            if cursor.rowcount == 0 or cursor.lastrowid is None:
                raise StorageError(
                    f"a run of DAG {row[0]!r} at {row[1]} was refused: its logical time "
                    "is taken; nothing was written"
                )
            ids.append(cursor.lastrowid)
            if event is not None:
                conn.execute(INSERT_SCHEDULE_EVENT, (*event, cursor.lastrowid))
        _write_changes(conn, rows)
    return ids


def _upsert_task_rows(
    conn: sqlite3.Connection, rows: list[tuple[Any, ...]], alike: list[int]
) -> None:
    """Write task rows in order (a later row of the same attempt updates the earlier),
    in statements of ``TASK_ROW_GROUPS`` rows; a long run of rows alike (``alike``:
    where each run starts) with their shared values bound once."""
    least = SHARED_ROWS_MIN if len(alike) == 1 else SHARED_ROWS_AMONG_OTHERS
    written = 0
    ends = iter([*alike[1:], len(rows)])
    for start in alike:
        end = next(ends)
        if end - start >= least:
            _upsert_groups(conn, rows, written, start, None)
            _upsert_groups(conn, rows, start, end, rows[start])
            written = end
    _upsert_groups(conn, rows, written, len(rows), None)


def _upsert_groups(
    conn: sqlite3.Connection,
    rows: list[tuple[Any, ...]],
    start: int,
    stop: int,
    shared: tuple[Any, ...] | None,
) -> None:
    """Write ``rows[start:stop]``, largest groups first: whole, or with ``shared`` (any
    one of them, when they are alike) its shared values once and each row's own."""
    statements = UPSERT_TASK_RUNS if shared is None else UPSERT_SHARED_TASK_RUNS
    left = stop - start
    for size in TASK_ROW_GROUPS:
        end = start + left - left % size
        if end > start:
            conn.executemany(statements[size], _group_values(rows, start, end, size, shared))
            start, left = end, left % size


def _group_values(
    rows: list[tuple[Any, ...]], start: int, end: int, size: int, shared: tuple[Any, ...] | None
) -> Iterator[list[Any]]:
    chain = itertools.chain.from_iterable
    if shared is None:
        for k in range(start, end, size):
            yield list(chain(rows[k : k + size]))
    else:
        head = list(_shared_part(shared))
        for k in range(start, end, size):
            yield head + list(chain(map(_own_part, rows[k : k + size])))


def save_pools(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    with write_transaction(conn):
        conn.execute(CLEAR_POOLS)
        conn.executemany(INSERT_POOL, rows)


def register_worker(conn: sqlite3.Connection, params: Sequence[Any], now: str) -> None:
    """Record or renew a serving process, forgetting those whose record expired."""
    with write_transaction(conn):
        conn.execute(PURGE_WORKERS, (now,))
        conn.execute(REGISTER_WORKER, params)


def worker_from_row(row: tuple[Any, ...]) -> WorkerInfo:
    return WorkerInfo(
        id=row[0],
        host=row[1],
        pid=row[2],
        role=row[3],
        started_at=dt(row[4]),
        renewed_at=dt(row[5]),
        expires_at=dt(row[6]),
        dag_ids=json.loads(row[7]),
    )


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
    return row


def run_many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement for each row, all in one transaction."""
    with write_transaction(conn):
        conn.executemany(sql, rows)


def run_statement(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Run one statement (its own transaction) and return the number of changed rows."""
    return conn.execute(sql, params).rowcount
