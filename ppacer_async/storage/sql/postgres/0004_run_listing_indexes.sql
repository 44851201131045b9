-- Listing runs newest first, a page at a time (a `before` run id cursor), filtered by
-- status or by logical time, reads one index range instead of scanning the table.
-- (By DAG it already does: dag_runs_by_dag.)
CREATE INDEX dag_runs_by_status ON dag_runs (status, id);
CREATE INDEX dag_runs_by_logical_time ON dag_runs (logical_time);
