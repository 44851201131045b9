"""PostgreSQL storage on an asyncpg pool: for several schedulers sharing one database."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import asyncpg  # type: ignore[import-untyped, unused-ignore]
import attrs

from .._backoff import Backoff
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
from ..abc import Leadership, Notice, SharedStorage
from . import redact_url
from .memory import SCHEDULED_TRIGGERS

__all__ = ["PostgresStorage"]

#: An asyncpg record: read by column name.
Row = Mapping[str, Any]

#: How long :meth:`PostgresStorage.close` waits for borrowed connections before dropping them.
CLOSE_TIMEOUT = 10.0

logger = logging.getLogger("ppacer_async.storage")

# -- queries ----------------------------------------------------------------------------
#
# Every name is unqualified: connections set search_path to the storage's schema. The
# kind list of LAST_SCHEDULE_POINT is SCHEDULE_KINDS of storage/memory.py.

_RUN_COLUMNS = (
    "id, dag_id, logical_time, status, trigger, params, dag_version, "
    "created_at, started_at, finished_at"
)

_TASK_RUN_COLUMNS = (
    "run_id, task_id, attempt, status, reason, scheduled_at, started_at, finished_at, error, result"
)

_DAG_INFO = """
SELECT d.dag_id, d.paused, d.resume_after, v.version, v.definition_hash, v.definition,
       v.created_at
FROM dags AS d
JOIN LATERAL (
    SELECT version, definition_hash, definition, created_at
    FROM dag_versions
    WHERE dag_versions.dag_id = d.dag_id
    ORDER BY version DESC
    LIMIT 1
) AS v ON true
"""

GET_DAG = _DAG_INFO + "WHERE d.dag_id = $1"

LIST_DAGS = _DAG_INFO + "ORDER BY d.dag_id"

LATEST_DAG_VERSION = """
SELECT version, definition_hash FROM dag_versions
WHERE dag_id = $1 ORDER BY version DESC LIMIT 1
"""

INSERT_DAG = """
INSERT INTO dags (dag_id, created_at) VALUES ($1, $2) ON CONFLICT (dag_id) DO NOTHING
"""

LOCK_DAG = "SELECT 1 FROM dags WHERE dag_id = $1 FOR UPDATE"

INSERT_DAG_VERSION = """
INSERT INTO dag_versions (dag_id, version, definition_hash, definition, created_at)
VALUES ($1, $2, $3, $4::text::jsonb, $5)
"""

SET_PAUSED = """
UPDATE dags SET paused = $2, resume_after = $3 WHERE dag_id = $1 RETURNING pg_notify($4, $5)
"""

# One statement, so one round trip and atomic without BEGIN/COMMIT. The NOT EXISTS test
# refuses a taken point before a sequence value is drawn, so ids stay dense; ON CONFLICT
# covers the race between two schedulers, and repeats the partial index's predicate because
# that is how PostgreSQL picks a partial index as the arbiter.
CREATE_RUN = f"""
WITH run AS (
    INSERT INTO dag_runs (
        dag_id, logical_time, status, trigger, scheduled, params, dag_version, created_at
    )
    SELECT $1::text, $2::timestamptz, 'queued', $3::text, $4::boolean, $5::text::jsonb,
        $6::integer, $7::timestamptz
    WHERE NOT $4::boolean OR NOT EXISTS (
        SELECT 1 FROM dag_runs
        WHERE dag_id = $1::text AND logical_time = $2::timestamptz AND scheduled
    )
    ON CONFLICT (dag_id, logical_time) WHERE scheduled DO NOTHING
    RETURNING {_RUN_COLUMNS}
), event AS (
    INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id)
    SELECT dag_id, logical_time, $8::text, created_at, id FROM run
    WHERE $8::text IS NOT NULL
)
SELECT {_RUN_COLUMNS}, pg_notify($9, $10) FROM run
"""

INSERT_SCHEDULE_EVENT = """
INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id)
VALUES ($1, $2, $3, $4, $5)
"""

LAST_SCHEDULE_POINT = """
SELECT max(logical_time) FROM schedule_events
WHERE dag_id = $1 AND kind IN ('regular', 'caught_up', 'skipped')
"""

SCHEDULE_EVENTS = """
SELECT dag_id, logical_time, kind, created_at, run_id FROM schedule_events
WHERE dag_id = $1
ORDER BY logical_time DESC, id DESC
LIMIT $2
"""

# A whole state-machine step is one statement (one round trip, one transaction) with a
# data-modifying CTE per kind of row, each kind passed as column arrays. Parts with no
# rows are left out (an empty part still costs planning time), so there is one statement
# per shape of commit. When runs are updated, a guard makes the statement write nothing if
# one of them does not exist; the caller then raises. Callers pass each key once: one
# statement cannot upsert the same task-run row twice.

_COMMIT_GUARD = """guard AS (
    SELECT count(*) = cardinality($1::bigint[]) AS ok
    FROM dag_runs WHERE id = ANY($1::bigint[])
)"""

_COMMIT_RUNS = """updated_runs AS (
    UPDATE dag_runs AS d
    SET status = u.status, trigger = u.trigger,
        started_at = u.started_at, finished_at = u.finished_at
    FROM unnest(
        $1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]
    ) AS u (id, status, trigger, started_at, finished_at)
    WHERE d.id = u.id {guarded}
)"""

_COMMIT_TASK_RUNS = f"""upserted_task_runs AS (
    INSERT INTO task_runs ({_TASK_RUN_COLUMNS})
    SELECT run_id, task_id, attempt, status, reason, scheduled_at, started_at,
        finished_at, error, result::jsonb
    FROM unnest(
        ${{0}}::bigint[], ${{1}}::text[], ${{2}}::integer[], ${{3}}::text[], ${{4}}::text[],
        ${{5}}::timestamptz[], ${{6}}::timestamptz[], ${{7}}::timestamptz[], ${{8}}::text[],
        ${{9}}::text[]
    ) AS u (
        run_id, task_id, attempt, status, reason, scheduled_at, started_at,
        finished_at, error, result
    )
    WHERE true {{guarded}}
    ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET
        status = EXCLUDED.status,
        reason = EXCLUDED.reason,
        scheduled_at = EXCLUDED.scheduled_at,
        started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at,
        error = EXCLUDED.error,
        result = EXCLUDED.result
)"""

_COMMIT_LOGS = """inserted_logs AS (
    INSERT INTO task_logs (run_id, task_id, attempt, time, level, message)
    SELECT run_id, task_id, attempt, time, level, message
    FROM unnest(
        ${0}::bigint[], ${1}::text[], ${2}::integer[], ${3}::timestamptz[], ${4}::text[],
        ${5}::text[]
    ) AS u (run_id, task_id, attempt, time, level, message)
    WHERE true {guarded}
)"""


def _commit_statement(runs: bool, task_runs: bool, logs: bool) -> str:
    """The COMMIT statement for one shape; its parameters are the arrays of the parts
    present, in the order runs (5), task runs (10), logs (6), then the channels to
    notify (sent only if the transaction commits) and the notices' payload."""
    guarded = "AND (SELECT ok FROM guard)" if runs else ""
    parts = [_COMMIT_GUARD, _COMMIT_RUNS.format(guarded=guarded)] if runs else []
    first = 6 if runs else 1
    if task_runs:
        numbers = range(first, first + 10)
        parts.append(_COMMIT_TASK_RUNS.format(*numbers, guarded=guarded))
        first += 10
    if logs:
        parts.append(_COMMIT_LOGS.format(*range(first, first + 6), guarded=guarded))
        first += 6
    ok = "(SELECT ok FROM guard)" if runs else "true"
    notify = f"(SELECT count(pg_notify(c, ${first + 1})) FROM unnest(${first}::text[]) AS c)"
    return "WITH " + ",\n".join(parts) + f"\nSELECT {ok}, {notify}"


