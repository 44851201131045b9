"""JSON forms of records that the command line's ``--json`` output and the web API share,
so that the two speak the same field names and formats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ._structures import DagRun, LogRecord


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, or ``None``."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def seconds(started: datetime | None, finished: datetime | None) -> float | None:
    """How long from ``started`` to ``finished``, in seconds; ``None`` unless both are set."""
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 6)


def run_json(run: DagRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "dag_id": run.dag_id,
        "logical_time": iso(run.logical_time),
        "status": str(run.status),
        "trigger": str(run.trigger),
        "params": run.params,
        "dag_version": run.dag_version,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": seconds(run.started_at, run.finished_at),
        "note": run.note,
    }


def log_json(record: LogRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "task_id": record.task_id,
        "attempt": record.attempt,
        "time": iso(record.time),
        "level": record.level,
        "message": record.message,
    }
