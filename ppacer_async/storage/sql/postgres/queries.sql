-- The named queries of the PostgreSQL storage, loaded by name (storage/_queries.py).
--
-- Each query starts with a line "-- name --", then lines of "-- description", then
-- the statement, up to the next name. Names are unqualified: connections set
-- search_path to the storage's schema. Statements whose text depends on the call (a
-- commit's shape, optional filters) are put together in postgres/_queries.py.

-- get_dag --
-- A DAG with its latest version.
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
WHERE d.dag_id = $1

-- dag_pauses --
-- Whether each DAG is paused, without its definition (the leader reads this at every
-- change and every poll interval; a definition can be many megabytes).
SELECT dag_id, paused, resume_after FROM dags ORDER BY dag_id

-- list_dags --
-- Every DAG with its latest version, by id.
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
ORDER BY d.dag_id

-- latest_dag_version --
SELECT version, definition_hash FROM dag_versions
WHERE dag_id = $1 ORDER BY version DESC LIMIT 1

-- insert_dag --
INSERT INTO dags (dag_id, created_at) VALUES ($1, $2) ON CONFLICT (dag_id) DO NOTHING

-- lock_dag --
-- Serialises the versions of one DAG written by processes starting together.
SELECT 1 FROM dags WHERE dag_id = $1 FOR UPDATE

-- insert_dag_version --
INSERT INTO dag_versions (dag_id, version, definition_hash, definition, created_at)
VALUES ($1, $2, $3, $4, $5)

-- set_paused --
-- $4, $5: the channel and payload of the notice.
UPDATE dags SET paused = $2, resume_after = $3 WHERE dag_id = $1 RETURNING pg_notify($4, $5)

-- create_run --
-- One statement, so one round trip and atomic without BEGIN/COMMIT. The NOT EXISTS test
-- refuses a taken point before a sequence value is drawn, so ids stay dense; ON CONFLICT
-- covers the race between two schedulers, and repeats the partial index's predicate
-- because that is how PostgreSQL picks a partial index as the arbiter. $8: the schedule
-- event to record with the run, or NULL; $9, $10: the notice.
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
    RETURNING id, dag_id, logical_time, status, trigger, params, dag_version,
        created_at, started_at, finished_at, note
), event AS (
    INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id)
    SELECT dag_id, logical_time, $8::text, created_at, id FROM run
    WHERE $8::text IS NOT NULL
)
SELECT id, dag_id, logical_time, status, trigger, params, dag_version,
    created_at, started_at, finished_at, note, pg_notify($9, $10)
FROM run

-- insert_schedule_event --
INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id)
VALUES ($1, $2, $3, $4, $5)

-- last_schedule_point --
-- The kinds are SCHEDULE_KINDS of storage/_codec.py: those that move the schedule on.
SELECT max(logical_time) FROM schedule_events
WHERE dag_id = $1 AND kind IN ('regular', 'caught_up', 'skipped')

-- schedule_events --
SELECT dag_id, logical_time, kind, created_at, run_id FROM schedule_events
WHERE dag_id = $1
ORDER BY logical_time DESC, id DESC
LIMIT $2

-- existing_run_ids --
-- Which of the runs a refused commit named do exist (for its error message).
SELECT id FROM dag_runs WHERE id = ANY($1::bigint[])

-- get_run --
SELECT id, dag_id, logical_time, status, trigger, params, dag_version,
    created_at, started_at, finished_at, note
FROM dag_runs WHERE id = $1

-- active_runs --
SELECT id, dag_id, logical_time, status, trigger, params, dag_version,
    created_at, started_at, finished_at, note
FROM dag_runs WHERE status IN ('queued', 'running') ORDER BY id

-- task_runs --
SELECT run_id, task_id, attempt, status, reason, scheduled_at, started_at, finished_at,
    error, result
FROM task_runs WHERE run_id = $1 ORDER BY task_id, attempt

-- counts --
SELECT
    (SELECT max(version) FROM schema_version) AS schema_version,
    (SELECT count(*) FROM dags) AS dags,
    (SELECT count(*) FROM dag_runs) AS dag_runs,
    (SELECT count(*) FROM task_runs) AS task_runs,
    (SELECT count(*) FROM task_logs) AS task_logs,
    (SELECT count(*) FROM schedule_events) AS schedule_events

