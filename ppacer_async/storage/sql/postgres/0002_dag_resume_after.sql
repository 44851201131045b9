-- Unpausing a DAG "from now" records the moment; schedule points up to it are skipped.
ALTER TABLE dags ADD COLUMN resume_after timestamptz;
