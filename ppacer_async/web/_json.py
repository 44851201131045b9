"""JSON forms of the records, shared by the API routes and the live events; field names
match the command line's ``--json`` output."""

from __future__ import annotations

from typing import Any

from .._json import iso as iso
from .._json import log_json as log_json
from .._json import run_json as run_json
from .._json import seconds as seconds
from .._structures import DagRun, PoolUsage, TaskRun


def attempt_json(tr: TaskRun) -> dict[str, Any]:
    return {
        "task_id": tr.task_id,
        "map_index": tr.map_index,
        "attempt": tr.attempt,
        "status": str(tr.status),
        "reason": str(tr.reason),
        "scheduled_at": iso(tr.scheduled_at),
        "started_at": iso(tr.started_at),
        "finished_at": iso(tr.finished_at),
        "duration_seconds": seconds(tr.started_at, tr.finished_at),
        "error": tr.error,
        "result": tr.result,
    }


def run_event(run: DagRun) -> dict[str, Any]:
    """A run's status change, as sent to live-update clients."""
    return {
        "run_id": run.id,
        "dag_id": run.dag_id,
        "status": str(run.status),
        "trigger": str(run.trigger),
        "logical_time": iso(run.logical_time),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "note": run.note,
    }


def task_event(tr: TaskRun, dag_id: str | None) -> dict[str, Any]:
    """A task attempt's status change, as sent to live-update clients (kept small:
    thousands a second may be sent; the attempt's times are in the run's detail)."""
    return {
        "run_id": tr.run_id,
        "dag_id": dag_id,
        "task_id": tr.task_id,
        "attempt": tr.attempt,
        "status": str(tr.status),
    }


def pool_json(pool: PoolUsage) -> dict[str, Any]:
    return {
        "name": pool.name,
        "slots": pool.slots,
        "used": pool.used,
        "waiting": pool.waiting,
        "updated_at": iso(pool.updated_at),
    }
