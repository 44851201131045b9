-- The DAGs each serving process serves, so that the command line can tell whether a
-- live process serves a DAG.
ALTER TABLE workers ADD COLUMN dag_ids text[] NOT NULL DEFAULT '{}';