-- -- shared work: see 0003_shared_work.sql for the life of an attempt across processes.

-- register_worker --
-- Records a serving process and the DAGs it serves ($7), or renews its record; $6:
-- the lease.
INSERT INTO workers (id, host, pid, role, started_at, renewed_at, expires_at, dag_ids)
VALUES ($1, $2, $3, $4, $5, now(), now() + $6::interval, $7)
ON CONFLICT (id) DO UPDATE
SET renewed_at = now(), expires_at = EXCLUDED.expires_at, dag_ids = EXCLUDED.dag_ids

-- unregister_worker --
DELETE FROM workers WHERE id = $1

-- renew_leases --
-- Only the attempts the process holds ($3-$5: run ids, task ids, attempts): a row it
-- claimed without learning so (the connection dropped before the reply) is left to
-- expire and be reaped, rather than kept alive by a process that will never end it.
UPDATE task_runs AS t SET lease_expires_at = now() + $2::interval
FROM unnest($3::bigint[], $4::text[], $5::int[]) AS h(run_id, task_id, attempt)
WHERE t.run_id = h.run_id AND t.task_id = h.task_id AND t.attempt = h.attempt
    AND t.lease_owner = $1 AND t.status = 'running' AND t.outcome IS NULL

-- claim --
-- Claims read the ready index (task_runs_ready) in its order and stop at the limit:
-- the DAG test is a scalar subquery, not a join, and the connection that claims plans
-- without bitmap scans or sorts (CLAIM_SETTINGS in claims.py). A bitmap scan, or a sort
-- of every ready row, would read every entry of the index each time, including those of
-- rows claimed since the last vacuum, so a claim would cost more the more rows were made
-- ready at once; read in order, such entries are marked dead and skipped.
-- $1: the worker, $2: its DAG ids, $3: the most to claim, $4: now, $5: the lease. A
-- sensor poked again keeps its first poke as started_at (its deadline counts from it).
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
SET status = 'running', started_at = coalesce(t.started_at, $4), lease_owner = $1,
    lease_expires_at = now() + $5::interval
FROM picked AS p, dag_runs AS d
WHERE t.run_id = p.run_id AND t.task_id = p.task_id AND t.attempt = p.attempt
    AND d.id = t.run_id
RETURNING d.id, d.dag_id, d.logical_time, d.status AS run_status, d.trigger, d.params,
    d.dag_version, d.created_at, d.started_at AS run_started_at,
    d.finished_at AS run_finished_at, d.note, t.run_id, t.task_id, t.attempt, t.status, t.reason,
    t.scheduled_at, t.started_at, t.finished_at, t.error, t.result,
    NULL::bigint AS scheduled_before

-- claim_counting --
-- claim, also counting the ready rows there were. The count costs more than the claim
-- itself, so claims.py asks for it at most every COUNT_EVERY seconds (and whenever the
-- last count found none).
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
SET status = 'running', started_at = coalesce(t.started_at, $4), lease_owner = $1,
    lease_expires_at = now() + $5::interval
FROM picked AS p, dag_runs AS d
WHERE t.run_id = p.run_id AND t.task_id = p.task_id AND t.attempt = p.attempt
    AND d.id = t.run_id
RETURNING d.id, d.dag_id, d.logical_time, d.status AS run_status, d.trigger, d.params,
    d.dag_version, d.created_at, d.started_at AS run_started_at,
    d.finished_at AS run_finished_at, d.note, t.run_id, t.task_id, t.attempt, t.status, t.reason,
    t.scheduled_at, t.started_at, t.finished_at, t.error, t.result,
    (SELECT count(*) FROM task_runs WHERE status = 'scheduled') AS scheduled_before

-- claim_keys --
-- Claim given scheduled attempts by key (those the leader, this process, made ready and
-- keeps in memory), as claim does; those taken or changed meanwhile are left out. One
-- primary-key lookup per key, the rows updated by ctid (see _COMMIT_CLAIMED in
-- _queries.py). $1: the worker, $2-$4: the keys, $5: now, $6: the lease.
UPDATE task_runs AS t
SET status = 'running', started_at = coalesce(t.started_at, $5), lease_owner = $1,
    lease_expires_at = now() + $6::interval