COMMIT = {
    (runs, task_runs, logs): _commit_statement(runs, task_runs, logs)
    for runs in (False, True)
    for task_runs in (False, True)
    for logs in (False, True)
    if runs or task_runs or logs
}

EXISTING_RUN_IDS = "SELECT id FROM dag_runs WHERE id = ANY($1::bigint[])"

GET_RUN = f"SELECT {_RUN_COLUMNS} FROM dag_runs WHERE id = $1"

# list_runs and logs filter on optional columns. One statement per combination keeps each
# one a plain indexable query (an "$1 IS NULL OR ..." form plans badly once prepared).
_LIST_RUNS = f"SELECT {_RUN_COLUMNS} FROM dag_runs {{where}} ORDER BY id DESC LIMIT {{limit}}"
LIST_RUNS = {
    (False, False): _LIST_RUNS.format(where="", limit="$1"),
    (True, False): _LIST_RUNS.format(where="WHERE dag_id = $1", limit="$2"),
    (False, True): _LIST_RUNS.format(where="WHERE status = $1", limit="$2"),
    (True, True): _LIST_RUNS.format(where="WHERE dag_id = $1 AND status = $2", limit="$3"),
}

ACTIVE_RUNS = f"""
SELECT {_RUN_COLUMNS} FROM dag_runs WHERE status IN ('queued', 'running') ORDER BY id
"""

TASK_RUNS = f"""
SELECT {_TASK_RUN_COLUMNS} FROM task_runs WHERE run_id = $1 ORDER BY task_id, attempt
"""

_LOGS = """
SELECT run_id, task_id, attempt, time, level, message FROM task_logs
WHERE run_id = $1 {where} ORDER BY id OFFSET {offset}
"""
LOGS = {
    (False, False): _LOGS.format(where="", offset="$2"),
    (True, False): _LOGS.format(where="AND task_id = $2", offset="$3"),
    (False, True): _LOGS.format(where="AND attempt = $2", offset="$3"),
    (True, True): _LOGS.format(where="AND task_id = $2 AND attempt = $3", offset="$4"),
}

# -- shared work ------------------------------------------------------------------------
#
# See sql/postgres/0003_shared_work.sql for the life of an attempt across processes.

TRY_LEADER_LOCK = "SELECT pg_try_advisory_lock($1)"

REGISTER_WORKER = """
INSERT INTO workers (id, host, pid, role, started_at, renewed_at, expires_at)
VALUES ($1, $2, $3, $4, $5, now(), now() + $6::interval)
ON CONFLICT (id) DO UPDATE SET renewed_at = now(), expires_at = EXCLUDED.expires_at
"""

UNREGISTER_WORKER = "DELETE FROM workers WHERE id = $1"

RENEW_LEASES = """
UPDATE task_runs SET lease_expires_at = now() + $2::interval
WHERE lease_owner = $1 AND status = 'running' AND outcome IS NULL
"""

_CLAIMED_COLUMNS = (
    "d.id, d.dag_id, d.logical_time, d.status AS run_status, d.trigger, d.params, "
    "d.dag_version, d.created_at, d.started_at AS run_started_at, "
    "d.finished_at AS run_finished_at, t.run_id, t.task_id, t.attempt, t.status, t.reason, "
    "t.scheduled_at, t.started_at, t.finished_at, t.error, t.result"
)

# Claims read the ready index (task_runs_ready) in its order and stop at the limit:
# the DAG test is a scalar subquery, not a join, and the connection that claims plans
# without bitmap scans or sorts (CLAIM_SETTINGS). A bitmap scan, or a sort of every
# ready row, would read every entry of the index each time, including those of rows
# claimed since the last vacuum, so a claim would cost more the more rows were made
# ready at once; read in order, such entries are marked dead and skipped. Counting the
# ready rows left costs more than the claim itself, so it is done at most every
# COUNT_EVERY seconds (and whenever the last count found none).
_CLAIM = f"""
WITH picked AS (
    SELECT t.run_id, t.task_id, t.attempt
    FROM task_runs AS t
    WHERE t.status = 'scheduled'
        AND (SELECT d.dag_id FROM dag_runs AS d WHERE d.id = t.run_id) = ANY($2::text[])
    ORDER BY t.scheduled_at, t.run_id, t.task_id, t.attempt
    LIMIT $3
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE task_runs AS t
SET status = 'running', started_at = $4, lease_owner = $1,
    lease_expires_at = now() + $5::interval
FROM picked AS p, dag_runs AS d
WHERE t.run_id = p.run_id AND t.task_id = p.task_id AND t.attempt = p.attempt
    AND d.id = t.run_id
RETURNING {_CLAIMED_COLUMNS}, {{count}} AS scheduled_before
"""
CLAIM = _CLAIM.format(count="NULL::bigint")
CLAIM_COUNTING = _CLAIM.format(count="(SELECT count(*) FROM task_runs WHERE status = 'scheduled')")
COUNT_EVERY = 0.1
CLAIM_SETTINGS = {"enable_bitmapscan": "off", "enable_sort": "off"}

