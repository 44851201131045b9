-- The named queries of the SQLite storage, loaded by name (storage/_queries.py).
--
-- Each query starts with a line "-- name --", then lines of "-- description", then
-- the statement, up to the next name. Times are fixed-width UTC text (storage/_codec.py),
-- so comparing and sorting them as text is comparing and sorting the times. Statements
-- whose text depends on the call (optional filters) are put together in _sqlite_work.py.

-- latest_dag_version --
SELECT version, definition_hash FROM dag_versions WHERE dag_id = ?
ORDER BY version DESC LIMIT 1

-- insert_dag --
INSERT INTO dags (dag_id, paused, created_at) VALUES (?, 0, ?)
ON CONFLICT (dag_id) DO NOTHING

-- insert_dag_version --
INSERT INTO dag_versions (dag_id, version, definition_hash, definition, created_at)
VALUES (?, ?, ?, ?, ?)

-- get_dag --
-- A DAG with its latest version.
SELECT d.dag_id, v.version, v.definition_hash, v.definition, d.paused, v.created_at,
    d.resume_after
FROM dags AS d JOIN dag_versions AS v ON v.dag_id = d.dag_id
WHERE d.dag_id = ? ORDER BY v.version DESC LIMIT 1

-- list_dags --
-- Every DAG with its latest version, by id.
SELECT d.dag_id, v.version, v.definition_hash, v.definition, d.paused, v.created_at,
    d.resume_after
FROM dags AS d JOIN dag_versions AS v
    ON v.dag_id = d.dag_id
    AND v.version = (SELECT MAX(version) FROM dag_versions WHERE dag_id = d.dag_id)
ORDER BY d.dag_id

-- set_paused --
UPDATE dags SET paused = ?, resume_after = ? WHERE dag_id = ?

-- insert_run --
-- A run created by the schedule (scheduled = 1) is refused when its point is taken.
INSERT INTO dag_runs (
    dag_id, logical_time, status, trigger, scheduled, params, dag_version, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dag_id, logical_time) WHERE scheduled = 1 DO NOTHING

-- insert_schedule_event --
INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id)
VALUES (?, ?, ?, ?, ?)

-- last_schedule_point --
-- The kinds are SCHEDULE_KINDS of storage/_codec.py: those that move the schedule on.
SELECT MAX(logical_time) FROM schedule_events WHERE dag_id = ? AND kind IN (?, ?, ?)

-- schedule_events --
SELECT dag_id, logical_time, kind, created_at, run_id FROM schedule_events
WHERE dag_id = ? ORDER BY logical_time DESC, id DESC LIMIT ?

-- update_run --
-- A cancelled run stays cancelled until it is queued again (a restart): the scheduler
-- may still write that it started or ended before it learns of the cancel.
UPDATE dag_runs SET status = ?, trigger = ?, started_at = ?, finished_at = ?, note = ?
WHERE id = ? AND (status != 'cancelled' OR ? IN ('cancelled', 'queued'))

-- upsert_task_run --
INSERT INTO task_runs (
    run_id, task_id, attempt, status, reason, scheduled_at, started_at, finished_at,
    error, result
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET
    status = excluded.status, reason = excluded.reason,
    scheduled_at = excluded.scheduled_at, started_at = excluded.started_at,
    finished_at = excluded.finished_at, error = excluded.error, result = excluded.result

-- insert_log --
INSERT INTO task_logs (run_id, task_id, attempt, time, level, message)
VALUES (?, ?, ?, ?, ?, ?)

-- get_run --
SELECT id, dag_id, logical_time, status, trigger, params, dag_version,
    created_at, started_at, finished_at, note
FROM dag_runs WHERE id = ?

-- active_runs --
-- The two statuses: queued and running.
SELECT id, dag_id, logical_time, status, trigger, params, dag_version,
    created_at, started_at, finished_at, note
FROM dag_runs WHERE status IN (?, ?) ORDER BY id

-- task_runs --
SELECT run_id, task_id, attempt, status, reason, scheduled_at, started_at, finished_at,
    error, result
FROM task_runs WHERE run_id = ? ORDER BY task_id, attempt

-- clear_pools --
-- The scheduling process replaces its pools' counts as a whole.
DELETE FROM pools

-- insert_pool --
INSERT INTO pools (name, slots, used, waiting, updated_at) VALUES (?, ?, ?, ?, ?)

-- pools --
SELECT name, slots, used, waiting, updated_at FROM pools ORDER BY name

-- counts --
SELECT (SELECT COALESCE(MAX(version), 0) FROM schema_version),
    (SELECT COUNT(*) FROM dags), (SELECT COUNT(*) FROM dag_runs),
    (SELECT COUNT(*) FROM task_runs), (SELECT COUNT(*) FROM task_logs),
    (SELECT COUNT(*) FROM schedule_events)

-- data_version --
-- Moves only when another connection commits.
PRAGMA data_version

-- -- migrations (sqlite.py)

-- has_schema_version --
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'

-- current_version --
SELECT COALESCE(MAX(version), 0) FROM schema_version

-- record_version --
INSERT INTO schema_version (version, applied_at) VALUES (?, ?)

-- table_names --
-- Every table, index and view but SQLite's own.
SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\'

-- purge_workers --
-- Forgets the processes whose record expired (they stopped without saying so).
DELETE FROM workers WHERE expires_at < ?

-- register_worker --
-- Records a serving process and the DAGs it serves, or renews its record.
INSERT INTO workers (id, host, pid, role, dag_ids, started_at, renewed_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET renewed_at = excluded.renewed_at,
    expires_at = excluded.expires_at, dag_ids = excluded.dag_ids

-- unregister_worker --
DELETE FROM workers WHERE id = ?

-- workers --
-- The live serving processes: those whose record has not expired.
SELECT id, host, pid, role, started_at, renewed_at, expires_at, dag_ids FROM workers
WHERE expires_at >= ? ORDER BY id
