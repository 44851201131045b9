"""What every storage checks and encodes the same way: enum members, JSON values,
times as text, and the rules about runs and schedule events that the SQL repeats."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .._enums import AttemptReason, DagRunStatus, RunTrigger, ScheduleEventKind, TaskStatus
from .._exceptions import ResultNotStorable
from .._structures import TaskRun
from .._time import to_utc

#: Triggers whose runs are unique per (dag_id, logical_time).
SCHEDULED_TRIGGERS = frozenset({RunTrigger.schedule, RunTrigger.catchup, RunTrigger.backfill})
#: Schedule events that move a DAG's regular schedule forward, in the order the SQL
#: of last_schedule_point lists them.
SCHEDULE_KINDS = (ScheduleEventKind.regular, ScheduleEventKind.caught_up, ScheduleEventKind.skipped)

RUN_STATUSES = frozenset(DagRunStatus)
RUN_TRIGGERS = frozenset(RunTrigger)
TASK_STATUSES = frozenset(TaskStatus)
ATTEMPT_REASONS = frozenset(AttemptReason)
EVENT_KINDS = frozenset(ScheduleEventKind)
#: What a worker may report as the end of an attempt.
#: What a worker may report of an attempt: ``up_for_retry`` is a failure the scheduling
#: process may retry, ``failed`` one it must not (``NonRetryableError``, ``retry_on``).
OUTCOMES = frozenset(
    {
        TaskStatus.success,
        TaskStatus.failed,
        TaskStatus.up_for_retry,
        TaskStatus.up_for_reschedule,
        TaskStatus.skipped,
        TaskStatus.cancelled,
        TaskStatus.interrupted,
    }
)


def check_member(value: object, members: frozenset[Any], what: str) -> None:
    """:raises ValueError: ``value`` is not one of ``members``; ``what`` names it."""
    if value not in members:
        allowed = ", ".join(sorted(str(m) for m in members))
        raise ValueError(f"{what} is {value!r}; expected one of: {allowed}")


def to_json(value: Any, what: str, encode: Callable[[Any], str]) -> str:
    """``value`` encoded by ``encode``.

    :raises TypeError: it is not JSON; ``what`` names it in the message.
    """
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc


def result_json(tr: TaskRun, encode: Callable[[Any], str]) -> str:
    """A task result encoded by ``encode``.

    :raises ResultNotStorable: it is not JSON, with what to return instead.
    """
    try:
        return encode(tr.result)
    except (TypeError, ValueError) as exc:
        raise ResultNotStorable(
            f"the result of task {tr.task_id!r} (run {tr.run_id}, attempt {tr.attempt}) "
            f"cannot be stored as JSON: {exc}; return JSON values "
            "(dict, list, str, int, float, bool, None)"
        ) from exc


#: Compact JSON that refuses NaN and infinities (PostgreSQL's jsonb holds neither).
strict_json = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
#: Compact JSON as Python writes it (SQLite keeps the text as it is).
compact_json = json.JSONEncoder(separators=(",", ":")).encode


# -- times as text (SQLite) ---------------------------------------------------------------


def ts(moment: datetime) -> str:
    """A tz-aware datetime as fixed-width UTC text, so that text order is time order."""
    if moment.tzinfo is not UTC:
        moment = to_utc(moment)
    return moment.isoformat(timespec="microseconds")


#: The key of a second in :func:`ts_by_second`'s memo.
Second = tuple[int, int, int, int, int, int]


def ts_by_second(moment: datetime, seconds: dict[Second, str]) -> str:
    """:func:`ts`, with the text up to the second remembered in ``seconds``: a commit's
    times fall in a few seconds, and formatting only the microseconds takes half as long
    as ``isoformat`` (which a commit of 10,000 attempts calls 10,000 times)."""
    if moment.tzinfo is not UTC:
        return ts(moment)
    key = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    head = seconds.get(key)
    if head is None:  # "2026-11-29T19:00:00", without ".123456+00:00"
        head = seconds[key] = moment.isoformat(timespec="microseconds")[:-13]
    return f"{head}.{moment.microsecond:06d}+00:00"


def ts_memo(moment: datetime, memo: dict[datetime, str]) -> str:
    """:func:`ts`, remembered in ``memo`` (a batch repeats its times)."""
    text = memo.get(moment)
    if text is None:
        text = memo[moment] = ts(moment)
    return text


def opt_ts(moment: datetime | None) -> str | None:
    return None if moment is None else ts(moment)


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def opt_dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
