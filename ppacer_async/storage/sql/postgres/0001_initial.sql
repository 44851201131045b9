-- ppacer-async PostgreSQL schema, version 1.
--
-- Applied by PostgresStorage.open() inside one transaction, under an advisory lock, in the
-- schema named by PostgresStorage(schema=...) (the connection's search_path), so every name
-- here is unqualified. Identifiers use the "C" collation so that ORDER BY sorts them the way
-- Python's sorted() does, whatever the database's locale.

CREATE TABLE schema_version (
    version     integer     PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dags (
    dag_id      text COLLATE "C" PRIMARY KEY,
    paused      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL
);

-- One row per distinct definition of a DAG; the highest version is the current one.
CREATE TABLE dag_versions (
    dag_id           text COLLATE "C" NOT NULL REFERENCES dags (dag_id) ON DELETE CASCADE,
    version          integer     NOT NULL,
    definition_hash  text        NOT NULL,
    definition       jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (dag_id, version)
);

-- A run may be created before (or without) its DAG being recorded, so dag_id has no
-- foreign key. A run created by the schedule (trigger schedule, catchup or backfill) keeps
-- scheduled = true for life, so it still blocks a duplicate after a restart changes its
-- trigger.
CREATE TABLE dag_runs (
    id            bigserial   PRIMARY KEY,
    dag_id        text COLLATE "C" NOT NULL,
    logical_time  timestamptz NOT NULL,
    status        text        NOT NULL,
    trigger       text        NOT NULL,
    scheduled     boolean     NOT NULL,
    params        jsonb       NOT NULL,
    dag_version   integer     NOT NULL,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz
);

-- One run per schedule point: the guard against double creation when several schedulers
-- share the database. Manual runs are never refused.
CREATE UNIQUE INDEX dag_runs_schedule_point ON dag_runs (dag_id, logical_time)
    WHERE scheduled;

CREATE INDEX dag_runs_by_dag ON dag_runs (dag_id, id);

CREATE INDEX dag_runs_active ON dag_runs (id) WHERE status IN ('queued', 'running');

-- One row per attempt. lease_owner and lease_expires_at hold the claim of a running attempt
-- when several processes share the work (written from schema version 3).
CREATE TABLE task_runs (
    run_id            bigint      NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id           text COLLATE "C" NOT NULL,
    attempt           integer     NOT NULL,
    status            text        NOT NULL,
    reason            text        NOT NULL,
    scheduled_at      timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
    error             text,
    result            jsonb,
    lease_owner       text,
    lease_expires_at  timestamptz,
    PRIMARY KEY (run_id, task_id, attempt)
);

-- Append-only; id gives the order lines were written in.
CREATE TABLE task_logs (
    id       bigserial   PRIMARY KEY,
    run_id   bigint      NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id  text COLLATE "C" NOT NULL,
    attempt  integer     NOT NULL,
    time     timestamptz NOT NULL,
    level    text        NOT NULL,
    message  text        NOT NULL
);

CREATE INDEX task_logs_by_run ON task_logs (run_id, id);

CREATE TABLE schedule_events (
    id            bigserial   PRIMARY KEY,
    dag_id        text COLLATE "C" NOT NULL,
    logical_time  timestamptz NOT NULL,
    kind          text        NOT NULL,
    created_at    timestamptz NOT NULL,
    run_id        bigint      REFERENCES dag_runs (id) ON DELETE SET NULL
);

CREATE INDEX schedule_events_by_dag ON schedule_events (dag_id, logical_time, id);
