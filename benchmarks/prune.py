"""Pruning a large SQLite database while a DAG runs every second.

``python -m benchmarks.prune [--attempts 1000000] [--dir DIR]``

Fills a new SQLite file with ``--attempts`` task attempts (10 per run, each run with a
log line per attempt and its schedule event), all finished 60 days ago, then serves a
DAG on ``Interval(1 s)`` with ``Scheduler(retention=timedelta(days=30))``, which prunes
them while the DAG runs. Reports the lateness of every schedule point served while
pruning (a tick task's start minus its logical time), how long pruning took, and the
file size before and after. Not a test: it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread

from ppacer_async import DAG, Scheduler, TaskContext, task
from ppacer_async.schedules import Interval
from ppacer_async.storage.sqlite import SQLiteStorage

TASKS_PER_RUN = 10
RETENTION = timedelta(days=30)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def fill(path: Path, attempts: int) -> None:
    """Write ``attempts`` finished task attempts of an old DAG straight into the file
    (the schema is made by opening it as a storage first)."""
    runs = attempts // TASKS_PER_RUN
    old = datetime.now(UTC) - timedelta(days=60)
    with sqlite3.connect(path) as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO dag_runs (id, dag_id, logical_time, status, trigger, scheduled, "
            "params, dag_version, created_at, started_at, finished_at) "
            "VALUES (?, 'old', ?, 'success', 'schedule', 1, '{}', 1, ?, ?, ?)",
            (
                (i + 1, _ts(old + timedelta(seconds=i)), *[_ts(old + timedelta(seconds=i))] * 3)
                for i in range(runs)
            ),
        )
        conn.executemany(
            "INSERT INTO schedule_events (dag_id, logical_time, kind, created_at, run_id) "
            "VALUES ('old', ?, 'regular', ?, ?)",
            (
                (_ts(old + timedelta(seconds=i)), _ts(old + timedelta(seconds=i)), i + 1)
                for i in range(runs)
            ),
        )
        conn.executemany(
            "INSERT INTO task_runs (run_id, task_id, attempt, status, reason, scheduled_at, "
            "started_at, finished_at, error, result) "
            "VALUES (?, ?, 1, 'success', 'initial', ?, ?, ?, NULL, ?)",
            (
                (i // TASKS_PER_RUN + 1, f"t{i % TASKS_PER_RUN}", *[_ts(old)] * 3, '{"rows":10}')
                for i in range(runs * TASKS_PER_RUN)
            ),
        )
        conn.executemany(
            "INSERT INTO task_logs (run_id, task_id, attempt, time, level, message) "
            "VALUES (?, ?, 1, ?, 'INFO', 'extracted 10 rows from the source table')",
            (
                (i // TASKS_PER_RUN + 1, f"t{i % TASKS_PER_RUN}", _ts(old))
                for i in range(runs * TASKS_PER_RUN)
            ),
        )
        conn.execute("COMMIT")


def counts(path: Path) -> tuple[int, int]:
    """Runs and task attempts of the old DAG left in the file."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (runs,) = conn.execute("SELECT count(*) FROM dag_runs WHERE dag_id = 'old'").fetchone()
        (tasks,) = conn.execute(
            "SELECT count(*) FROM task_runs WHERE run_id IN "
            "(SELECT id FROM dag_runs WHERE dag_id = 'old')"
        ).fetchone()
    return int(runs), int(tasks)


def size(path: Path) -> int:
    return path.stat().st_size


async def measure(path: Path, attempts: int) -> dict[str, object]:
    async with SQLiteStorage(path=str(path)):
        pass  # the schema
    fill(path, attempts)
    size_before = size(path)
    late: list[float] = []

    @task
    async def tick(ctx: TaskContext) -> None:
        late.append((datetime.now(UTC) - ctx.logical_time).total_seconds())

    dag = DAG("every_second", schedule=Interval(timedelta(seconds=1)), start=datetime.now(UTC)).add(
        tick
    )
    scheduler = Scheduler([dag], storage=f"sqlite:///{path}", retention=RETENTION)
    begun = time.monotonic()
    async with scheduler:
        while True:  # a look every half second, from another connection and thread
            if (await anyio.to_thread.run_sync(counts, path))[0] == 0:
                break
            await anyio.sleep(0.5)
        pruned_in = time.monotonic() - begun
        during = len(late)
        await anyio.sleep(3)  # a few points after pruning, for comparison
    _, left = counts(path)
    size_after = size(path)
    while_pruning = late[1:during] or late  # the first point pays for starting up
    return {
        "attempts_pruned": attempts - left,
        "prune_seconds": round(pruned_in, 1),
        "points_while_pruning": len(while_pruning),
        "lateness_max_ms": round(max(while_pruning) * 1000, 1),
        "lateness_median_ms": round(statistics.median(while_pruning) * 1000, 1),
        "size_before_mb": round(size_before / 1e6, 1),
        "size_after_mb": round(size_after / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prune", description=__doc__)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite file goes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = anyio.run(measure, Path(tmp) / "prune.db", args.attempts)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
