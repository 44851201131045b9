"""Telling other processes: LISTEN/NOTIFY channels per schema, and the callbacks that
a notice wakes in this process."""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Collection, Sequence

import anyio
import anyio.abc
import attrs

from ..._backoff import Backoff
from ..._enums import DagRunStatus, TaskStatus
from ..._structures import DagRun, TaskRun
from ...abc import Notice
from ._connection import CONNECTION_ERRORS, Database, close_quietly, logger

_KINDS: tuple[Notice, ...] = ("work", "outcomes", "changes", "finished")


def channels(schema: str) -> dict[Notice, str]:
    """The channel of each kind of notice. Channels are per schema, so installations
    sharing a database do not wake each other."""
    tag = hashlib.sha256(schema.encode()).hexdigest()[:12]
    return {kind: f"ppacer_{tag}_{kind}" for kind in _KINDS}


@attrs.define(eq=False, kw_only=True)
class Notices:
    """Sends notices with the statements that cause them, listens for those of other
    processes, and calls this process's callbacks for both."""

    db: Database
    #: How long a listener waits between checks that its connection is alive, and the
    #: longest wait_for_external_change waits without a notice.
    poll_interval: float
    channels: dict[Notice, str]
    #: The payload of this storage's notices: its own are not delivered back to it.
    sender: str = attrs.field(init=False, factory=lambda: uuid.uuid4().hex)
    _callbacks: dict[Notice, list[Callable[[], None]]] = attrs.field(init=False, factory=dict)
    _changes: anyio.Event | None = attrs.field(init=False, default=None)

    def add_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        self._callbacks.setdefault(kind, []).append(callback)

    def remove_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        callbacks = self._callbacks.get(kind, [])
        if callback in callbacks:
            callbacks.remove(callback)

    def notify_local(self, kinds: Collection[Notice]) -> None:
        for kind in kinds:
            for callback in list(self._callbacks.get(kind, ())):
                callback()

    def commit_channels(
        self,
        runs: Collection[DagRun],
        task_runs: Collection[TaskRun],
        leased: Sequence[bool] = (),
    ) -> tuple[str, ...]:
        """The channels a commit notifies: new ready attempts wake the workers, queued
        and cancelled runs the leader, finished runs whoever waits for them (and the
        processes running attempts of a cancelled one). Rows ``leased`` (by position)
        are claimed by the committing process: they wake no one."""
        kinds: set[Notice] = set()
        for j, tr in enumerate(task_runs):
            if tr.status is TaskStatus.scheduled and not (leased and leased[j]):
                kinds.add("work")
                break
        for run in runs:
            if run.status is DagRunStatus.queued:
                kinds.add("changes")
            elif run.status.finished:
                kinds.add("finished")
                if run.status is DagRunStatus.cancelled:
                    kinds.add("changes")  # the leader cancels what still runs
        return tuple(self.channels[kind] for kind in kinds)

    def _on_notification(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if payload == self.sender:
            return  # this process did it, and told its own parts directly
        for kind, name in self.channels.items():
            if name == channel:
                self.notify_local((kind,))

    async def listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Deliver other processes' notices until cancelled, reconnecting with backoff."""
        task_status.started()
        backoff = Backoff()
        while True:
            conn = await self.db.connect_retrying(backoff, "cannot listen for notifications at")
            closed = anyio.Event()
            try:
                conn.add_termination_listener(functools.partial(_set_on_close, closed))
                for channel in self.channels.values():
                    await conn.add_listener(channel, self._on_notification)
                # Notices sent while nobody listened are lost: everyone looks now.
                self.notify_local(self.channels)
                while not closed.is_set():
                    with anyio.move_on_after(self.poll_interval):
                        await closed.wait()
                    if not closed.is_set():
                        await conn.fetchval("SELECT 1")
            except CONNECTION_ERRORS as exc:
                logger.warning(
                    "lost the notification connection (%s); reconnecting",
                    self.db.error_text(exc),
                )
            finally:
                with anyio.CancelScope(shield=True):
                    await close_quietly(conn)

    async def wait_for_external_change(self) -> None:
        """Return on a ``changes`` notice, or after ``poll_interval`` at the latest.

        A notice that arrives between two calls (while the caller reads the storage)
        makes the next call return at once: it is never lost.
        """
        if self._changes is None:
            self._changes = anyio.Event()
            self.add_callback("changes", self._on_changes)
        with anyio.move_on_after(self.poll_interval):
            await self._changes.wait()
        self._changes = anyio.Event()

    def _on_changes(self) -> None:
        if self._changes is not None:
            self._changes.set()


def _set_on_close(event: anyio.Event, conn: object) -> None:
    event.set()
