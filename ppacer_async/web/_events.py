"""Live updates: one producer of run and task status changes, fanned out to every
server-sent-events client.

Embedded on a single-process storage, the producer is the scheduler itself: its state
machine tells the hub of each commit. Otherwise (standalone, or a storage several
processes share) one follower reads what changed in storage when storage says something
did (PostgreSQL notices, SQLite's ``PRAGMA data_version``), and compares it with what it
saw last. The follower runs only while a client listens, hosted by one client's request
and handed to another when that client leaves; no client reads the database itself.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._backoff import Backoff
from .._enums import TaskStatus
from .._exceptions import StorageError
from .._structures import Changes, DagRun, TaskRun
from ..abc import Notice, SharedStorage
from ._json import run_event

if TYPE_CHECKING:
    from .._scheduler.scheduler import Scheduler
    from ..abc import Storage

logger = logging.getLogger("ppacer_async.web")

#: Changes a client may fall behind by before it is told to reload (``resync``).
MAX_PENDING = 20_000
#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE = 15.0
#: Runs whose DAG id the hub remembers (to filter task events by DAG).
DAG_CACHE = 10_000
#: The follower reads storage at most this often (seconds): bursts of notices
#: coalesce into one read.
FOLLOW_MIN_INTERVAL = 0.05

#: The most runs created since its last read that the follower tells of (more, and
#: clients miss the creation of the oldest, not their later changes), and the page
#: size it reads them in.
NEW_RUNS_READ = 1000
NEW_RUNS_PAGE = 50

_NOTICES: tuple[Notice, ...] = ("work", "outcomes", "changes", "finished")


@attrs.define(eq=False, kw_only=True)
class Subscription:
    """One client's queue of changes not sent yet."""

    run_id: int | None = None
    dag_id: str | None = None
    pending: deque[DagRun | TaskRun] = attrs.field(factory=deque)
    overflowed: bool = False
    _wake: anyio.Event = attrs.field(factory=anyio.Event)

    def offer(self, runs: list[DagRun], task_runs: list[TaskRun]) -> None:
        pending, run_id = self.pending, self.run_id
        before = len(pending)
        if run_id is not None:
            runs = [r for r in runs if r.id == run_id]
            task_runs = [t for t in task_runs if t.run_id == run_id]
        if runs:  # a run starts before its tasks and ends after them
            pending.extend(r for r in runs if not r.status.finished)
            pending.extend(task_runs)
            pending.extend(r for r in runs if r.status.finished)
        else:
            pending.extend(task_runs)
        if len(pending) > MAX_PENDING:
            pending.clear()
            self.overflowed = True
        if len(pending) != before or self.overflowed:
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def wait(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()


@attrs.define(eq=False, kw_only=True)
class _Picture:
    """What the storage follower saw last: the active runs and their attempts, and
    the highest run id."""

    last_id: int
    runs: dict[int, DagRun] = attrs.field(factory=dict)
    tasks: dict[tuple[int, str, int], TaskRun] = attrs.field(factory=dict)


@attrs.define(eq=False, kw_only=True)
class EventHub:
    """Fans the changes one producer sees out to every subscription."""

    storage: Storage
    scheduler: Scheduler | None = None
    _subscriptions: set[Subscription] = attrs.field(init=False, factory=set)
    _dag_of_run: OrderedDict[int, str] = attrs.field(init=False, factory=OrderedDict)
    _follower_running: bool = attrs.field(init=False, default=False)
    _follower_gone: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    #: set once a storage follower has read the current state (a new one is made when
    #: the follower stops)
    follower_ready: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _changed: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    closed: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        if self.scheduler is not None:
            self.scheduler._add_commit_listener(self._on_commit)

    @property
    def follows_storage(self) -> bool:
        """Whether changes are read from storage rather than told by the engine."""
        return self.scheduler is None or isinstance(self.storage, SharedStorage)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def _on_commit(self, changes: Changes, seconds: float) -> None:
        if not self._subscriptions:
            return
        if self.follows_storage:  # a shared storage: the follower reads it
            self._set_changed()
        else:
            self.publish(changes.dag_runs, changes.task_runs)

    def publish(self, runs: list[DagRun], task_runs: list[TaskRun]) -> None:
        dag_of_run = self._dag_of_run
        for run in runs:
            if run.id not in dag_of_run:
                dag_of_run[run.id] = run.dag_id
                if len(dag_of_run) > DAG_CACHE:
                    dag_of_run.popitem(last=False)
        for subscription in self._subscriptions:
            subscription.offer(runs, task_runs)

    async def dag_of(self, run_id: int) -> str | None:
        dag_id = self._dag_of_run.get(run_id)
        if dag_id is None:
            run = await self.storage.get_run(run_id)
            if run is None:
                return None
            dag_id = self._dag_of_run[run_id] = run.dag_id
        return dag_id

    # -- the storage follower ------------------------------------------------------------

    async def keep_follower(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Host the follower whenever no other client's request does; report started
        once a follower has read the current state (later changes are published)."""
        while True:
            if not self._follower_running:
                self._follower_running = True
                try:
                    await self._follow(task_status)
                finally:
                    self._follower_running = False
                    gone, self._follower_gone = self._follower_gone, anyio.Event()
                    self.follower_ready = anyio.Event()
                    gone.set()
            else:
                task_status.started()
            task_status = anyio.TASK_STATUS_IGNORED
            await self._follower_gone.wait()

    async def _follow(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        storage = self.storage
        standalone_shared = self.scheduler is None and isinstance(storage, SharedStorage)
        async with anyio.create_task_group() as tg:
            if isinstance(storage, SharedStorage):
                for kind in _NOTICES:
                    storage.add_notice_callback(kind, self._set_changed)
                if standalone_shared:
                    await tg.start(storage.listen)
            try:
                picture = await self._snapshot()
                task_status.started()
                self.follower_ready.set()
                backoff, unread = Backoff(), False
                while True:
                    try:
                        if not unread:
                            await self._wait_for_change()
                            unread = True
                        picture = await self._diff(picture)
                        unread = False
                    except StorageError as exc:
                        # Clients keep their streams; changes are told once it is back.
                        logger.warning("live updates cannot read the storage: %s", exc)
                        await backoff.sleep()
                        continue
                    backoff.reset()
                    await anyio.sleep(FOLLOW_MIN_INTERVAL)
            finally:
                if isinstance(storage, SharedStorage):
                    for kind in _NOTICES:
                        storage.remove_notice_callback(kind, self._set_changed)
                tg.cancel_scope.cancel()

    def _set_changed(self) -> None:
        self._changed.set()

    async def _wait_for_change(self) -> None:
        storage = self.storage
        if isinstance(storage, SharedStorage):
            with anyio.move_on_after(storage.poll_interval.total_seconds()):
                await self._changed.wait()
            self._changed = anyio.Event()
        else:
            await storage.wait_for_external_change()

    async def _snapshot(self) -> _Picture:
        storage = self.storage
        newest = await storage.list_runs(limit=1)
        picture = _Picture(last_id=newest[0].id if newest else 0)
        for run in await storage.active_runs():
            picture.runs[run.id] = run
            for tr in await storage.task_runs(run.id):
                picture.tasks[tr.key] = tr
        return picture

    async def _created_since(self, last_id: int) -> list[DagRun]:
        """The runs with an id above ``last_id``, a page at a time (usually one small
        page: the runs created since the last read)."""
        created: list[DagRun] = []
        cursor: int | None = None
        while len(created) < NEW_RUNS_READ:
            page = await self.storage.list_runs(before=cursor, limit=NEW_RUNS_PAGE)
            created.extend(run for run in page if run.id > last_id)
            if len(page) < NEW_RUNS_PAGE or page[-1].id <= last_id:
                break
            cursor = page[-1].id
        return created

    async def _diff(self, before: _Picture) -> _Picture:
        """Publish what changed since ``before`` was read and return the new picture
        (of active runs only: finished runs change no more). Runs created since are
        found by id, so a run that started and finished between two reads is told too.
        """
        storage = self.storage
        now = _Picture(last_id=before.last_id)
        for run in await storage.active_runs():
            now.runs[run.id] = run
        created = await self._created_since(before.last_id)
        now.last_id = max([before.last_id, *(run.id for run in created)])
        seen: dict[int, DagRun] = {run.id: run for run in created}
        seen.update(now.runs)
        for run in created:  # created after the active runs were read: follow it too
            if not run.status.finished and run.id not in now.runs:
                now.runs[run.id] = run
        for run_id in set(before.runs) - set(now.runs) - set(seen):  # finished since
            finished = await storage.get_run(run_id)
            if finished is not None:
                seen[run_id] = finished
        changed_runs: list[DagRun] = []
        changed_tasks: list[TaskRun] = []
        for run_id in sorted(seen):
            run = seen[run_id]
            old_run = before.runs.get(run_id)
            if old_run is None or old_run.status is not run.status:
                changed_runs.append(run)
            for tr in await storage.task_runs(run_id):
                if run_id in now.runs:
                    now.tasks[tr.key] = tr
                old = before.tasks.get(tr.key)
                if old is None or old.status is not tr.status:
                    changed_tasks.append(tr)
        if changed_runs or changed_tasks:
            self.publish(changed_runs, changed_tasks)
        return now

    # -- a client ------------------------------------------------------------------------

    def subscribe(self, run_id: int | None = None, dag_id: str | None = None) -> Subscription:
        subscription = Subscription(run_id=run_id, dag_id=dag_id)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every stream (the server is stopping) and refuse new ones."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.wake()

    async def render(self, subscription: Subscription) -> str:
        """The server-sent-events text of what ``subscription`` has pending."""
        items = list(subscription.pending)
        subscription.pending.clear()
        parts: list[str] = []
        if subscription.overflowed:
            subscription.overflowed = False
            parts.append("event: resync\ndata: {}\n\n")
        dag_filter = subscription.dag_id
        dag_of_run = self._dag_of_run
        prefixes: dict[int, str | None] = {}  # run id -> the start of its task events
        for item in items:
            if isinstance(item, DagRun):
                if dag_filter is not None and item.dag_id != dag_filter:
                    continue
                parts.append(_sse("run", run_event(item)))
                continue
            prefix = prefixes.get(item.run_id, "")
            if prefix == "":
                dag_id = dag_of_run.get(item.run_id)
                if dag_id is None:
                    dag_id = await self.dag_of(item.run_id)
                keep = dag_filter is None or dag_id == dag_filter
                prefix = prefixes[item.run_id] = _task_prefix(item.run_id, dag_id) if keep else None
            if prefix is not None:
                parts.append(
                    f'{prefix}"task_id":{_quote(item.task_id)},"attempt":{item.attempt},'
                    f'"status":{_STATUS_JSON[item.status]}}}\n\n'
                )
        return "".join(parts)


_STATUS_JSON = {status: f'"{status.value}"' for status in TaskStatus}


def _task_prefix(run_id: int, dag_id: str | None) -> str:
    dag = "null" if dag_id is None else _quote(dag_id)
    return f'event: task\ndata: {{"run_id":{run_id},"dag_id":{dag},'


def task_event_text(tr: TaskRun, dag_id: str | None) -> str:
    """``task_event(tr, dag_id)`` as an event, written out by hand as :meth:`render`
    does, since thousands a second may be sent."""
    return (
        f'{_task_prefix(tr.run_id, dag_id)}"task_id":{_quote(tr.task_id)},'
        f'"attempt":{tr.attempt},"status":{_STATUS_JSON[tr.status]}}}\n\n'
    )


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EventStream(Response):
    """The response of ``GET /api/v1/events``: streams one subscription until the
    client leaves (and, when changes come from storage, may host the follower)."""

    def __init__(self, hub: EventHub, run_id: int | None, dag_id: str | None) -> None:
        super().__init__(media_type="text/event-stream")
        self.hub = hub
        self.run_id = run_id
        self.dag_id = dag_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        subscription = hub.subscribe(self.run_id, self.dag_id)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                if hub.follows_storage:
                    await tg.start(hub.keep_follower)
                # From here on, every change committed is sent to this client.
                await _send_text(send, "retry: 2000\n: connected\n\n")
                while not hub.closed:
                    with anyio.move_on_after(KEEPALIVE):
                        await subscription.wait()
                    text = await hub.render(subscription)
                    await _send_text(send, text or ": keep-alive\n\n")
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            hub.unsubscribe(subscription)


async def _send_text(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
