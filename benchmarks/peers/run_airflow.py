"""W1-W3 through Airflow 3's ``dag.test()`` on its default SQLite metadata database. Run by
``airflow.sh`` inside Airflow's own virtualenv; prints one JSON line.

A fresh temporary ``AIRFLOW_HOME`` gets ``airflow db migrate`` (untimed) and the DAGs of
``airflow_dags.py`` in its dags folder. ``dag.test()`` runs one DAG run in this process,
every task through the metadata database, one task at a time. W3 is 100 ``dag.test()``
calls of the 3-task DAG. Airflow has no in-memory mode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOME = Path(tempfile.mkdtemp(prefix="peers-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(HOME / "dags"),
    AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
)

W1_LEAVES, W2_LENGTH, W3_RUNS = 500, 100, 100


def prepare() -> Any:
    (HOME / "dags").mkdir(parents=True)
    shutil.copy(HERE / "airflow_dags.py", HOME / "dags" / "airflow_dags.py")
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, check=False
    )
    if migrate.returncode != 0:
        tail = migrate.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError("airflow db migrate failed: " + " | ".join(tail))
    sys.path.insert(0, str(HOME / "dags"))
    import airflow_dags

    return airflow_dags


def _test(dag: Any, when: datetime) -> None:
    run = dag.test(logical_date=when)
    state = str(getattr(run, "state", ""))
    if "success" not in state:
        raise RuntimeError(f"{dag.dag_id} ended {state}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    found: dict[str, Any] = {"mode": "sqlite"}
    clock = [datetime(2024, 6, 1, tzinfo=UTC)]

    def when() -> datetime:
        clock[0] += timedelta(minutes=1)
        return clock[0]

    try:
        dags = prepare()

        def w1() -> float:
            start = time.perf_counter()
            _test(dags.w1, when())
            return (W1_LEAVES + 2) / (time.perf_counter() - start)

        def w2() -> float:
            start = time.perf_counter()
            _test(dags.w2, when())
            return W2_LENGTH / (time.perf_counter() - start)

        def w3() -> float:
            start = time.perf_counter()
            for _ in range(W3_RUNS):
                _test(dags.w3, when())
            return W3_RUNS * 3 / (time.perf_counter() - start)

        for workload, run in (("W1", w1), ("W2", w2), ("W3", w3)):
            try:
                found[workload] = statistics.median(run() for _ in range(args.repeat))
            except Exception as exc:
                found.setdefault("note", f"{workload}: {type(exc).__name__}: {exc}")
            print(f"airflow sqlite {workload}: {found.get(workload)}", file=sys.stderr)
    except Exception as exc:
        found.setdefault("note", f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    from importlib import metadata

    version = metadata.version("apache-airflow")
    print(json.dumps({"peer": "Airflow (dag.test)", "version": version, "modes": [found]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
