"""How the commands show things: local times, durations, tables that fit a terminal,
and JSON with times in ISO-8601 UTC."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .._json import iso as iso
from .._json import log_json as log_json
from .._json import run_json as run_json
from .._json import seconds as seconds
from .._structures import DagRun, TaskRun, WorkerInfo

#: Tables and summary lines fit a terminal this wide.
WIDTH = 80


def terminal_width() -> int:
    """The width of the terminal on stdout; ``WIDTH`` when stdout is not a terminal
    (a pipe, a file), so that what scripts read does not depend on a window."""
    if not sys.stdout.isatty():
        return WIDTH
    return max(shutil.get_terminal_size((WIDTH, 24)).columns, 40)


#: ANSI colours of statuses, as the web pages colour them.
_COLOURS = {
    "success": "32",
    "failed": "31",
    "running": "34",
    "up_for_retry": "33",
    "upstream_failed": "38;5;208",
    "queued": "90",
    "scheduled": "90",
    "pending": "90",
    "interrupted": "90",
    "cancelled": "90",
    "skipped": "35",
}


def use_colour() -> bool:
    """Colour statuses only on a terminal, and never when ``$NO_COLOR`` is set
    (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str) -> str:
    """``text`` with its first word coloured when that word is a status (see
    :func:`use_colour`); padding and the rest are left as they are."""
    word = text.strip().split(" ", 1)[0] if text.strip() else ""
    code = _COLOURS.get(word)
    if code is None or not use_colour():
        return text
    return text.replace(word, f"\x1b[{code}m{word}\x1b[0m", 1)


def wrapped(text: str, indent: str = "    ") -> list[str]:
    """``text`` in whole, its lines wrapped at the terminal's width, continuation lines
    indented: for messages that must not be cut."""
    width = terminal_width()
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lines.extend(
            textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
        )
    return lines


def now() -> datetime:
    return datetime.now(UTC)


def local(moment: datetime | None) -> str:
    """``2026-11-26 21:05:03+01:00``: the local time zone, with its offset; ``-`` for none."""
    if moment is None:
        return "-"
    return moment.astimezone().isoformat(sep=" ", timespec="seconds")


def duration(delta: timedelta | None) -> str:
    """``12 ms``, ``3.4 s``, ``2 min 5 s``, ``3 h 20 min``, ``2 d 4 h``; ``-`` for none."""
    if delta is None:
        return "-"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def took(started: datetime | None, finished: datetime | None, now: datetime) -> timedelta | None:
    """How long something took, or has been running so far."""
    if started is None:
        return None
    return (finished or now) - started


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def headline(error: str | None) -> str:
    """What went wrong, in one line: the exception line of a traceback, else the first."""
    if not error:
        return ""
    lines = [line for line in error.splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        for line in reversed(lines):
            if not line[0].isspace():
                return line.strip()
    return lines[0].strip() if lines else ""


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    shrink: Collection[int] = (),
) -> list[str]:
    """Lines of a table that fits the terminal (``WIDTH`` columns when not on one).

    Columns in ``shrink`` (free text such as ids) give way first when the table is too
    wide; a cut cell ends with an ellipsis. Columns in ``right`` are right-aligned.
    """
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    budget = terminal_width() - 2 * (len(headers) - 1)
    while sum(widths) > budget:
        candidates = [i for i in shrink if widths[i] > max(len(headers[i]), 4)]
        if not candidates:
            candidates = [i for i in range(len(widths)) if widths[i] > 4]
        if not candidates:
            break
        widths[max(candidates, key=lambda i: widths[i])] -= 1
    lines = []
    colour = use_colour()
    for index, cells in enumerate([headers, *rows]):
        parts = []
        for i, cell in enumerate(cells):
            text = fit(cell, widths[i])
            text = text.rjust(widths[i]) if i in right else text.ljust(widths[i])
            parts.append(paint(text) if colour and index else text)
        lines.append("  ".join(parts).rstrip())
    return lines


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def print_json(value: object) -> None:
    print(json_text(value))


def json_text(value: object) -> str:
    """``value`` as indented JSON, non-ASCII text as is but lone surrogates (a stored
    value may hold one, e.g. a file name from ``os.listdir``) escaped as ``\\udXXX``:
    valid JSON that reads back the same, and printable on any terminal."""
    return _SURROGATE.sub(_escape, json.dumps(value, indent=2, ensure_ascii=False))


# Outside strings JSON has no such characters, so every match is inside one.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def note(message: str) -> None:
    """A remark that is not the command's output, on stderr."""
    print(message, file=sys.stderr, flush=True)


def attempt_json(tr: TaskRun) -> dict[str, Any]:
    return {
        "task_id": tr.task_id,
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


def worker_json(worker: WorkerInfo) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "role": worker.role,
        "started_at": iso(worker.started_at),
        "renewed_at": iso(worker.renewed_at),
        "expires_at": iso(worker.expires_at),
        "dag_ids": list(worker.dag_ids),
    }


def runs_table(runs: Sequence[DagRun], now: datetime) -> list[str]:
    rows = [
        [
            str(run.id),
            run.dag_id,
            local(run.logical_time),
            str(run.trigger),
            str(run.status),
            duration(took(run.started_at, run.finished_at, now)),
        ]
        for run in runs
    ]
    headers = ["RUN", "DAG", "LOGICAL TIME", "TRIGGER", "STATUS", "DURATION"]
    return table(headers, rows, right={0}, shrink={1})
