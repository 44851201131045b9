-- Pruning finds old finished runs by when they finished, and deleting a run finds its
-- schedule events by run id (for the foreign key's SET NULL).
CREATE INDEX dag_runs_by_finished_at ON dag_runs (finished_at);
CREATE INDEX schedule_events_by_run ON schedule_events (run_id);
