"""The SQL of the PostgreSQL storage.

Fixed statements are named in ``sql/postgres/queries.sql`` and taken from it here;
the statements whose text depends on the call (the shape of a commit, which optional
filters a read has) are put together below from the same columns.
"""

from __future__ import annotations

import itertools

from .._queries import NamedQueries

_named = NamedQueries.load("postgres")

GET_DAG = _named.take("get_dag")
LIST_DAGS = _named.take("list_dags")
LATEST_DAG_VERSION = _named.take("latest_dag_version")
INSERT_DAG = _named.take("insert_dag")
LOCK_DAG = _named.take("lock_dag")
INSERT_DAG_VERSION = _named.take("insert_dag_version")
SET_PAUSED = _named.take("set_paused")
CREATE_RUN = _named.take("create_run")
INSERT_SCHEDULE_EVENT = _named.take("insert_schedule_event")
LAST_SCHEDULE_POINT = _named.take("last_schedule_point")
SCHEDULE_EVENTS = _named.take("schedule_events")
EXISTING_RUN_IDS = _named.take("existing_run_ids")
GET_RUN = _named.take("get_run")
ACTIVE_RUNS = _named.take("active_runs")
TASK_RUNS = _named.take("task_runs")
COUNTS = _named.take("counts")
REGISTER_WORKER = _named.take("register_worker")
UNREGISTER_WORKER = _named.take("unregister_worker")
RENEW_LEASES = _named.take("renew_leases")
CLAIM = _named.take("claim")
CLAIM_COUNTING = _named.take("claim_counting")
UPSTREAM_RESULTS = _named.take("upstream_results")
REPORT = _named.take("report")
REPORTED_OUTCOMES = _named.take("reported_outcomes")
REAP = _named.take("reap")
LEASE_DUE = _named.take("lease_due")
WORKERS = _named.take("workers")
SAVE_POOLS = _named.take("save_pools")
POOLS = _named.take("pools")
TRY_LEADER_LOCK = _named.take("try_leader_lock")
MIGRATE_LOCK = _named.take("migrate_lock")
SCHEMA_EXISTS = _named.take("schema_exists")
SCHEMA_RELATIONS = _named.take("schema_relations")
RECORD_VERSION = _named.take("record_version")
CURRENT_VERSION = _named.take("current_version")

RENEW_WORKER = _named.take("renew_worker")
PRUNE_SELECT_RUNS = _named.take("prune_select_runs")
PRUNE_RUN_EVENTS = _named.take("prune_run_events")
PRUNE_LOGS = _named.take("prune_logs")
PRUNE_TASK_RUNS = _named.take("prune_task_runs")
PRUNE_RUNS = _named.take("prune_runs")
PRUNE_ORPHAN_EVENTS = _named.take("prune_orphan_events")
PRUNABLE = _named.take("prunable")

_named.check_all_taken()

_RUN_COLUMNS = (
    "id, dag_id, logical_time, status, trigger, params, dag_version, "
    "created_at, started_at, finished_at, note"
)

_TASK_RUN_COLUMNS = (
    "run_id, task_id, attempt, status, reason, scheduled_at, started_at, finished_at, error, result"
)

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
        started_at = u.started_at, finished_at = u.finished_at, note = u.note
    FROM unnest(
        $1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
        $6::text[]
    ) AS u (id, status, trigger, started_at, finished_at, note)
    WHERE d.id = u.id {guarded}
        -- a cancelled run stays cancelled until it is queued again (a restart)
        AND (d.status <> 'cancelled' OR u.status IN ('cancelled', 'queued'))
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
        result = EXCLUDED.result,
        -- a sensor's attempt is scheduled again for its next poke: its last poke's
        -- outcome was applied
        outcome = CASE WHEN EXCLUDED.status = 'scheduled' THEN NULL ELSE task_runs.outcome END
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
    present, in the order runs (6), task runs (10), logs (6), then the channels to
    notify (sent only if the transaction commits) and the notices' payload."""
    guarded = "AND (SELECT ok FROM guard)" if runs else ""
    parts = [_COMMIT_GUARD, _COMMIT_RUNS.format(guarded=guarded)] if runs else []
    first = 7 if runs else 1
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
