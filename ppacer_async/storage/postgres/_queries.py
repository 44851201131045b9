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
DAG_PAUSES = _named.take("dag_pauses")
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
CLAIM_KEYS = _named.take("claim_keys")
HELD = _named.take("held")
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
    WHERE d.id = u.id{guarded}
        -- a cancelled run stays cancelled until it is queued again (a restart)
        AND (d.status <> 'cancelled' OR u.status IN ('cancelled', 'queued'))
)"""

_COMMIT_TASK_RUNS = f"""upserted_task_runs AS (
    INSERT INTO task_runs ({_TASK_RUN_COLUMNS}{{lease_columns}})
    SELECT run_id, task_id, attempt, {{status}}, reason, scheduled_at, {{started_at}},
        finished_at, error, result::jsonb{{lease_values}}
    FROM unnest(
        ${{0}}::bigint[], ${{1}}::text[], ${{2}}::integer[], ${{3}}::text[], ${{4}}::text[],
        ${{5}}::timestamptz[], ${{6}}::timestamptz[], ${{7}}::timestamptz[], ${{8}}::text[],
        ${{9}}::text[]{{leased_array}}
    ) AS u (
        run_id, task_id, attempt, status, reason, scheduled_at, started_at,
        finished_at, error, result{{leased_column}}
    )
    WHERE true{{guarded}}
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
        outcome = CASE WHEN EXCLUDED.status = 'scheduled'{{leased_outcome}} THEN NULL
            ELSE task_runs.outcome END{{lease_update}}
)"""

_COMMIT_LOGS = """inserted_logs AS (
    INSERT INTO task_logs (run_id, task_id, attempt, time, level, message)
    SELECT run_id, task_id, attempt, time, level, message
    FROM unnest(
        ${0}::bigint[], ${1}::text[], ${2}::integer[], ${3}::timestamptz[], ${4}::text[],
        ${5}::text[]
    ) AS u (run_id, task_id, attempt, time, level, message)
    WHERE true{guarded}
)"""

# Claiming for the committing process's own workers (``LocalClaim``), only while no
# other live process executes attempts of its DAGs: then it has no one to leave them
# to. Otherwise the attempts stay scheduled, for every process to claim alike.
_COMMIT_ALONE = """alone AS (
    SELECT NOT EXISTS (
        SELECT 1 FROM workers
        WHERE id <> ${owner}::text AND expires_at >= now() AND role <> 'scheduler'
            AND dag_ids && ${dags}::text[]
    ) AS ok
)"""

# The scheduled rows marked ``leased`` are written running instead, under the
# committing process's lease, as a claim would write them; other rows keep theirs.
_LEASED = "u.leased AND (SELECT ok FROM alone)"
_LEASE_PARTS = {
    "lease_columns": ", lease_owner, lease_expires_at",
    "status": f"CASE WHEN {_LEASED} THEN 'running' ELSE u.status END",
    "started_at": (
        f"CASE WHEN {_LEASED} THEN coalesce(u.started_at, ${{now}}::timestamptz)\n"
        "        ELSE u.started_at END"
    ),
    "lease_values": (
        f",\n        CASE WHEN {_LEASED} THEN ${{owner}}::text END,"
        f"\n        CASE WHEN {_LEASED} THEN now() + ${{lease}}::interval END"
    ),
    "leased_array": ", ${leased}::boolean[]",
    "leased_column": ", leased",
    "leased_outcome": " OR EXCLUDED.lease_owner IS NOT NULL",
    # an attempt's lease ends with it (its outcome is applied)
    "lease_update": """,
        lease_owner = CASE WHEN EXCLUDED.status = 'running'
            THEN coalesce(EXCLUDED.lease_owner, task_runs.lease_owner) END,
        lease_expires_at = CASE WHEN EXCLUDED.status = 'running'
            THEN coalesce(EXCLUDED.lease_expires_at, task_runs.lease_expires_at) END""",
}
_PLAIN_PARTS = {
    "lease_columns": "",
    "status": "status",
    "started_at": "started_at",
    "lease_values": "",
    "leased_array": "",
    "leased_column": "",
    "leased_outcome": "",
    "lease_update": "",
}

# The attempts whose outcomes the committing process applies without reporting them
# first: the commit writes nothing unless each is still its own (running under its
# lease, not reaped), locked so that a reap waits for the commit and then finds it
# finished.
_COMMIT_HELD = """held AS (
    SELECT h.ok
    FROM unnest(${0}::bigint[], ${1}::text[], ${2}::integer[]) AS k (run_id, task_id, attempt)
    CROSS JOIN LATERAL (
        SELECT t.lease_owner = ${owner}::text AND t.status = 'running' AND t.outcome IS NULL
            AS ok
        FROM task_runs AS t
        WHERE t.run_id = k.run_id AND t.task_id = k.task_id AND t.attempt = k.attempt
        FOR UPDATE OF t
    ) AS h
),
held_ok AS (
    SELECT count(*) FILTER (WHERE ok) = cardinality(${0}::bigint[]) AS ok FROM held
)"""

# Attempts stored ``scheduled`` by an earlier commit, claimed by key when no process
# took them since (one concurrently changed is left out).
#
# Here and in ``held``, each key is one primary-key lookup (a LATERAL subquery on the
# key alone), and the claimed rows are updated by their ctid; the status is tested with
# IS NOT DISTINCT FROM, which no partial index matches. Written as a join on the keys
# and ``status = 'scheduled'``, the planner reads every ready (or running) row instead,
# through their partial index or a hash join, when its statistics still count the rows
# of a large fan-out as few: each step of such a run would cost more the more
# attempts it has.
_COMMIT_CLAIMED = """claimed AS (
    UPDATE task_runs AS t
    SET status = 'running', started_at = coalesce(t.started_at, ${now}::timestamptz),
        lease_owner = ${owner}::text, lease_expires_at = now() + ${lease}::interval
    WHERE t.ctid = ANY (ARRAY(
            SELECT f.ctid
            FROM unnest(${0}::bigint[], ${1}::text[], ${2}::integer[])
                AS k (run_id, task_id, attempt)
            CROSS JOIN LATERAL (
                SELECT ctid FROM task_runs AS r
                WHERE r.run_id = k.run_id AND r.task_id = k.task_id AND r.attempt = k.attempt
                LIMIT 1  -- a lookup per key, not a join the planner may turn into a scan
            ) AS f
        ))
        AND t.status IS NOT DISTINCT FROM 'scheduled' AND (SELECT ok FROM alone){guarded}
    RETURNING t.run_id, t.task_id, t.attempt
)"""


def _commit_statement(runs: bool, task_runs: bool, logs: bool, claiming: bool = False) -> str:
    """The COMMIT statement for one shape; its parameters are the arrays of the parts
    present, in the order runs (6), task runs (10, and whether each is leased when
    ``claiming``), logs (6); when ``claiming`` (a ``LocalClaim``), the claiming
    process, its lease, now, its DAG ids, the keys of the stored attempts it claims (3
    arrays), the keys of the attempts it holds whose outcomes the commit applies (3
    arrays) and the channels to notify if it claims nothing; then the channels to
    notify (sent only if the transaction commits) and the notices' payload.

    It returns whether it wrote (``ok``: false if a run does not exist), and when
    ``claiming`` whether the attempts applied were still held (``held``: if not, it
    wrote nothing), whether it claimed (``alone``) and the keys of the stored attempts
    it claimed (three arrays, NULL when none)."""
    conditions = ["(SELECT ok FROM guard)"] if runs else []
    n = 7 if runs else 1
    task_at, n = n, n + (10 + claiming if task_runs else 0)
    logs_at, n = n, n + (6 if logs else 0)
    owner, lease, now, dags = n, n + 1, n + 2, n + 3
    stored, held, fallback = range(n + 4, n + 7), range(n + 7, n + 10), n + 10
    parts = [_COMMIT_GUARD] if runs else []
    if claiming:
        n += 11
        parts.append(_COMMIT_ALONE.format(owner=owner, dags=dags))
        parts.append(_COMMIT_HELD.format(*held, owner=owner))
        conditions.append("(SELECT ok FROM held_ok)")
    guarded = "".join(f" AND {c}" for c in conditions)
    if runs:
        parts.append(_COMMIT_RUNS.format(guarded=guarded))
    if task_runs:
        if claiming:
            lease_parts = {
                key: value.format(owner=owner, lease=lease, now=now, leased=task_at + 10)
                for key, value in _LEASE_PARTS.items()
            }
        else:
            lease_parts = _PLAIN_PARTS
        numbers = range(task_at, task_at + 10)
        parts.append(_COMMIT_TASK_RUNS.format(*numbers, guarded=guarded, **lease_parts))
    if logs:
        parts.append(_COMMIT_LOGS.format(*range(logs_at, logs_at + 6), guarded=guarded))
    ok = "(SELECT ok FROM guard)" if runs else "true"
    channels = f"${n}::text[]"
    claimed = ""
    if claiming:
        parts.append(
            _COMMIT_CLAIMED.format(*stored, now=now, owner=owner, lease=lease, guarded=guarded)
        )
        channels = (
            f"({channels} || CASE WHEN (SELECT ok FROM alone) THEN '{{}}'::text[]"
            f" ELSE ${fallback}::text[] END)"
        )
        claimed = (
            ", (SELECT ok FROM held_ok) AS held, (SELECT ok FROM alone) AS alone,"
            " k.run_ids, k.task_ids, k.attempts\n"
            "FROM (SELECT array_agg(run_id) AS run_ids, array_agg(task_id) AS task_ids,"
            " array_agg(attempt) AS attempts FROM claimed) AS k"
        )
    notify = f"(SELECT count(pg_notify(c, ${n + 1})) FROM unnest({channels}) AS c)"
    if conditions and claiming:
        # no notice from a commit that wrote nothing
        notify = f"CASE WHEN {' AND '.join(conditions)} THEN {notify} END"
    return "WITH " + ",\n".join(parts) + f"\nSELECT {ok} AS ok, {notify} AS notified{claimed}"


COMMIT = {
    (runs, task_runs, logs, claiming): _commit_statement(runs, task_runs, logs, claiming)
    for runs in (False, True)
    for task_runs in (False, True)
    for logs in (False, True)
    for claiming in (False, True)
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
