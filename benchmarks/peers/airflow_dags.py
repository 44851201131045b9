"""The peers' W1-W3 as Airflow 3 DAGs: ``run_airflow.py`` copies this file into the
temporary ``AIRFLOW_HOME``'s dags folder (``dag.test()`` syncs the DAG from its bundle)
and runs each DAG with ``dag.test()``. Every task is a ``PythonOperator`` calling a no-op
(an ``EmptyOperator`` would be marked done without running)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

W1_LEAVES, W2_LENGTH = 500, 100
START = datetime(2024, 1, 1)


def noop() -> None:
    pass


def _op(task_id: str) -> PythonOperator:
    return PythonOperator(task_id=task_id, python_callable=noop)


with DAG("peers_w1", schedule=None, start_date=START, catchup=False) as w1:
    _op("root") >> [_op(f"leaf_{i}") for i in range(W1_LEAVES)] >> _op("join")

with DAG("peers_w2", schedule=None, start_date=START, catchup=False) as w2:
    previous = _op("t_0")
    for i in range(1, W2_LENGTH):
        current = _op(f"t_{i}")
        previous >> current
        previous = current

with DAG("peers_w3", schedule=None, start_date=START, catchup=False) as w3:
    _op("a") >> _op("b") >> _op("c")
