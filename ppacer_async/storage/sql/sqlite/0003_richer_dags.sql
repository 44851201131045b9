-- Why a run ended as it did, when that needs saying (cancelled, timed out). Task runs
-- gain the statuses 'skipped' and 'cancelled' and mapped instances ('process[3]') with
-- no change of columns.
ALTER TABLE dag_runs ADD COLUMN note TEXT;