WHERE t.ctid = ANY (ARRAY(
        SELECT f.ctid
        FROM unnest($2::bigint[], $3::text[], $4::integer[]) AS k (run_id, task_id, attempt)
        CROSS JOIN LATERAL (
            SELECT ctid FROM task_runs AS r
            WHERE r.run_id = k.run_id AND r.task_id = k.task_id AND r.attempt = k.attempt
            LIMIT 1  -- a lookup per key, not a join the planner may turn into a scan
        ) AS f
    ))
    AND t.status IS NOT DISTINCT FROM 'scheduled'
RETURNING t.run_id, t.task_id, t.attempt

-- held --
-- Which of the given attempts $2-$4 worker $1 still holds (running under its lease, no
-- outcome): one primary-key lookup per key.
SELECT k.run_id, k.task_id, k.attempt
FROM unnest($2::bigint[], $3::text[], $4::integer[]) AS k (run_id, task_id, attempt)
CROSS JOIN LATERAL (
    SELECT t.lease_owner = $1 AND t.status = 'running' AND t.outcome IS NULL AS ok
    FROM task_runs AS t
    WHERE t.run_id = k.run_id AND t.task_id = k.task_id AND t.attempt = k.attempt
    LIMIT 1
) AS h
WHERE h.ok

-- upstream_results --
SELECT t.run_id, t.task_id, t.result
FROM unnest($1::bigint[], $2::text[]) AS k (run_id, task_id)
JOIN task_runs AS t ON t.run_id = k.run_id AND t.task_id = k.task_id
WHERE t.status = 'success' AND t.result IS NOT NULL

-- report --
-- The lease check makes a report and a reap of the same attempt exclude each other: both
-- update the row, so the second waits for the first and then finds the lease gone.
-- $1: the worker; $2-$8: the outcomes' columns; $9-$14: the logs' columns; $15, $16:
-- the notice (no notice when $15 is NULL).
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

-- reported_outcomes --
-- Outcomes reported and not yet applied by the leader, oldest first.
SELECT t.run_id, t.task_id, t.attempt, t.outcome AS status, t.reason, t.scheduled_at,
    t.started_at, t.finished_at, t.error, t.result
FROM task_runs AS t JOIN dag_runs AS d ON d.id = t.run_id
WHERE t.status = 'running' AND t.outcome IS NOT NULL AND d.dag_id = ANY($1::text[])
ORDER BY t.finished_at, t.run_id, t.task_id
LIMIT $2

-- reap --
-- Attempts whose lease ran out are reported interrupted on their owner's behalf, and
-- processes that stopped renewing are forgotten; $1, $2: the notice.
WITH reaped AS (
    UPDATE task_runs AS t
    SET outcome = 'interrupted', finished_at = now(), lease_owner = NULL,
        lease_expires_at = NULL,
        error = 'the process running this attempt (' || coalesce(t.lease_owner, 'unknown')
            || ') stopped renewing its lease: it crashed, hung or lost the database'
    WHERE t.status = 'running' AND t.outcome IS NULL
        AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
    RETURNING t.run_id, t.task_id, t.attempt, t.outcome AS status, t.reason,
        t.scheduled_at, t.started_at, t.finished_at, t.error, t.result
), gone AS (
    DELETE FROM workers WHERE expires_at < now()
)
SELECT reaped.*, pg_notify($1, $2) FROM reaped

-- lease_due --
-- How long until the earliest lease of a running attempt runs out (zero or less: it has;
-- NULL: no attempt is leased), on the database's clock: the reaper sleeps that long.
SELECT min(coalesce(lease_expires_at, now())) - now() AS due
FROM task_runs
WHERE status = 'running' AND outcome IS NULL

-- save_pools --
-- The scheduling process replaces its pools' counts as a whole; $1-$4: the pools'
-- columns, $5: now.
WITH gone AS (
    DELETE FROM pools WHERE NOT (name = ANY($1::text[]))
)
INSERT INTO pools (name, slots, used, waiting, updated_at)
SELECT name, slots, used, waiting, $5
FROM unnest($1::text[], $2::integer[], $3::integer[], $4::integer[])
    AS u (name, slots, used, waiting)
ON CONFLICT (name) DO UPDATE SET slots = EXCLUDED.slots, used = EXCLUDED.used,
    waiting = EXCLUDED.waiting, updated_at = EXCLUDED.updated_at

