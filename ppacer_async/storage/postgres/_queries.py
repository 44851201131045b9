"""The SQL of the PostgreSQL storage.

Every name is unqualified: connections set search_path to the storage's schema. The
kind list of LAST_SCHEDULE_POINT is SCHEDULE_KINDS of storage/memory.py.
"""

from __future__ import annotations

import itertools

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
#: The filters of ``list_runs``, in the order their arguments are passed.
LIST_RUNS_FILTERS = ("dag_id = {}", "status = {}", "logical_time >= {}", "id < {}")


def _list_runs(present: tuple[bool, ...]) -> str:
    conditions: list[str] = []
    for condition, given in zip(LIST_RUNS_FILTERS, present, strict=True):
        if given:
            conditions.append(condition.format(f"${len(conditions) + 1}"))
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return _LIST_RUNS.format(where=where, limit=f"${len(conditions) + 1}")


#: One statement per combination of the filters that are given.
LIST_RUNS = {
    present: _list_runs(present)
    for present in itertools.product((False, True), repeat=len(LIST_RUNS_FILTERS))
}

ACTIVE_RUNS = f"""
SELECT {_RUN_COLUMNS} FROM dag_runs WHERE status IN ('queued', 'running') ORDER BY id
"""

TASK_RUNS = f"""
SELECT {_TASK_RUN_COLUMNS} FROM task_runs WHERE run_id = $1 ORDER BY task_id, attempt
"""

# A NULL limit is no limit.
_LOGS = """
SELECT run_id, task_id, attempt, time, level, message FROM task_logs
WHERE run_id = $1 {where} ORDER BY id OFFSET {offset} LIMIT {limit}
"""
LOGS = {
    (False, False): _LOGS.format(where="", offset="$2", limit="$3"),
    (True, False): _LOGS.format(where="AND task_id = $2", offset="$3", limit="$4"),
    (False, True): _LOGS.format(where="AND attempt = $2", offset="$3", limit="$4"),
    (True, True): _LOGS.format(where="AND task_id = $2 AND attempt = $3", offset="$4", limit="$5"),
}

# -- shared work ------------------------------------------------------------------------
#
# See sql/postgres/0003_shared_work.sql for the life of an attempt across processes.

REGISTER_WORKER = """
INSERT INTO workers (id, host, pid, role, started_at, renewed_at, expires_at, dag_ids)
VALUES ($1, $2, $3, $4, $5, now(), now() + $6::interval, $7)
ON CONFLICT (id) DO UPDATE
SET renewed_at = now(), expires_at = EXCLUDED.expires_at, dag_ids = EXCLUDED.dag_ids
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
# without bitmap scans or sorts (CLAIM_SETTINGS, claims.py). A bitmap scan, or a sort of every
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
SELECT id, host, pid, role, started_at, renewed_at, expires_at, dag_ids FROM workers
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
