"""What the pages show, shaped from operation records: plain functions, no I/O.

The templates get these shapes and the filters below; the routes in ``pages.py`` read
through :mod:`ppacer_async.operations` and hand the records here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .._structures import DagRun, RunDetail, TaskDetail, TaskRun, split_instance_id

#: Every status the pages draw, in the order a legend lists them.
STATUS_ORDER = (
    "queued",
    "scheduled",
    "pending",
    "running",
    "success",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "interrupted",
    "cancelled",
)

#: A glyph per status for the grid's small cells; the word is always beside it (title
#: and hidden text), so colour is never the only sign.
STATUS_ICONS = {
    "success": "✓",
    "failed": "✕",
    "running": "▸",
    "queued": "·",
    "scheduled": "·",
    "pending": "·",
    "up_for_retry": "↻",
    "up_for_reschedule": "⧗",
    "upstream_failed": "↑",
    "skipped": "»",
    "interrupted": "!",
    "cancelled": "■",
}


def status_word(status: object) -> str:
    """``up_for_retry`` -> ``up for retry``."""
    return str(status).replace("_", " ")


def status_icon(status: object) -> str:
    return STATUS_ICONS.get(str(status), "?")


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC, as ``<time datetime>`` and the browser's script read it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_text(moment: datetime) -> str:
    """The server-side text of a time, before the browser's script rewrites it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(delta: timedelta | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; ``—`` when unknown."""
    if delta is None:
        return "—"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def span(started: datetime | None, finished: datetime | None, now: datetime) -> timedelta | None:
    """How long something took, or has been taking while it is not finished."""
    if started is None:
        return None
    return (finished or now) - started


def run_duration(run: DagRun, now: datetime) -> str:
    return duration_text(span(run.started_at, run.finished_at, now))


def attempt_duration(attempt: TaskRun, now: datetime) -> str:
    return duration_text(span(attempt.started_at, attempt.finished_at, now))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def rate(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def headline(error: str | None) -> str:
    """The last line of a traceback: the exception and its message."""
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    text = lines[-1].strip() if lines else ""
    return text if len(text) <= 160 else text[:159] + "…"


def task_label(task: TaskDetail | TaskRun) -> str:
    """``process[3]`` for an instance of a mapped task, else the task id."""
    index = getattr(task, "map_index", None)
    return task.task_id if index is None else f"{task.task_id}[{index}]"


def count_statuses(statuses: Iterable[object]) -> list[tuple[str, int]]:
    """``(status, count)`` in legend order, only statuses that occur."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    ordered = [(s, counts.pop(s)) for s in STATUS_ORDER if s in counts]
    return ordered + sorted(counts.items())


# -- the run page --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TaskView:
    """One task of a run as the run page lists it."""

    task_id: str
    status: str
    attempts: tuple[TaskRun, ...]
    duration: str
    headline: str


def _grouped(tasks: Iterable[TaskDetail]) -> list[TaskDetail]:
    """The tasks in order, each instance of a mapped task (``process[3]``) right after
    the task itself, in index order."""
    instances: dict[str, list[tuple[int, TaskDetail]]] = {}
    plain = []
    for task in tasks:
        base, index = split_instance_id(task.task_id)
        if index is None:
            plain.append(task)
        else:
            instances.setdefault(base, []).append((index, task))
    ordered = []
    for task in plain:
        ordered.append(task)
        ordered.extend(t for _, t in sorted(instances.pop(task.task_id, []), key=_first))
    for rest in instances.values():  # instances of a task the definition no longer has
        ordered.extend(t for _, t in sorted(rest, key=_first))
    return ordered


def _first(pair: tuple[int, TaskDetail]) -> int:
    return pair[0]


def task_views(detail: RunDetail, now: datetime) -> list[TaskView]:
    views = []
    for task in _grouped(detail.tasks):
        latest = task.latest
        if latest is not None:
            status = str(latest.status)
        elif task.waiting is not None:
            status = task.waiting
        else:
            status = "not started"
        first = task.attempts[0].started_at if task.attempts else None
        last_error = task.last_error
        views.append(
            TaskView(
                task_id=task.task_id,
                status=status,
                attempts=task.attempts,
                duration=duration_text(
                    span(first, latest.finished_at if latest else None, now)
                    if latest is not None and latest.started_at is not None
                    else None
                ),
                headline=headline(last_error.error)
                if last_error is not None and latest is not None and not _succeeded(latest)
                else "",
            )
        )
    return views


def _succeeded(attempt: TaskRun) -> bool:
    return str(attempt.status) == "success"


# -- the DAG page -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GridRow:
    task_id: str
    #: the latest attempt of the task in each run of the grid, oldest run first
    cells: list[TaskRun | None]


@attrs.frozen(kw_only=True)
class GridColumn:
    run: DagRun
    duration: str
    #: the height of the run's bar, in pixels: longer runs stand taller
    height: int


@attrs.frozen(kw_only=True)
class Grid:
    """Runs as columns (oldest left, newest right), tasks as rows."""

    columns: list[GridColumn]
    rows: list[GridRow]
    #: tasks left out to keep the page small (``max_rows``)
    hidden_rows: int = 0


#: The run bars above the grid are this tall at least and at most, in pixels.
BAR_HEIGHTS = (6, 48)


def build_grid(
    task_ids: Sequence[str],
    details: Sequence[RunDetail],
    now: datetime,
    max_rows: int | None = None,
) -> Grid:
    """``details`` newest first, as runs are listed; the grid puts the newest right.

    :param max_rows: draw only the first this many tasks.
    """
    ordered = list(reversed(details))
    spans = [span(d.run.started_at, d.run.finished_at, now) for d in ordered]
    longest = max((s.total_seconds() for s in spans if s is not None), default=0.0)
    low, high = BAR_HEIGHTS
    columns = [
        GridColumn(
            run=detail.run,
            duration=duration_text(taken),
            height=low
            if taken is None or longest <= 0
            else round(low + (high - low) * taken.total_seconds() / longest),
        )
        for detail, taken in zip(ordered, spans, strict=True)
    ]
    ids = list(dict.fromkeys(task_ids))
    for detail in ordered:
        for task in detail.tasks:
            # A mapped task's row stands for its instances (process[0], process[1], ...).
            instance = split_instance_id(task.task_id)[1] is not None
            if task.task_id not in ids and task.attempts and not instance:
                ids.append(task.task_id)
    latest = [{task.task_id: task.latest for task in detail.tasks} for detail in ordered]
    shown = ids if max_rows is None else ids[:max_rows]
    return Grid(
        columns=columns,
        rows=[GridRow(task_id=i, cells=[by_task.get(i) for by_task in latest]) for i in shown],
        hidden_rows=len(ids) - len(shown),
    )


def latest_statuses(detail: RunDetail | None) -> dict[str, str]:
    """Each task's status in a run, for colouring the graph."""
    if detail is None:
        return {}
    found = {}
    for task in detail.tasks:
        if task.latest is not None:
            found[task.task_id] = str(task.latest.status)
        elif task.waiting is not None:
            found[task.task_id] = task.waiting
    return found


FILTERS = {
    "status_word": status_word,
    "status_icon": status_icon,
    "iso": iso,
    "utc_text": utc_text,
    "run_duration": run_duration,
    "attempt_duration": attempt_duration,
    "pretty_json": pretty_json,
    "rate": rate,
    "duration": duration_text,
}
