"""Alerts: their text, and their sending off the state machine's path (a slow or
failing notifier never delays or breaks a run)."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import anyio

from .._structures import Alert, DagRun, TaskRun, render_alert_text
from ..abc import Notifier

logger = logging.getLogger("ppacer_async.alerts")

#: An alert that takes longer than this to send is abandoned (and logged).
SEND_TIMEOUT = 30.0

#: The text of every alert (``Alert.text``); notifiers may format it further.
ALERT_TEMPLATE = (
    "ppacer-async {kind}: task {task_id!r} of DAG {dag_id!r} (run {run_id}, "
    "logical time {logical_time}) attempt {attempt}: {error_line}"
)


def alert_for(run: DagRun, tr: TaskRun, kind: str) -> Alert:
    """The alert about attempt ``tr`` of ``run``: ``kind`` is "retry" or "failure"."""
    fields: dict[str, Any] = {
        "kind": kind,
        "dag_id": run.dag_id,
        "run_id": run.id,
        "task_id": tr.task_id,
        "attempt": tr.attempt,
        "logical_time": run.logical_time,
        "error": tr.error or "",
    }
    return Alert(text=render_alert_text(ALERT_TEMPLATE, **fields), **fields)


class Alerter:
    """Delivers alerts one at a time, in order, each with a time bound.

    :param notifier: where alerts go unless the task has a notifier of its own.
    """

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._queue: deque[tuple[Notifier, Alert]] = deque()
        self._wake: anyio.Event | None = None
        self.sent = 0
        self.failed = 0

    def post(self, notifier: Notifier | None, alert: Alert) -> None:
        """Send ``alert`` with ``notifier`` (a task's own), else the default one."""
        self._queue.append((notifier or self.notifier, alert))
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            if not self._queue:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            notifier, alert = self._queue.popleft()
            await self.send(notifier, alert)

    async def drain(self) -> None:
        """Send what is queued (on shutdown, under the caller's time bound)."""
        while self._queue:
            notifier, alert = self._queue.popleft()
            await self.send(notifier, alert)

    async def send(self, notifier: Notifier, alert: Alert) -> None:
        try:
            with anyio.fail_after(SEND_TIMEOUT):
                await notifier.send(alert)
        except Exception:
            self.failed += 1
            logger.exception(
                "notifier %r failed to send the %s alert of task %r (run %s)",
                notifier,
                alert.kind,
                alert.task_id,
                alert.run_id,
            )
        else:
            self.sent += 1
