-- The SQLite schema of ppacer-async as it should be after every migration, written from
-- the documented tables rather than from the migrations. Times are UTC text, booleans
-- 0/1, JSON compact text.

CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);

CREATE TABLE dags (
    dag_id TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    resume_after TEXT
);

CREATE TABLE dag_versions (
    dag_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition_hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dag_id, version),
    FOREIGN KEY (dag_id) REFERENCES dags (dag_id) ON DELETE CASCADE
);

CREATE TABLE dag_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id TEXT NOT NULL,
    logical_time TEXT NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    scheduled INTEGER NOT NULL,
    params TEXT NOT NULL,
    dag_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    note TEXT
);

CREATE UNIQUE INDEX dag_runs_schedule_point ON dag_runs (dag_id, logical_time)
    WHERE scheduled = 1;
CREATE INDEX dag_runs_status ON dag_runs (status);
CREATE INDEX dag_runs_dag_id ON dag_runs (dag_id);
-- Pruning finds old finished runs by when they finished.
CREATE INDEX dag_runs_finished_at ON dag_runs (finished_at);

CREATE TABLE task_runs (
    run_id INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    scheduled_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    result TEXT,
    PRIMARY KEY (run_id, task_id, attempt),
    FOREIGN KEY (run_id) REFERENCES dag_runs (id) ON DELETE CASCADE
);

CREATE TABLE task_logs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    time TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    FOREIGN KEY (run_id) REFERENCES dag_runs (id) ON DELETE CASCADE
);

CREATE INDEX task_logs_run_id ON task_logs (run_id);

CREATE TABLE schedule_events (
    id INTEGER PRIMARY KEY,
    dag_id TEXT NOT NULL,
    logical_time TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    run_id INTEGER,
    FOREIGN KEY (run_id) REFERENCES dag_runs (id) ON DELETE SET NULL
);

CREATE INDEX schedule_events_dag_id ON schedule_events (dag_id, logical_time);
-- Deleting a run finds its schedule events (the foreign key's SET NULL).
CREATE INDEX schedule_events_run_id ON schedule_events (run_id);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    role TEXT NOT NULL,
    dag_ids TEXT NOT NULL DEFAULT '[]',
    started_at TEXT NOT NULL,
    renewed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE pools (
    name TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    used INTEGER NOT NULL,
    waiting INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
