"""The worker side of a process on a shared storage (PostgreSQL), role ``all`` or
``worker``, leader or not.

- ``Claimer``: takes scheduled attempts from storage for this process's free workers,
  when notified of new work, when a worker frees up, or every ``poll_interval``.
- ``Reporter``: the consumer's sink; stores outcomes and task logs in batches, for the
  process that schedules to apply.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc
import attrs

from .._backoff import Backoff
from .._enums import TaskStatus
from .._exceptions import StorageError
from .._structures import Changes, DagRun, LogRecord, TaskRun, split_instance_id
from .._text import plural
from .logbuffer import LogBuffer
from .salvage import Salvage
from .upstream import RunView, claimed

if TYPE_CHECKING:
    from .._dag import DAG
    from ..abc import Clock, SharedStorage
    from .consumer import Consumer, Item
    from .machine import RowItem
    from .queue import ReadyQueue

logger = logging.getLogger("ppacer_async.scheduler")

#: The most attempts one claim takes.
CLAIM_BATCH = 500


class Leading(Protocol):
    """The engine of this process, as its workers see it (``ClusterEngine``)."""

    @property
    def leading(self) -> bool:
        """Whether this process schedules now."""

    def reported(self, outcomes: list[TaskRun]) -> None:
        """Outcomes were stored; the state machine applies them if it runs here."""

    @property
    def hands_over(self) -> bool:
        """Whether the state machine runs here and has ready attempts to claim for
        this process's workers at its next step."""

    def local_run(self, run_id: int) -> RunView | None:
        """The state machine's own state of a run, when it runs here."""

    def take_stored(self, n: int) -> list[RowItem]:
        """Up to ``n`` scheduled attempts the state machine made ready and keeps in
        memory, when it runs here, for this process to claim by key."""

    def apply_local(self, tr: TaskRun) -> bool:
        """Hand an outcome straight to the state machine when it runs here (its
        commit stores it); False if it is to be reported as usual."""


class Reporter:
    """Stores what this process's workers did: outcomes and logs, one batch per turn.

    A failed write is retried with backoff (the database may be restarting) until it
    succeeds or the attempt's lease is given up; outcomes are never applied here.
    """

    def __init__(
        self,
        *,
        storage: SharedStorage,
        worker_id: str,
        engine: Leading,
    ) -> None:
        self.storage = storage
        self.worker_id = worker_id
        self.logs = LogBuffer()
        self._outcomes: list[TaskRun] = []
        #: The attempts this process claimed and has not yet reported: the only ones
        #: whose leases it renews.
        self.held: set[tuple[int, str, int]] = set()
        self._engine = engine
        self._wake = anyio.Event()
        self._sending = anyio.Lock()
        self.dropped = 0

    # -- the consumer's sink ---------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def post_started(self, state: Any, i: int, tr: TaskRun) -> None:
        """Nothing to write: claiming the attempt marked it running."""

    def post_outcome(self, state: Any, i: int, tr: TaskRun) -> None:
        if (
            self._engine.leading
            and tr.key in self.held
            # Every log line written before it is stored (none pending or being sent):
            # the outcome may not be committed ahead of its attempt's logs.
            and not self.logs
            and not self._sending.locked()
            and self._engine.apply_local(tr)
        ):
            # This process schedules: its next commit stores the outcome (if the
            # attempt is still this process's) with what follows from it.
            self.held.discard(tr.key)
            return
        self._outcomes.append(tr)
        self._wake.set()

    def post_instances(self, state: Any, i: int, first: int, trs: list[TaskRun]) -> None:
        self._outcomes.extend(trs)
        self._wake.set()

    def post_interrupted(self, state: Any, i: int, tr: TaskRun) -> None:
        self._outcomes.append(attrs.evolve(tr, status=TaskStatus.interrupted))
        self._wake.set()

    # -- writing ---------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._outcomes or self.logs)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        retry = Backoff()
        while True:
            if not self.pending:
                self._wake = anyio.Event()
                await self._wake.wait()
            if await self._send():
                retry.reset()
            else:
                await retry.sleep()

    async def flush(self) -> None:
        """Write what is pending (on shutdown; the caller bounds the time)."""
        retry = Backoff()
        while self.pending and not await self._send():
            await retry.sleep()

    async def _send(self) -> bool:
        """Write one batch; return False (keeping it) if storage failed."""
        async with self._sending:
            outcomes, self._outcomes = self._outcomes, []
            logs = list(self.logs)
            self.logs.clear()
            if not outcomes and not logs:
                return True
            notify = not self._engine.leading
            try:
                with anyio.CancelScope(shield=True):
                    accepted = await self.storage.report(
                        self.worker_id, outcomes, logs, notify=notify
                    )
            except StorageError as exc:
                self._outcomes[:0] = outcomes
                self.logs.extendleft(reversed(logs))
                logger.warning("cannot report %s yet: %s", plural(len(outcomes), "outcome"), exc)
                return False
            except Exception:  # not the database: what some row holds
                logger.warning("reporting failed; looking for rows that cannot be stored")
                if not await self._salvage(outcomes, logs, notify):
                    return False
                self.held.difference_update(tr.key for tr in outcomes)
                return True
        self.held.difference_update(tr.key for tr in outcomes)
        taken = []
        for tr in outcomes:
            if tr.key in accepted:
                taken.append(tr)
            elif tr.status is TaskStatus.cancelled:
                continue  # its run was cancelled, and its row says so already
            else:
                self.dropped += 1
                logger.warning(
                    "run %s task %s attempt %d ended after its lease was given up; this "
                    "outcome (%s) is dropped and the attempt runs again",
                    tr.run_id,
                    tr.task_id,
                    tr.attempt,
                    tr.status,
                )
        if taken:
            self._engine.reported(taken)
        return True

    async def _salvage(self, outcomes: list[TaskRun], logs: list[LogRecord], notify: bool) -> bool:
        """Report in parts around the rows that cannot be stored (called holding
        ``_sending``); their attempts are stored failed with the reason."""
        salvage = Salvage([*outcomes, *logs])
        accepted: set[tuple[int, str, int]] = set()

        async def write(changes: Changes) -> None:
            found = await self.storage.report(
                self.worker_id, changes.task_runs, changes.logs, notify=notify
            )
            accepted.update(found)

        try:
            with anyio.CancelScope(shield=True):
                await salvage.commit(write)
        except StorageError as exc:
            for row in reversed(salvage.rows[salvage.done :]):
                if isinstance(row, TaskRun):
                    self._outcomes.insert(0, row)
                elif isinstance(row, LogRecord):
                    self.logs.appendleft(row)
            logger.warning("cannot report outcomes yet: %s", exc)
            return False
        instead = {
            row.key: new
            for row, new in salvage.replaced
            if isinstance(row, TaskRun) and isinstance(new, TaskRun)
        }
        taken = [instead.get(tr.key, tr) for tr in outcomes if tr.key in accepted]
        if taken:
            self._engine.reported(taken)
        return True


