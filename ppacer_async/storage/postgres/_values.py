"""Python values to PostgreSQL parameters and rows back to records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._enums import AttemptReason, DagRunStatus, RunTrigger, ScheduleEventKind, TaskStatus
from ..._structures import DagInfo, DagRun, LogRecord, ScheduleEvent, TaskRun
from .. import _codec
from .._codec import strict_json

#: An asyncpg record: read by column name.
Row = Mapping[str, Any]


def _strip_nul(value: Any) -> Any:
    """Replace NUL characters, which PostgreSQL text and jsonb cannot hold, with U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def text(value: str) -> str:
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def encode_json(value: Any) -> str:
    """Encode a value for a jsonb column (NaN and infinities are not JSON there).

    :raises TypeError: or ValueError, the value is not JSON.
    """
    encoded = strict_json(value)
    if "\\u0000" in encoded:
        encoded = strict_json(_strip_nul(value))
    return encoded


def to_json(value: Any, what: str) -> str:
    """:raises TypeError: ``value`` is not JSON; ``what`` names it."""
    return _codec.to_json(value, what, encode_json)


def result_json(tr: TaskRun) -> str:
    """:raises ResultNotStorable: the result of ``tr`` is not JSON."""
    return _codec.result_json(tr, encode_json)


def dag_run(row: Row, prefix: str = "") -> DagRun:
    """A run from its columns; ``prefix`` names the status and times where a query
    also returns those of a task run (``run_status``, ...)."""
    return DagRun(
        id=row["id"],
        dag_id=row["dag_id"],
        logical_time=row["logical_time"],
        status=DagRunStatus(row[prefix + "status"]),
        trigger=RunTrigger(row["trigger"]),
        params=row["params"],
        dag_version=row["dag_version"],
        created_at=row["created_at"],
        started_at=row[prefix + "started_at"],
        finished_at=row[prefix + "finished_at"],
        note=row["note"],
    )


def task_run(row: Row) -> TaskRun:
    return TaskRun(
        run_id=row["run_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        status=TaskStatus(row["status"]),
        reason=AttemptReason(row["reason"]),
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        result=row["result"],
    )


def log_record(row: Row) -> LogRecord:
    return LogRecord(
        run_id=row["run_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        time=row["time"],
        level=row["level"],
        message=row["message"],
    )


def schedule_event(row: Row) -> ScheduleEvent:
    return ScheduleEvent(
        dag_id=row["dag_id"],
        logical_time=row["logical_time"],
        kind=ScheduleEventKind(row["kind"]),
        created_at=row["created_at"],
        run_id=row["run_id"],
    )


def dag_info(row: Row) -> DagInfo:
    return DagInfo(
        dag_id=row["dag_id"],
        version=row["version"],
        definition_hash=row["definition_hash"],
        definition=row["definition"],
        paused=row["paused"],
        created_at=row["created_at"],
        resume_after=row["resume_after"],
    )
