-- Pruning finds old finished runs by when they finished, and deleting a run finds its
-- schedule events by run id (the foreign key sets them to NULL otherwise, by a scan).
CREATE INDEX dag_runs_finished_at ON dag_runs (finished_at);
CREATE INDEX schedule_events_run_id ON schedule_events (run_id);