class Claimer:
    """Keeps this process's workers busy with attempts claimed from storage.

    It claims only for free workers (never hoarding what other processes could run),
    and waits for one of: a ``work`` notice, a worker freeing up, ``poll_interval``.

    While this process schedules, its state machine also claims attempts for these
    workers in its own commits and hands them over (``take``: the machine's
    ``LocalWorkers``); a worker freeing up then claims from storage only when attempts
    may wait there that the machine will not hand over.
    """

    def __init__(
        self,
        *,
        storage: SharedStorage,
        worker_id: str,
        dags: Mapping[str, DAG],
        consumer: Consumer,
        queue: ReadyQueue[Item],
        clock: Clock,
        reporter: Reporter,
        engine: Leading,
    ) -> None:
        self.storage = storage
        self.worker_id = worker_id
        self.dags = dags
        self.consumer = consumer
        self.queue = queue
        self.clock = clock
        self.reporter = reporter
        self._engine = engine
        # Refill when a quarter of the workers are free, so a busy process claims in
        # batches rather than once per finished attempt.
        self.refill_at = max(1, consumer.workers // 4)
        #: Ready attempts left in storage at the last count (any process may take them).
        self.waiting = 0
        #: Whether storage may hold scheduled attempts (false once a claim found fewer
        #: than it asked for, until told of new ones).
        self.stored_work = True
        #: Attempts handed over that the queue had no room for yet.
        self._overflow: list[RowItem] = []
        self._wake = anyio.Event()
        #: The runs of the attempts claimed here, as their workers see them, while any
        #: is queued or running.
        self._views: weakref.WeakSet[RunView] = weakref.WeakSet()

    def wake(self) -> None:
        """Scheduled attempts may wait in storage: claim for the free workers."""
        self.stored_work = True
        self._wake.set()

    def _attempt_ended(self) -> None:
        """A worker freed up: claim for it, unless this process schedules and neither
        its state machine nor storage holds attempts to claim."""
        engine = self._engine
        if engine.leading and not (self.stored_work or engine.hands_over):
            return
        self._wake.set()

    # -- the state machine's LocalWorkers, while this process schedules ---------------

    def free(self) -> int:
        return self.consumer.free - len(self._overflow)

    def take(self, items: list[RowItem]) -> None:
        self.reporter.held.update(item[2].key for item in items)
        queue = self.queue
        for n, item in enumerate(items):
            if not queue.put_nowait(item[0].graph.tasks[item[1]].priority, item):
                self._overflow += items[n:]  # queued by the loop, as room frees up
                self._wake.set()
                return

    def claim_short(self) -> None:
        self.wake()

    def claimed_runs(self) -> set[int]:
        """The runs of the attempts claimed here that are queued or running (the
        leader's own runs aside: its state machine cancels those itself)."""
        return {view.run.id for view in self._views}

    def cancel_run(self, run_id: int) -> None:
        """A run was cancelled (its rows say so already): its attempts claimed here and
        not started never start, and their leases are no longer renewed."""
        for view in list(self._views):
            if view.run.id == run_id:
                view.cancelled = True
        held = self.reporter.held
        held.difference_update([key for key in held if key[0] == run_id])

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self.storage.add_notice_callback("work", self.wake)
        self.consumer.on_attempt_end = self._attempt_ended
        try:
            task_status.started()
            await self._loop()
        finally:
            self.storage.remove_notice_callback("work", self.wake)
            self.consumer.on_attempt_end = None

    async def _loop(self) -> None:
        consumer = self.consumer
        poll = self.storage.poll_interval.total_seconds()
        retry = Backoff()
        while True:
            self._wake = anyio.Event()  # before claiming: a notice during it is kept
            if self._overflow:
                overflow, self._overflow = self._overflow, []
                await self._put(overflow)
            free = consumer.free
            idle = consumer.running == 0
            if free >= self.refill_at or (free > 0 and idle):
                limit = min(free, CLAIM_BATCH)
                if self._engine.hands_over:
                    # The attempts the state machine keeps: claimed by key, no search.
                    try:
                        claimed_keys = await self._claim_stored(limit)
                    except StorageError as exc:
                        self.stored_work = True  # those taken from the machine: in storage
                        logger.warning(
                            "cannot claim work: %s; retrying in %.1f s", exc, retry.delay
                        )
                        await retry.sleep()
                        continue
                    retry.reset()
                    if claimed_keys:
                        continue  # there may be more
                try:
                    claimed, left = await self.storage.claim(
                        self.worker_id, self.dags.keys(), limit, self.clock.now()
                    )
                    self.waiting = max(0, self.waiting - len(claimed)) if left is None else left
                    await self._enqueue(claimed)
                except StorageError as exc:
                    logger.warning("cannot claim work: %s; retrying in %.1f s", exc, retry.delay)
                    await retry.sleep()
                    continue
                retry.reset()
                if len(claimed) == limit:
                    continue  # there may be more
                self.stored_work = False
            with anyio.move_on_after(poll):
                await self._wake.wait()
            if not self._wake.is_set():
                self.stored_work = True  # the slow fallback for lost notices

    async def _claim_stored(self, limit: int) -> int:
        """Claim by key up to ``limit`` attempts the state machine keeps; return how
        many were taken (those taken by other processes are dropped)."""
        items = self._engine.take_stored(limit)
        if not items:
            return 0
        now = self.clock.now()
        taken = await self.storage.claim_keys(self.worker_id, [item[2].key for item in items], now)
        if len(taken) < len(items):
            self.stored_work = True  # some may be left only in storage
        running = [(view, i, claimed(tr, now)) for view, i, tr in items if tr.key in taken]
        if running:
            self.reporter.held.update(item[2].key for item in running)
            await self._put(running)
        return len(running)

    async def _upstream_results(self, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], Any]:
        """The stored results the claimed attempts need, retried until read: the
        attempts are this process's now (their leases are renewed while it holds them),
        so giving up here would leave them claimed and never run."""
        retry = Backoff()
        while True:
            try:
                return await self.storage.upstream_results(wanted)
            except StorageError as exc:
                logger.warning(
                    "cannot read the upstream results of claimed attempts: %s; retrying in %.1f s",
                    exc,
                    retry.delay,
                )
                await retry.sleep()

    async def _enqueue(self, claimed: list[tuple[DagRun, TaskRun]]) -> None:
        if not claimed:
            return
        views: dict[int, RunView] = {}
        items: list[tuple[RunView, int, TaskRun]] = []
        wanted: set[tuple[int, str]] = set()
        self.reporter.held.update(tr.key for _, tr in claimed)
        for run, tr in claimed:
            dag = self.dags[run.dag_id]
            graph = dag.graph
            i = graph.index.get(tr.task_id)
            if i is None:  # an instance of a mapped task: process[3]
                i = graph.index.get(split_instance_id(tr.task_id)[0])
            if i is None:
                self.reporter.post_outcome(
                    None,
                    0,
                    attrs.evolve(
                        tr,
                        status=TaskStatus.failed,
                        finished_at=self.clock.now(),
                        error=(
                            f"task {tr.task_id!r} is not in DAG {run.dag_id!r} as this "
                            "process serves it; serve the same DAG files in every process"
                        ),
                    ),
                )
                continue
            view = views.get(run.id)
            if view is None:
                # The leader's own state of the run, when it is this process, already
                # holds the upstream results.
                view = self._engine.local_run(run.id)
                if view is None:
                    view = RunView(run=run, dag=dag, graph=graph)
                    self._views.add(view)
                views[run.id] = view
            items.append((view, i, tr))
            if type(view) is RunView:
                wanted.update((run.id, graph.ids[p]) for p in graph.parents[i])
        if wanted:
            results = await self._upstream_results(wanted)
            for (run_id, task_id), value in results.items():
                view = views[run_id]
                view.results[view.graph.index[task_id]] = value
        await self._put(items)

    async def _put(self, items: Sequence[Item]) -> None:
        queue = self.queue
        for item in items:
            priority = item[0].graph.tasks[item[1]].priority
            while not queue.put_nowait(priority, item):
                await queue.wait_for_space()