-- pools --
SELECT name, slots, used, waiting, updated_at FROM pools ORDER BY name

-- workers --
SELECT id, host, pid, role, started_at, renewed_at, expires_at, dag_ids FROM workers
WHERE expires_at >= now() ORDER BY id

-- try_leader_lock --
-- The session advisory lock of the process that schedules (leadership.py).
SELECT pg_try_advisory_lock($1)

-- -- migrations (migrations.py): run before search_path's schema may exist.

-- migrate_lock --
SELECT pg_advisory_xact_lock($1)

-- schema_exists --
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)

-- schema_relations --
SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname

-- record_version --
-- {schema}: the quoted schema name, filled in by migrations.py.
INSERT INTO {schema}.schema_version (version) VALUES ($1)

-- current_version --
SELECT max(version) FROM {schema}.schema_version

-- renew_worker --
-- A process's workers row, renewed from its watchdog thread while its loop is blocked.
UPDATE workers SET renewed_at = now(), expires_at = now() + $2::interval WHERE id = $1

-- prune_select_runs --
-- Up to $4 runs that finished before $1 with a status in $2 (of DAG $3, or any),
-- oldest first, locked for deleting; a run locked elsewhere is left for later.
SELECT id FROM dag_runs
WHERE finished_at < $1 AND status = ANY($2::text[]) AND ($3::text IS NULL OR dag_id = $3)
ORDER BY finished_at LIMIT $4 FOR UPDATE SKIP LOCKED

-- prune_run_events --
-- The schedule events of the runs $1, but a DAG's last schedule point (kinds $2) and
-- what follows it, where the watcher continues from; other events may always go.
DELETE FROM schedule_events AS e
WHERE e.run_id = ANY($1::bigint[])
  AND (e.kind <> ALL($2::text[]) OR EXISTS (
      SELECT 1 FROM schedule_events AS later
      WHERE later.dag_id = e.dag_id AND later.kind = ANY($2::text[])
        AND later.logical_time > e.logical_time))

-- prune_logs --
DELETE FROM task_logs WHERE run_id = ANY($1::bigint[])

-- prune_task_runs --
DELETE FROM task_runs WHERE run_id = ANY($1::bigint[])

-- prune_runs --
DELETE FROM dag_runs WHERE id = ANY($1::bigint[])

-- prune_orphan_events --
-- Up to $4 schedule events without a run (skipped points, runs pruned earlier) made
-- before $1 (of DAG $2, or any), but a DAG's last schedule point (kinds $3).
DELETE FROM schedule_events WHERE id IN (
    SELECT e.id FROM schedule_events AS e
    WHERE e.run_id IS NULL AND e.created_at < $1 AND ($2::text IS NULL OR e.dag_id = $2)
      AND (e.kind <> ALL($3::text[]) OR EXISTS (
          SELECT 1 FROM schedule_events AS later
          WHERE later.dag_id = e.dag_id AND later.kind = ANY($3::text[])
            AND later.logical_time > e.logical_time))
    LIMIT $4)

-- prunable --
-- What pruning with these arguments ($1 to $3 as in prune_select_runs, kinds $4)
-- would delete, in every batch together.
WITH doomed AS (
    SELECT id FROM dag_runs
    WHERE finished_at < $1 AND status = ANY($2::text[]) AND ($3::text IS NULL OR dag_id = $3)
)
SELECT
    (SELECT count(*) FROM doomed) AS dag_runs,
    (SELECT count(*) FROM task_runs WHERE run_id IN (SELECT id FROM doomed)) AS task_runs,
    (SELECT count(*) FROM task_logs WHERE run_id IN (SELECT id FROM doomed)) AS task_logs,
    (SELECT count(*) FROM schedule_events AS e
     WHERE (e.run_id IN (SELECT id FROM doomed)
            OR (e.run_id IS NULL AND e.created_at < $1
                AND ($3::text IS NULL OR e.dag_id = $3)))
       AND (e.kind <> ALL($4::text[]) OR EXISTS (
           SELECT 1 FROM schedule_events AS later
           WHERE later.dag_id = e.dag_id AND later.kind = ANY($4::text[])
             AND later.logical_time > e.logical_time))) AS schedule_events