UPSTREAM_RESULTS = """
SELECT t.run_id, t.task_id, t.result
FROM unnest($1::bigint[], $2::text[]) AS k (run_id, task_id)
JOIN task_runs AS t ON t.run_id = k.run_id AND t.task_id = k.task_id
WHERE t.status = 'success' AND t.result IS NOT NULL
"""

# The lease check makes a report and a reap of the same attempt exclude each other: both
# update the row, so the second waits for the first and then finds the lease gone.
REPORT = """
WITH reported AS (
    UPDATE task_runs AS t
    SET outcome = u.outcome, finished_at = u.finished_at, error = u.error,
        result = u.result::jsonb, lease_owner = NULL, lease_expires_at = NULL
    FROM unnest(
        $2::bigint[], $3::text[], $4::integer[], $5::text[], $6::timestamptz[], $7::text[],
        $8::text[]
    ) AS u (run_id, task_id, attempt, outcome, finished_at, error, result)
    WHERE t.run_id = u.run_id AND t.task_id = u.task_id AND t.attempt = u.attempt
        AND t.lease_owner = $1 AND t.status = 'running' AND t.outcome IS NULL
    RETURNING t.run_id, t.task_id, t.attempt
), logged AS (
    INSERT INTO task_logs (run_id, task_id, attempt, time, level, message)
    SELECT run_id, task_id, attempt, time, level, message
    FROM unnest(
        $9::bigint[], $10::text[], $11::integer[], $12::timestamptz[], $13::text[], $14::text[]
    ) WITH ORDINALITY AS l (run_id, task_id, attempt, time, level, message, n)
    WHERE EXISTS (SELECT 1 FROM dag_runs WHERE id = l.run_id)
    ORDER BY n
)
SELECT run_id, task_id, attempt, CASE WHEN $15::text IS NOT NULL THEN pg_notify($15, $16) END
FROM reported
"""

_OUTCOME_COLUMNS = (
    "t.run_id, t.task_id, t.attempt, t.outcome AS status, t.reason, t.scheduled_at, "
    "t.started_at, t.finished_at, t.error, t.result"
)

REPORTED_OUTCOMES = f"""
SELECT {_OUTCOME_COLUMNS}
FROM task_runs AS t JOIN dag_runs AS d ON d.id = t.run_id
WHERE t.status = 'running' AND t.outcome IS NOT NULL AND d.dag_id = ANY($1::text[])
ORDER BY t.finished_at, t.run_id, t.task_id
LIMIT $2
"""

REAP = f"""
WITH reaped AS (
    UPDATE task_runs AS t
    SET outcome = 'interrupted', finished_at = now(), lease_owner = NULL,
        lease_expires_at = NULL,
        error = 'the process running this attempt (' || coalesce(t.lease_owner, 'unknown')
            || ') stopped renewing its lease: it crashed, hung or lost the database'
    WHERE t.status = 'running' AND t.outcome IS NULL
        AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
    RETURNING {_OUTCOME_COLUMNS}
), gone AS (
    DELETE FROM workers WHERE expires_at < now()
)
SELECT reaped.*, pg_notify($1, $2) FROM reaped
"""

WORKERS = """
SELECT id, host, pid, role, started_at, renewed_at, expires_at FROM workers
WHERE expires_at >= now() ORDER BY id
"""

COUNTS = """
SELECT
    (SELECT max(version) FROM schema_version) AS schema_version,
    (SELECT count(*) FROM dags) AS dags,
    (SELECT count(*) FROM dag_runs) AS dag_runs,
    (SELECT count(*) FROM task_runs) AS task_runs,
    (SELECT count(*) FROM task_logs) AS task_logs,
    (SELECT count(*) FROM schedule_events) AS schedule_events
"""

# -- migrations -------------------------------------------------------------------------

MIGRATE_LOCK = "SELECT pg_advisory_xact_lock($1)"

SCHEMA_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"

SCHEMA_RELATIONS = """
SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname
"""

RECORD_VERSION = "INSERT INTO {schema}.schema_version (version) VALUES ($1)"

CURRENT_VERSION = "SELECT max(version) FROM {schema}.schema_version"

_MIGRATION_NAME = re.compile(r"^(\d{4})_\w+\.sql$")


@attrs.frozen(kw_only=True)
class Migration:
    """One numbered schema step, from ``sql/postgres/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The numbered ``sql/postgres/NNNN_name.sql`` files, in order.

    :raises RuntimeError: the numbering has a gap or a duplicate (a packaging mistake).
    """
    folder = resources.files(__package__).joinpath("sql", "postgres")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(version=int(match[1]), name=entry.name, sql=entry.read_text("utf-8"))
            )
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        names = ", ".join(m.name for m in found) or "none"
        raise RuntimeError(f"PostgreSQL migrations must be numbered 0001, 0002, ...; found {names}")
    return tuple(found)


def schema_version() -> int:
    """The schema version this program writes."""
    return len(migrations())


# -- values -----------------------------------------------------------------------------


_RUN_STATUSES = frozenset(DagRunStatus)
_RUN_TRIGGERS = frozenset(RunTrigger)
_TASK_STATUSES = frozenset(TaskStatus)
_ATTEMPT_REASONS = frozenset(AttemptReason)
_EVENT_KINDS = frozenset(ScheduleEventKind)


