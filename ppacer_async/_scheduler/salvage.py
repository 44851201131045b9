"""The last resort when a commit fails because of what it holds, not the database.

What tasks produce is made storable before it reaches a commit (``_storable.py``), so
this should not happen; if it does, one bad row must not stop every other run. The
batch is committed in halves, in order, down to the rows that fail alone; each of
those is stored in a form that can be: an attempt ``failed`` with the reason (its
result and error left out), a log line replaced with a note. A row whose replacement
fails too is not the problem: the database is, and the error is raised as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs

from .. import _storable
from .._enums import TaskStatus
from .._structures import Changes, DagRun, LogRecord, TaskRun

logger = logging.getLogger("ppacer_async.scheduler")

Row = DagRun | TaskRun | LogRecord

#: The longest part of a database error quoted in a replacement row.
_QUOTE = 500


def _changes(rows: list[Row]) -> Changes:
    changes = Changes()
    for row in rows:
        if isinstance(row, TaskRun):
            changes.task_runs.append(row)
        elif isinstance(row, DagRun):
            changes.dag_runs.append(row)
        else:
            changes.logs.append(row)
    return changes


def _reason(exc: BaseException) -> str:
    text = _storable.text(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= _QUOTE else text[:_QUOTE] + "..."


def replacement(row: Row, exc: BaseException) -> Row | None:
    """What is stored instead of a row that cannot be (``None``: nothing can be)."""
    if isinstance(row, TaskRun):
        status = row.status
        if status not in (TaskStatus.failed, TaskStatus.up_for_retry):
            status = TaskStatus.failed
        return attrs.evolve(
            row,
            status=status,
            result=None,
            error=(
                f"the outcome of this attempt ({row.status}) could not be stored: "
                f"{_reason(exc)}; it is recorded failed instead"
            ),
        )
    if isinstance(row, LogRecord):
        return attrs.evolve(
            row, message=f"[ppacer-async: a log record could not be stored: {_reason(exc)}]"
        )
    return None


@attrs.define(eq=False)
class Salvage:
    """Commits one batch row group by row group, remembering how far it got, so that a
    commit retried after a database failure does not write a part twice.

    :ivar replaced: ``(row, what was stored instead)`` for each row that failed alone.
    """

    rows: list[Row]
    done: int = 0
    replaced: list[tuple[Row, Row]] = attrs.field(factory=list)

    @classmethod
    def of(cls, changes: Changes) -> Salvage:
        return cls([*changes.dag_runs, *changes.task_runs, *changes.logs])

    async def commit(self, write: Callable[[Changes], Awaitable[None]]) -> None:
        """Commit the rows not committed yet, splitting around the ones that fail."""
        await self._commit(write, self.rows[self.done :])

    async def _commit(self, write: Callable[[Changes], Awaitable[None]], rows: list[Row]) -> None:
        if not rows:
            return
        try:
            await write(_changes(rows))
        except Exception as exc:
            if len(rows) > 1:
                mid = len(rows) // 2
                await self._commit(write, rows[:mid])
                await self._commit(write, rows[mid:])
                return
            instead = replacement(rows[0], exc)
            if instead is None:
                raise
            await write(_changes([instead]))  # raises if the database is the problem
            logger.error(
                "a row could not be stored (%s); stored instead: %r", _reason(exc), instead
            )
            self.replaced.append((rows[0], instead))
        self.done += len(rows)
