-- The PostgreSQL schema of ppacer-async as it should be after every migration, written
-- from the documented tables rather than from the migrations, so that a migration that
-- builds something else (a lost index, a nullable column, a wrong type) shows up as a
-- difference. Run with search_path set to an empty schema.

CREATE TABLE schema_version (
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version)
);

-- DAGs: identifiers sort as Python sorts them (the "C" collation).
CREATE TABLE dags (
    dag_id text COLLATE "C" NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    resume_after timestamptz,
    PRIMARY KEY (dag_id)
);

CREATE TABLE dag_versions (
    dag_id text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    definition_hash text NOT NULL,
    definition bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (dag_id, version),
    FOREIGN KEY (dag_id) REFERENCES dags (dag_id) ON DELETE CASCADE
);

CREATE SEQUENCE dag_runs_id_seq;

CREATE TABLE dag_runs (
    id bigint NOT NULL DEFAULT nextval('dag_runs_id_seq'),
    dag_id text COLLATE "C" NOT NULL,
    logical_time timestamptz NOT NULL,
    status text NOT NULL,
    trigger text NOT NULL,
    scheduled boolean NOT NULL,
    params jsonb NOT NULL,
    dag_version integer NOT NULL,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    note text,
    PRIMARY KEY (id)
);

ALTER SEQUENCE dag_runs_id_seq OWNED BY dag_runs.id;

CREATE UNIQUE INDEX dag_runs_schedule_point ON dag_runs (dag_id, logical_time)
    WHERE scheduled;
CREATE INDEX dag_runs_by_dag ON dag_runs (dag_id, id);
CREATE INDEX dag_runs_active ON dag_runs (id) WHERE status IN ('queued', 'running');
CREATE INDEX dag_runs_by_status ON dag_runs (status, id);
CREATE INDEX dag_runs_by_logical_time ON dag_runs (logical_time);
-- Pruning finds old finished runs by when they finished.
CREATE INDEX dag_runs_by_finished_at ON dag_runs (finished_at);

CREATE TABLE task_runs (
    run_id bigint NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    reason text NOT NULL,
    scheduled_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    error text,
    result jsonb,
    lease_owner text,
    lease_expires_at timestamptz,
    outcome text,
    PRIMARY KEY (run_id, task_id, attempt),
    FOREIGN KEY (run_id) REFERENCES dag_runs (id) ON DELETE CASCADE
);

CREATE INDEX task_runs_ready ON task_runs (scheduled_at, run_id, task_id, attempt)
    WHERE status = 'scheduled';
CREATE INDEX task_runs_running ON task_runs (lease_owner) WHERE status = 'running';

CREATE SEQUENCE task_logs_id_seq;

CREATE TABLE task_logs (
    id bigint NOT NULL DEFAULT nextval('task_logs_id_seq'),
    run_id bigint NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    attempt integer NOT NULL,
    time timestamptz NOT NULL,
    level text NOT NULL,
    message text NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (run_id) REFERENCES dag_runs (id) ON DELETE CASCADE
);

ALTER SEQUENCE task_logs_id_seq OWNED BY task_logs.id;

CREATE INDEX task_logs_by_run ON task_logs (run_id, id);

CREATE SEQUENCE schedule_events_id_seq;

CREATE TABLE schedule_events (
    id bigint NOT NULL DEFAULT nextval('schedule_events_id_seq'),
    dag_id text COLLATE "C" NOT NULL,
    logical_time timestamptz NOT NULL,
    kind text NOT NULL,
    created_at timestamptz NOT NULL,
    run_id bigint,
    PRIMARY KEY (id),
    FOREIGN KEY (run_id) REFERENCES dag_runs (id) ON DELETE SET NULL
);

ALTER SEQUENCE schedule_events_id_seq OWNED BY schedule_events.id;

CREATE INDEX schedule_events_by_dag ON schedule_events (dag_id, logical_time, id);
-- Deleting a run finds its schedule events (the foreign key's SET NULL).
CREATE INDEX schedule_events_by_run ON schedule_events (run_id);

-- Serving processes, renewed with their leases.
CREATE TABLE workers (
    id text COLLATE "C" NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    role text NOT NULL,
    started_at timestamptz NOT NULL,
    renewed_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    dag_ids text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (id)
);

-- The pools as the scheduling process last counted them.
CREATE TABLE pools (
    name text COLLATE "C" NOT NULL,
    slots integer NOT NULL,
    used integer NOT NULL,
    waiting integer NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (name)
);