_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _check_member(value: object, members: frozenset[Any], what: str) -> None:
    if value not in members:
        allowed = ", ".join(sorted(str(m) for m in members))
        raise ValueError(f"{what} is {value!r}; expected one of: {allowed}")


def _strip_nul(value: Any) -> Any:
    """Replace NUL characters, which PostgreSQL text and jsonb cannot hold, with U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def _text(value: str) -> str:
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _encode_json(value: Any) -> str:
    """Encode a value for a jsonb column (NaN and infinities are not JSON there).

    :raises TypeError: or ValueError, the value is not JSON.
    """
    text = _JSON(value)
    if "\\u0000" in text:
        text = _JSON(_strip_nul(value))
    return text


def _json(value: Any, what: str) -> str:
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc


def _result_json(tr: TaskRun) -> str:
    try:
        return _encode_json(tr.result)
    except (TypeError, ValueError) as exc:
        raise ResultNotStorable(
            f"the result of task {tr.task_id!r} (run {tr.run_id}, attempt {tr.attempt}) "
            f"cannot be stored as JSON: {exc}; return JSON values "
            "(dict, list, str, int, float, bool, None)"
        ) from exc


def _dag_run(row: Row, prefix: str = "") -> DagRun:
    """A run from its columns; ``prefix`` names the status and times where a query
    also returns those of a task run (``run_status``, ...)."""
    return DagRun(
        id=row["id"],
        dag_id=row["dag_id"],
        logical_time=row["logical_time"],
        status=DagRunStatus(row[prefix + "status"]),
        trigger=RunTrigger(row["trigger"]),
        params=row["params"],
        dag_version=row["dag_version"],
        created_at=row["created_at"],
        started_at=row[prefix + "started_at"],
        finished_at=row[prefix + "finished_at"],
    )


def _task_run(row: Row) -> TaskRun:
    return TaskRun(
        run_id=row["run_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        status=TaskStatus(row["status"]),
        reason=AttemptReason(row["reason"]),
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        result=row["result"],
    )


def _log_record(row: Row) -> LogRecord:
    return LogRecord(
        run_id=row["run_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        time=row["time"],
        level=row["level"],
        message=row["message"],
    )


def _schedule_event(row: Row) -> ScheduleEvent:
    return ScheduleEvent(
        dag_id=row["dag_id"],
        logical_time=row["logical_time"],
        kind=ScheduleEventKind(row["kind"]),
        created_at=row["created_at"],
        run_id=row["run_id"],
    )


def _dag_info(row: Row) -> DagInfo:
    return DagInfo(
        dag_id=row["dag_id"],
        version=row["version"],
        definition_hash=row["definition_hash"],
        definition=row["definition"],
        paused=row["paused"],
        created_at=row["created_at"],
        resume_after=row["resume_after"],
    )


# -- connections ------------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _milliseconds(delta: timedelta) -> int:
    return max(1, round(delta.total_seconds() * 1000))


async def _init_connection(conn: Any) -> None:
    """Decode json and jsonb to Python values and encode Python values into them."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_encode_json, decoder=json.loads, format="text"
        )


async def _keep_session(conn: Any) -> None:
    """Pool reset hook: skip the per-release reset query.

    asyncpg resets every connection it takes back (a round trip). Pooled connections
    change no session state (LISTEN and the leader's advisory lock use connections of
    their own), and asyncpg still rolls back any transaction left open, so the reset
    would only cost time.
    """


#: Errors after which a connection is worth trying again (the server restarted, the
#: network failed): loops that must survive them back off and retry.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
)


