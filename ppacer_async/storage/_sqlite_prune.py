"""Pruning a SQLite database: the work done in its connection thread.

Each batch is one write transaction of a bounded size, so that a scheduler committing
on the same file waits for at most one batch. New databases reclaim the pages of
deleted rows with ``auto_vacuum = INCREMENTAL`` (set before the first table); a
database created before that needs one ``VACUUM`` to switch (``ppacer-async db
vacuum``), and until then reuses the pages inside the file without shrinking it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .._structures import PruneCounts

#: Pages given back per incremental vacuum step (4 MB with 4 KB pages).
VACUUM_PAGES = 1000

# A schedule point may go only when a later one of its DAG exists: the watcher
# continues from the last one (of these kinds, as in last_schedule_point). Other events
# (manual runs) may always go.
_LATER_POINT = (
    "(schedule_events.kind NOT IN ({kinds}) OR EXISTS (SELECT 1 FROM schedule_events AS "
    "later WHERE later.dag_id = schedule_events.dag_id AND later.kind IN ({kinds}) "
    "AND later.logical_time > schedule_events.logical_time))"
)


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _run_filter(
    before: str, dag_id: str | None, statuses: Sequence[str]
) -> tuple[str, list[object]]:
    where = f"finished_at < ? AND status IN ({_marks(statuses)})"
    params: list[object] = [before, *statuses]
    if dag_id is not None:
        where += " AND dag_id = ?"
        params.append(dag_id)
    return where, params


def _orphan_filter(
    before: str, dag_id: str | None, kinds: Sequence[str]
) -> tuple[str, list[object]]:
    where = f"run_id IS NULL AND created_at < ? AND {_LATER_POINT.format(kinds=_marks(kinds))}"
    params: list[object] = [before, *kinds, *kinds]
    if dag_id is not None:
        where += " AND dag_id = ?"
        params.append(dag_id)
    return where, params


def prune(
    conn: sqlite3.Connection,
    before: str,
    dag_id: str | None,
    statuses: Sequence[str],
    kinds: Sequence[str],
    limit: int,
) -> PruneCounts:
    """Delete one batch (see ``Storage.prune``) in one write transaction."""
    where, params = _run_filter(before, dag_id, statuses)
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [
            row[0]
            for row in conn.execute(
                f"SELECT id FROM dag_runs WHERE {where} ORDER BY finished_at LIMIT ?",
                (*params, limit),
            )
        ]
        events = logs = task_runs = 0
        if ids:
            marks = _marks(ids)
            later = _LATER_POINT.format(kinds=_marks(kinds))
            events = conn.execute(
                f"DELETE FROM schedule_events WHERE run_id IN ({marks}) AND {later}",
                (*ids, *kinds, *kinds),
            ).rowcount
            logs = conn.execute(f"DELETE FROM task_logs WHERE run_id IN ({marks})", ids).rowcount
            task_runs = conn.execute(
                f"DELETE FROM task_runs WHERE run_id IN ({marks})", ids
            ).rowcount
            conn.execute(f"DELETE FROM dag_runs WHERE id IN ({marks})", ids)
        where, params = _orphan_filter(before, dag_id, kinds)
        events += conn.execute(
            f"DELETE FROM schedule_events WHERE id IN "
            f"(SELECT id FROM schedule_events WHERE {where} LIMIT ?)",
            (*params, limit),
        ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return PruneCounts(
        dag_runs=len(ids), task_runs=task_runs, task_logs=logs, schedule_events=events
    )


def prunable(
    conn: sqlite3.Connection,
    before: str,
    dag_id: str | None,
    statuses: Sequence[str],
    kinds: Sequence[str],
) -> PruneCounts:
    """Count what pruning would delete (one read transaction)."""
    where, params = _run_filter(before, dag_id, statuses)
    doomed = f"SELECT id FROM dag_runs WHERE {where}"
    orphans, orphan_params = _orphan_filter(before, dag_id, kinds)
    later = _LATER_POINT.format(kinds=_marks(kinds))
    row = conn.execute(
        f"SELECT (SELECT COUNT(*) FROM dag_runs WHERE {where}), "
        f"(SELECT COUNT(*) FROM task_runs WHERE run_id IN ({doomed})), "
        f"(SELECT COUNT(*) FROM task_logs WHERE run_id IN ({doomed})), "
        f"(SELECT COUNT(*) FROM schedule_events WHERE run_id IN ({doomed}) AND {later}), "
        f"(SELECT COUNT(*) FROM schedule_events WHERE {orphans})",
        (*params, *params, *params, *params, *kinds, *kinds, *orphan_params),
    ).fetchone()
    return PruneCounts(
        dag_runs=row[0], task_runs=row[1], task_logs=row[2], schedule_events=row[3] + row[4]
    )


def reclaim_space(conn: sqlite3.Connection) -> bool:
    """Give up to ``VACUUM_PAGES`` free pages back to the file system (only with
    ``auto_vacuum = INCREMENTAL``); return whether free pages are left to give."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2: incremental
        return False
    # Each step of the pragma frees one page: executescript steps it to the end, where
    # execute would stop after the first.
    conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
    return bool(conn.execute("PRAGMA freelist_count").fetchone()[0])


def vacuum(conn: sqlite3.Connection) -> None:
    """Switch the database to incremental vacuum and compact it (rewrites the file)."""
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("VACUUM")
