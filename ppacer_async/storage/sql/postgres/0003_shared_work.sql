-- Several processes share the work of one database.
--
-- A ready attempt is a task_runs row with status 'scheduled'; a process claims it with
-- FOR UPDATE SKIP LOCKED, which makes it 'running' under a lease (lease_owner, the claiming
-- worker, and lease_expires_at, renewed at half the lease). The worker writes its outcome
-- into the row (outcome, finished_at, error, result) and clears the lease; the scheduling
-- process then applies it and gives the row its final status. An expired lease makes any
-- process record the outcome 'interrupted', so the attempt runs again elsewhere.
ALTER TABLE task_runs ADD COLUMN outcome text;

CREATE INDEX task_runs_ready ON task_runs (scheduled_at, run_id, task_id, attempt)
    WHERE status = 'scheduled';

CREATE INDEX task_runs_running ON task_runs (lease_owner) WHERE status = 'running';

-- One row per serving process, renewed with its leases; shown by `ppacer-async db info`.
CREATE TABLE workers (
    id          text COLLATE "C" PRIMARY KEY,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    role        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