class _PostgresLeadership(Leadership):
    """The leader's own connection, holding the session advisory lock."""

    def __init__(self, conn: Any, interval: float) -> None:
        super().__init__()
        self.conn = conn
        self.lock = anyio.Lock()
        self._interval = interval
        conn.add_termination_listener(self._on_closed)

    def _on_closed(self, conn: Any) -> None:
        self.lost.set()

    async def hold(self) -> None:
        """Check the connection (and so the lock) every poll interval; return when it
        is gone."""
        while not self.lost.is_set():
            with anyio.move_on_after(self._interval):
                await self.lost.wait()
            if self.lost.is_set():
                break
            try:
                async with self.lock:
                    await self.conn.fetchval("SELECT 1")
            except _CONNECTION_ERRORS:
                self.lost.set()


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

    dsn: str = attrs.field(repr=lambda dsn: repr(redact_url(dsn)))
    schema: str = "public"
    min_pool_size: int = 1
    max_pool_size: int = 10
    statement_timeout: timedelta | None = timedelta(seconds=30)
    connect_timeout: timedelta = timedelta(seconds=10)
    application_name: str = "ppacer-async"
    lease: timedelta = timedelta(seconds=30)
    poll_interval: timedelta = timedelta(seconds=2)
    _pool: Any = attrs.field(init=False, default=None, repr=False)
    _channels: dict[Notice, str] = attrs.field(init=False, factory=dict, repr=False)
    _callbacks: dict[Notice, list[Callable[[], None]]] = attrs.field(
        init=False, factory=dict, repr=False
    )
    _leader: _PostgresLeadership | None = attrs.field(init=False, default=None, repr=False)
    _next_count: float = attrs.field(init=False, default=0.0, repr=False)
    _changes: anyio.Event | None = attrs.field(init=False, default=None, repr=False)
    #: The connection claims run on (see CLAIM_SETTINGS), opened at the first claim.
    _claiming: Any = attrs.field(init=False, default=None, repr=False)
    _claim_lock: anyio.Lock = attrs.field(init=False, factory=anyio.Lock, repr=False)
    #: The payload of this storage's notices: its own are not delivered back to it.
    _sender: str = attrs.field(init=False, factory=lambda: uuid.uuid4().hex, repr=False)
    _counted_left: int = attrs.field(init=False, default=0, repr=False)

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
        # Notification channels are per schema, so installations sharing a database
        # do not wake each other.
        tag = hashlib.sha256(self.schema.encode()).hexdigest()[:12]
        kinds: tuple[Notice, ...] = ("work", "outcomes", "changes", "finished")
        self._channels = {kind: f"ppacer_{tag}_{kind}" for kind in kinds}

    # -- lifecycle ---------------------------------------------------------------------

    def _server_settings(self) -> dict[str, str]:
        settings = {
            "search_path": _quote_ident(self.schema),
            "application_name": self.application_name,
            # The batch statements take arrays of 1 to thousands of rows. A generic plan
            # (made after 5 runs of a prepared statement) cannot know the size and may
            # pick a nested loop that costs seconds on a few thousand rows; planning
            # each run costs well under a millisecond per batch.
            "plan_cache_mode": "force_custom_plan",
        }
        if self.statement_timeout is not None:
            settings["statement_timeout"] = str(_milliseconds(self.statement_timeout))
        return settings

    async def _connect(self, **settings: str) -> Any:
        """A connection of its own (not pooled), set up like the pooled ones, with
        ``settings`` on top."""
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout.total_seconds(),
            server_settings={**self._server_settings(), **settings},
        )
        try:
            await _init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def open(self) -> None:
        if self._pool is not None:
            return
        with self._errors("connect to", ValueError):
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_pool_size,
                max_size=self.max_pool_size,
                timeout=self.connect_timeout.total_seconds(),
                server_settings=self._server_settings(),
                init=_init_connection,
                reset=_keep_session,
            )
        try:
            with self._errors("migrate"):
                async with pool.acquire() as conn:
                    await self._migrate(conn)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close_pool(pool)
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        claiming, self._claiming = self._claiming, None
        with anyio.CancelScope(shield=True):
            if claiming is not None:
                await _close_quietly(claiming)
            if pool is not None:
                await self._close_pool(pool)

    @staticmethod
    async def _close_pool(pool: Any) -> None:
        with anyio.move_on_after(CLOSE_TIMEOUT) as scope:
            await pool.close()
        if scope.cancelled_caught:
            pool.terminate()

    async def acquire_scheduler_lock(self) -> None:
        """Several schedulers may share a PostgreSQL database: nothing to claim here;
        they elect the one that schedules with :meth:`leadership`."""

    async def _migrate(self, conn: Any) -> None:
        """Create or upgrade the schema, one process at a time.

        Everything runs in one transaction under an advisory lock keyed on the schema, so
        processes starting together apply each migration once and a refused database is
        left exactly as it was.
        """
        schema = _quote_ident(self.schema)
        key = _lock_key(f"ppacer_async.migrate:{self.schema}")
        known = migrations()
        async with conn.transaction():
            await conn.execute(MIGRATE_LOCK, key)
            if not await conn.fetchval(SCHEMA_EXISTS, self.schema):
                await conn.execute(f"CREATE SCHEMA {schema}")
            relations: list[str] = [r[0] for r in await conn.fetch(SCHEMA_RELATIONS, self.schema)]
            if "schema_version" in relations:
                current = await self._current_version(conn)
            elif relations:
                shown = ", ".join(relations[:5]) + (", ..." if len(relations) > 5 else "")
                raise StorageError(
                    f"schema {self.schema!r} of {redact_url(self.dsn)} holds tables that are "
                    f"not ppacer-async's ({shown}) and no schema_version table; point "
                    "PostgresStorage at an empty schema (schema='ppacer') or another database"
                )
            else:
                current = 0
            if current > len(known):
                raise SchemaVersionError(
                    f"schema {self.schema!r} of {redact_url(self.dsn)} is at version {current}, "
                    f"newer than this ppacer-async understands ({len(known)}); upgrade "
                    "ppacer-async to the version that wrote it"
                )
            for migration in known[current:]:
                await conn.execute(migration.sql)
                await conn.execute(RECORD_VERSION.format(schema=schema), migration.version)

    async def _current_version(self, conn: Any) -> int:
        query = CURRENT_VERSION.format(schema=_quote_ident(self.schema))
        try:
            async with conn.transaction():  # a savepoint: a failure must not end the outer one
                version = await conn.fetchval(query)
        except asyncpg.PostgresError as exc:
            version = exc
        if not isinstance(version, int):
            raise StorageError(
                f"schema {self.schema!r} of {redact_url(self.dsn)} has a schema_version table "
                f"that ppacer-async did not write ({version!r}); point PostgresStorage at "
                "another schema or database"
            )
        return version

    @property
    def _connections(self) -> Any:
        pool = self._pool
        if pool is None:
            raise StorageError(
                "PostgresStorage is not open; call await storage.open() first "
                "or use it as 'async with storage:'"
            )
        return pool

    @contextlib.contextmanager
    def _errors(self, action: str, *more: type[Exception]) -> Iterator[None]:
        """Turn connection-level failures (and ``more``) into StorageError, naming the
        redacted DSN."""
        try:
            yield
        except (StorageError, DagNotFound):
            raise
        except (
            *more,
            *_CONNECTION_ERRORS,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidPasswordError,
            asyncpg.InvalidCatalogNameError,
            asyncpg.InsufficientPrivilegeError,
            asyncpg.QueryCanceledError,
            asyncpg.ClientConfigurationError,
        ) as exc:
            raise StorageError(
                f"cannot {action} PostgreSQL at {redact_url(self.dsn)}: "
                f"{self._error_text(exc)}; {self._hint(exc)}"
            ) from None

    def _hint(self, exc: BaseException) -> str:
        if isinstance(
            exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
        ):
            return "check the user and password in the URL (or PGPASSWORD, ~/.pgpass)"
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return "create the database first (createdb NAME) or fix its name in the URL"
        if isinstance(exc, asyncpg.InsufficientPrivilegeError):
            return "grant the user CREATE on the database or schema, or use an existing schema"
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return "lower max_pool_size or raise the server's max_connections"
        if isinstance(exc, asyncpg.QueryCanceledError):
            return "a statement ran past statement_timeout; raise it or pass None"
        if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
            return "write the URL as postgresql://user:password@host:port/database"
        return "check that the server is running and reachable at that host and port"

    def _error_text(self, exc: BaseException) -> str:
        """An error's type and message, without the password."""
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _scrub(self, text: str) -> str:
        """Remove the password from a driver message, in case it quotes the DSN."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return redact_url(text)

    def _secrets(self) -> list[str]:
        found: list[str] = []
        try:
            password = urlsplit(self.dsn).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
        for match in re.finditer(r"(?i)password=([^&\s]+)", self.dsn):
            found += [match[1], unquote(match[1])]
        return sorted(set(found), key=len, reverse=True)

    # -- DAG definitions ---------------------------------------------------------------

    async def sync_dag(
        self, dag_id: str, definition_hash: str, definition: dict[str, Any], now: datetime
    ) -> int:
        now = to_utc(now)
        definition_json = _json(definition, "the DAG definition")
        pool = self._connections
        with self._errors("write to"):
            latest = await pool.fetchrow(LATEST_DAG_VERSION, dag_id)
            if latest is not None and latest["definition_hash"] == definition_hash:
                return int(latest["version"])
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(INSERT_DAG, dag_id, now)
                await conn.execute(LOCK_DAG, dag_id)
                # Read again under the row lock: another process may have just written.
                latest = await conn.fetchrow(LATEST_DAG_VERSION, dag_id)
                if latest is not None and latest["definition_hash"] == definition_hash:
                    return int(latest["version"])
                version = 1 if latest is None else int(latest["version"]) + 1
                await conn.execute(
                    INSERT_DAG_VERSION, dag_id, version, definition_hash, definition_json, now
                )
                return version

    async def get_dag(self, dag_id: str) -> DagInfo | None:
        with self._errors("read from"):
            row = await self._connections.fetchrow(GET_DAG, dag_id)
        return None if row is None else _dag_info(row)

    async def list_dags(self) -> list[DagInfo]:
        with self._errors("read from"):
            rows = await self._connections.fetch(LIST_DAGS)
        return [_dag_info(row) for row in rows]

    async def set_paused(
        self, dag_id: str, paused: bool, resume_after: datetime | None = None
    ) -> None:
        with self._errors("write to"):
            status = await self._connections.execute(
                SET_PAUSED, dag_id, paused, resume_after, self._channels["changes"], self._sender
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
        _check_member(trigger, _RUN_TRIGGERS, "trigger")
        if event is not None:
            _check_member(event, _EVENT_KINDS, "event")
        args = (
            dag_id,
            to_utc(logical_time),
            trigger,
            trigger in SCHEDULED_TRIGGERS,
            _json(params, "params"),
            dag_version,
            to_utc(created_at),
            event,
        )
        with self._errors("write to"):
            row = await self._connections.fetchrow(
                CREATE_RUN, *args, self._channels["changes"], self._sender
            )
        return None if row is None else _dag_run(row)

    async def record_schedule_event(self, event: ScheduleEvent) -> None:
        _check_member(event.kind, _EVENT_KINDS, "kind of the schedule event")
        with self._errors("write to"):
            await self._connections.execute(
                INSERT_SCHEDULE_EVENT,
                event.dag_id,
                to_utc(event.logical_time),
                event.kind,
                to_utc(event.created_at),
                event.run_id,
            )

    async def last_schedule_point(self, dag_id: str) -> datetime | None:
        with self._errors("read from"):
            point: datetime | None = await self._connections.fetchval(LAST_SCHEDULE_POINT, dag_id)
        return point

    async def schedule_events(self, dag_id: str, limit: int = 100) -> list[ScheduleEvent]:
        with self._errors("read from"):
            rows = await self._connections.fetch(SCHEDULE_EVENTS, dag_id, limit)
        return [_schedule_event(row) for row in rows]

    async def commit(self, changes: Changes) -> None:
        if not changes:
            return
        # Later entries win, as they would applied one by one.
        runs = {run.id: run for run in changes.dag_runs}
        task_runs = {tr.key: tr for tr in changes.task_runs}
        query = COMMIT[bool(runs), bool(task_runs), bool(changes.logs)]
        args: list[Any] = _commit_arguments(runs.values(), task_runs.values(), changes.logs)
        args += [self._commit_notices(runs.values(), task_runs.values()), self._sender]
        with self._errors("write to"):
            try:
                leader = self._leader
                if leader is None:
                    ok = await self._connections.fetchval(query, *args)
                else:
                    # On the connection holding the advisory lock: a process that lost
                    # the scheduling role cannot write a transition any more.
                    async with leader.lock:
                        if leader.lost.is_set():
                            raise StorageError(
                                "this process lost the scheduling role (its connection "
                                "to PostgreSQL dropped); nothing was written"
                            )
                        ok = await leader.conn.fetchval(query, *args)
            except asyncpg.ForeignKeyViolationError as exc:
                raise StorageError(
                    f"commit refers to a DAG run that does not exist ({exc.detail or exc}); "
                    "nothing was written"
                ) from None
            if not ok:
                rows = await self._connections.fetch(EXISTING_RUN_IDS, list(runs))
                missing = sorted(set(runs) - {row["id"] for row in rows})
                raise StorageError(
                    f"commit updates DAG runs that do not exist: {missing}; nothing was written"
                )

    async def get_run(self, run_id: int) -> DagRun | None:
        with self._errors("read from"):
            row = await self._connections.fetchrow(GET_RUN, run_id)
        return None if row is None else _dag_run(row)

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        status: DagRunStatus | None = None,
        limit: int = 50,
    ) -> list[DagRun]:
        query = LIST_RUNS[dag_id is not None, status is not None]
        args = [a for a in (dag_id, status) if a is not None]
        with self._errors("read from"):
            rows = await self._connections.fetch(query, *args, limit)
        return [_dag_run(row) for row in rows]

    async def active_runs(self) -> list[DagRun]:
        with self._errors("read from"):
            rows = await self._connections.fetch(ACTIVE_RUNS)
        return [_dag_run(row) for row in rows]

    async def task_runs(self, run_id: int) -> list[TaskRun]:
        with self._errors("read from"):
            rows = await self._connections.fetch(TASK_RUNS, run_id)
        return [_task_run(row) for row in rows]

    async def logs(
        self,
        run_id: int,
        task_id: str | None = None,
        attempt: int | None = None,
        offset: int = 0,
    ) -> list[LogRecord]:
        query = LOGS[task_id is not None, attempt is not None]
        args = [a for a in (task_id, attempt) if a is not None]
        with self._errors("read from"):
            rows = await self._connections.fetch(query, run_id, *args, offset)
        return [_log_record(row) for row in rows]

    def _commit_notices(
        self, runs: Collection[DagRun], task_runs: Collection[TaskRun]
    ) -> tuple[str, ...]:
        """The channels a commit notifies: new ready attempts wake the workers, queued
        runs the leader, finished runs whoever waits for them."""
        kinds: set[Notice] = set()
        for tr in task_runs:
            if tr.status is TaskStatus.scheduled:
                kinds.add("work")
                break
        for run in runs:
            if run.status is DagRunStatus.queued:
                kinds.add("changes")
            elif run.status.finished:
                kinds.add("finished")
        return tuple(self._channels[kind] for kind in kinds)

    # -- shared work -----------------------------------------------------------------

    def add_notice_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        self._callbacks.setdefault(kind, []).append(callback)

    def remove_notice_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        callbacks = self._callbacks.get(kind, [])
        if callback in callbacks:
            callbacks.remove(callback)

    def _notify_local(self, kinds: Collection[Notice]) -> None:
        for kind in kinds:
            for callback in list(self._callbacks.get(kind, ())):
                callback()

    def _on_notification(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload == self._sender:
            return  # this process did it, and told its own parts directly
        for kind, name in self._channels.items():
            if name == channel:
                self._notify_local((kind,))

    async def listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        backoff = Backoff()
        interval = self.poll_interval.total_seconds()
        while True:
            conn = await self._connect_retrying(backoff, "cannot listen for notifications at")
            closed = anyio.Event()
            try:
                conn.add_termination_listener(functools.partial(_set_on_close, closed))
                for channel in self._channels.values():
                    await conn.add_listener(channel, self._on_notification)
                # Notices sent while nobody listened are lost: everyone looks now.
                self._notify_local(self._channels)
                while not closed.is_set():
                    with anyio.move_on_after(interval):
                        await closed.wait()
                    if not closed.is_set():
                        await conn.fetchval("SELECT 1")
            except _CONNECTION_ERRORS as exc:
                logger.warning(
                    "lost the notification connection (%s); reconnecting",
                    self._error_text(exc),
                )
            finally:
                with anyio.CancelScope(shield=True):
                    await _close_quietly(conn)

    async def _connect_retrying(
        self, backoff: Backoff, failing: str, on_failure: Callable[[], None] | None = None
    ) -> Any:
        """A connection of its own, retried with ``backoff`` while the server cannot
        be reached; each failure is logged as ``failing`` the redacted DSN."""
        while True:
            try:
                conn = await self._connect()
            except _CONNECTION_ERRORS as exc:
                logger.warning(
                    failing + " %s (%s); retrying in %.1f s",
                    redact_url(self.dsn),
                    self._error_text(exc),
                    backoff.delay,
                )
                if on_failure is not None:
                    on_failure()
                await backoff.sleep()
            else:
                backoff.reset()
                return conn

    async def wait_for_external_change(self) -> None:
        """Return on a ``changes`` notice, or after ``poll_interval`` at the latest.

        A notice that arrives between two calls (while the caller reads the storage)
        makes the next call return at once: it is never lost.
        """
        if self._changes is None:
            self._changes = anyio.Event()
            self.add_notice_callback("changes", self._on_changes)
        with anyio.move_on_after(self.poll_interval.total_seconds()):
            await self._changes.wait()
        self._changes = anyio.Event()

    def _on_changes(self) -> None:
        if self._changes is not None:
            self._changes.set()

    @contextlib.asynccontextmanager
    async def leadership(
        self, on_standby: Callable[[], None] | None = None
    ) -> AsyncIterator[Leadership]:
        if self._leader is not None:
            raise RuntimeError("this storage already holds the leadership")
        conn = await self._lock_leader(on_standby or _nothing)
        leader = _PostgresLeadership(conn, self.poll_interval.total_seconds())
        self._leader = leader
        try:
            yield leader
        finally:
            self._leader = None
            leader.lost.set()
            with anyio.CancelScope(shield=True):
                await _close_quietly(conn)  # ends the session: the lock is released

    async def _lock_leader(self, on_standby: Callable[[], None]) -> Any:
        """Connect and wait for the leader lock, retrying with backoff on errors."""
        key = _lock_key(f"ppacer_async.leader:{self.schema}")
        backoff = Backoff()
        interval = self.poll_interval.total_seconds()
        while True:
            conn = await self._connect_retrying(
                backoff, "cannot connect to schedule at", on_failure=on_standby
            )
            try:
                while True:
                    if await conn.fetchval(TRY_LEADER_LOCK, key):
                        return conn
                    on_standby()
                    await anyio.sleep(interval)
            except _CONNECTION_ERRORS as exc:
                logger.warning(
                    "lost the connection while waiting to schedule (%s); reconnecting",
                    self._error_text(exc),
                )
                await _close_quietly(conn)
                await backoff.sleep()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await _close_quietly(conn)
                raise

    async def register_worker(self, worker_id: str, role: str, now: datetime) -> None:
        host = os.uname().nodename
        with self._errors("write to"):
            await self._connections.execute(
                REGISTER_WORKER, worker_id, host, os.getpid(), role, to_utc(now), self.lease
            )

    async def unregister_worker(self, worker_id: str) -> None:
        with self._errors("write to"):
            await self._connections.execute(UNREGISTER_WORKER, worker_id)

    async def renew_leases(self, worker_id: str) -> None:
        with self._errors("write to"):
            await self._connections.execute(RENEW_LEASES, worker_id, self.lease)

    async def claim(
        self, worker_id: str, dag_ids: Collection[str], limit: int, now: datetime
    ) -> tuple[list[tuple[DagRun, TaskRun]], int | None]:
        if limit < 1 or not dag_ids:
            return [], None
        counting = time.monotonic() >= self._next_count or not self._counted_left
        query = CLAIM_COUNTING if counting else CLAIM
        args = (worker_id, list(dag_ids), limit, to_utc(now), self.lease)
        with self._errors("claim work from"):
            async with self._claim_lock:
                if self._pool is None:
                    raise StorageError("PostgresStorage is not open; call await storage.open()")
                try:
                    if self._claiming is None:
                        self._claiming = await self._connect(**CLAIM_SETTINGS)
                    rows = await self._claiming.fetch(query, *args)
                except _CONNECTION_ERRORS:
                    claiming, self._claiming = self._claiming, None
                    if claiming is not None:
                        await _close_quietly(claiming)  # reconnect at the next claim
                    raise
        left: int | None = None
        if not rows:
            left = 0
        elif counting:
            left = rows[0]["scheduled_before"] - len(rows)
            self._next_count = time.monotonic() + COUNT_EVERY
        if left is not None:
            self._counted_left = left
        runs: dict[int, DagRun] = {}
        claimed = []
        for row in rows:
            run = runs.get(row["id"])
            if run is None:
                run = runs[row["id"]] = _dag_run(row, "run_")
            claimed.append((run, _task_run(row)))
        return claimed, left

    async def upstream_results(
        self, keys: Collection[tuple[int, str]]
    ) -> dict[tuple[int, str], Any]:
        if not keys:
            return {}
        run_ids, task_ids = zip(*keys, strict=True)
        with self._errors("read from"):
            rows = await self._connections.fetch(UPSTREAM_RESULTS, run_ids, task_ids)
        return {(row["run_id"], row["task_id"]): row["result"] for row in rows}

    async def report(
        self,
        worker_id: str,
        outcomes: Collection[TaskRun],
        logs: Collection[LogRecord],
        *,
        notify: bool = True,
    ) -> set[tuple[int, str, int]]:
        if not outcomes and not logs:
            return set()
        for tr in outcomes:
            _check_member(tr.status, _OUTCOMES, f"outcome of task {tr.task_id!r}")
        columns: list[tuple[Any, ...]] = [()] * 7
        if outcomes:
            columns = list(
                zip(
                    *[
                        (
                            tr.run_id,
                            tr.task_id,
                            tr.attempt,
                            tr.status,
                            tr.finished_at,
                            None if tr.error is None else _text(tr.error),
                            None if tr.result is None else _result_json(tr),
                        )
                        for tr in outcomes
                    ],
                    strict=True,
                )
            )
        log_columns: list[tuple[Any, ...]] = [()] * 6
        if logs:
            log_columns = list(
                zip(
                    *[
                        (r.run_id, r.task_id, r.attempt, r.time, r.level, _text(r.message))
                        for r in logs
                    ],
                    strict=True,
                )
            )
        with self._errors("report to"):
            rows = await self._connections.fetch(
                REPORT,
                worker_id,
                *columns,
                *log_columns,
                self._channels["outcomes"] if notify else None,
                self._sender,
            )
        return {(row["run_id"], row["task_id"], row["attempt"]) for row in rows}

    async def reported_outcomes(self, dag_ids: Collection[str], limit: int) -> list[TaskRun]:
        if not dag_ids:
            return []
        with self._errors("read from"):
            rows = await self._connections.fetch(REPORTED_OUTCOMES, list(dag_ids), limit)
        return [_task_run(row) for row in rows]

    async def reap(self) -> list[TaskRun]:
        with self._errors("write to"):
            rows = await self._connections.fetch(REAP, self._channels["outcomes"], self._sender)
        return [_task_run(row) for row in rows]

    async def workers(self) -> list[WorkerInfo]:
        with self._errors("read from"):
            rows = await self._connections.fetch(WORKERS)
        return [WorkerInfo(**row) for row in rows]

    async def counts(self) -> StorageCounts:
        with self._errors("read from"):
            row = await self._connections.fetchrow(COUNTS)
        return StorageCounts(
            schema_version=row["schema_version"],
            dags=row["dags"],
            dag_runs=row["dag_runs"],
            task_runs=row["task_runs"],
            task_logs=row["task_logs"],
            schedule_events=row["schedule_events"],
        )


_OUTCOMES = frozenset(
    {
        TaskStatus.success,
        TaskStatus.failed,
        TaskStatus.up_for_retry,
        TaskStatus.skipped,
        TaskStatus.cancelled,
        TaskStatus.interrupted,
    }
)


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def _close_quietly(conn: Any) -> None:
    """Close a connection that may already be broken."""
    with contextlib.suppress(Exception), anyio.move_on_after(CLOSE_TIMEOUT):
        await conn.close()
    if not conn.is_closed():
        conn.terminate()


def _nothing() -> None:
    pass


def _set_on_close(event: anyio.Event, conn: Any) -> None:
    event.set()


def _commit_arguments(
    runs: Collection[DagRun], task_runs: Collection[TaskRun], logs: Collection[LogRecord]
) -> list[tuple[Any, ...]]:
    """Transpose the rows of one commit into the column arrays that COMMIT unnests,
    leaving out the kinds that have no rows. Everything is checked before anything is
    sent: bad input raises with nothing written."""
    args: list[tuple[Any, ...]] = []
    if runs:
        for run in runs:
            _check_member(run.status, _RUN_STATUSES, f"status of run {run.id}")
            _check_member(run.trigger, _RUN_TRIGGERS, f"trigger of run {run.id}")
        args += zip(
            *[(r.id, r.status, r.trigger, r.started_at, r.finished_at) for r in runs],
            strict=True,
        )
    if task_runs:
        for tr in task_runs:
            if tr.status not in _TASK_STATUSES or tr.reason not in _ATTEMPT_REASONS:
                where = f"task {tr.task_id!r} attempt {tr.attempt} of run {tr.run_id}"
                _check_member(tr.status, _TASK_STATUSES, f"status of {where}")
                _check_member(tr.reason, _ATTEMPT_REASONS, f"reason of {where}")
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
                    None if tr.error is None else _text(tr.error),
                    None if tr.result is None else _result_json(tr),
                )
                for tr in task_runs
            ],
            strict=True,
        )
    if logs:
        args += zip(
            *[(r.run_id, r.task_id, r.attempt, r.time, r.level, _text(r.message)) for r in logs],
            strict=True,
        )
    return args
