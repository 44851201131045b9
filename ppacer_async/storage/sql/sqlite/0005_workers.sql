-- The processes serving the database and the DAGs each serves, renewed while they run,
-- so that the command line can tell whether anything serves a DAG.
CREATE TABLE workers (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    role        TEXT NOT NULL,
    dag_ids     TEXT NOT NULL DEFAULT '[]',
    started_at  TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
