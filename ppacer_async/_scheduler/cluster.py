"""Several processes share one storage (PostgreSQL): the wiring of one of them.

Each process with role ``all`` or ``scheduler`` stands for the leadership, and the one
holding it schedules (a ``Coordinator``: state machine, watcher, alerter); each one
with role ``all`` or ``worker`` claims and runs attempts (``worker.py``). Every process
renews its ``workers`` row and the leases of its attempts, and gives up the attempts
of processes that stopped renewing theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs

from .._backoff import Backoff
from .._enums import DagRunStatus
from .._exceptions import PpacerError, RunNotFound, StorageError
from .._structures import DagRun, NewRun, Statistics, TaskRun
from .._text import plural
from ..abc import Clock, Leadership, SharedStorage
from .consumer import Consumer, Item
from .engine import SHUTDOWN_BOUND, Coordinator, Settings, statistics
from .machine import create_run
from .queue import ReadyQueue
from .upstream import RunView
from .watchdog import LoopWatchdog
from .worker import Claimer, Reporter

if TYPE_CHECKING:
    from .machine import RowItem

logger = logging.getLogger("ppacer_async.scheduler")

#: Pause between two attempts at the leadership after losing it to an error.
LEADERSHIP_RETRY = 1.0
#: Seconds the reaper looks after a lease is due: past it on the database's clock,
#: and never sooner than this after its last look.
REAP_LAG = 0.02


@attrs.define(eq=False, kw_only=True)
class ClusterEngine:
    """The engine of one process among several sharing ``storage``."""

    settings: Settings
    storage: SharedStorage
    #: The scheduling parts, while this process holds the leadership.
    coordinator: Coordinator | None = attrs.field(init=False, default=None)
    consumer: Consumer | None = attrs.field(init=False, default=None)
    reporter: Reporter | None = attrs.field(init=False, default=None)
    claimer: Claimer | None = attrs.field(init=False, default=None)
    #: Set once this process's workers reported their last outcomes (or it has none).
    _executed: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _watchdog: LoopWatchdog | None = attrs.field(init=False, default=None)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        s, storage = self.settings, self.storage
        if s.loop_block_warning is None:
            await self._run(task_status=task_status)
            return
        worker_id = s.worker_id
        self._watchdog = LoopWatchdog(
            threshold=s.loop_block_warning,
            consumer=None,  # set once the workers start
            renew=lambda: storage.renew_leases_from_thread(worker_id, self._held()),
            renew_every=storage.lease.total_seconds() / 3,
        )
        with self._watchdog:
            await self._run(task_status=task_status)

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        s, storage = self.settings, self.storage
        executes = s.role in ("all", "worker")
        if not executes:
            self._executed.set()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(storage.listen)
                await storage.register_worker(s.worker_id, s.role, s.clock.now(), s.dags)
                tg.start_soon(
                    keep_leases, storage, s.worker_id, s.role, s.clock, s.dags, self._held
                )
                tg.start_soon(reap, storage, self._reaped)
                if executes:
                    await tg.start(self._execute)
                if s.role in ("all", "scheduler"):
                    await tg.start(self._lead)
                logger.info(
                    "serving %s as %s (role %s): %s",
                    plural(len(s.dags), "DAG"),
                    s.worker_id,
                    s.role,
                    ", ".join(s.dags) or "-",
                )
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                try:
                    await storage.unregister_worker(s.worker_id)
                except PpacerError as exc:
                    logger.warning("could not unregister %s: %s", s.worker_id, exc)

    # -- running attempts ----------------------------------------------------------------

    def _held(self) -> tuple[tuple[int, str, int], ...]:
        """The attempts this process claimed and has not reported (safe to call from the
        watchdog's thread while the event loop is blocked, so it cannot change)."""
        reporter = self.reporter
        if reporter is None:
            return ()
        while True:
            try:
                return tuple(reporter.held)
            except RuntimeError:  # changed while copied: the loop ran meanwhile
                continue

    async def _execute(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Claim and run attempts; report what they did."""
        s, storage = self.settings, self.storage
        workers = s.max_concurrent_tasks
        queue: ReadyQueue[Item] = ReadyQueue(max(s.queue_size, workers))
        reporter = self.reporter = Reporter(storage=storage, worker_id=s.worker_id, engine=self)
        consumer = self.consumer = Consumer(
            sink=reporter,
            queue=queue,
            clock=s.clock,
            workers=workers,
            max_threads=s.max_threads,
            notifier=s.notifier,
            storage=s.storage,
        )
        if self._watchdog is not None:
            self._watchdog.consumer = consumer
        claimer = self.claimer = Claimer(
            storage=storage,
            worker_id=s.worker_id,
            dags=s.dags,
            consumer=consumer,
            queue=queue,
            clock=s.clock,
            reporter=reporter,
            engine=self,
        )
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(reporter.run)
                await tg.start(consumer.run)
                await tg.start(claimer.run)
                await tg.start(_follow_cancels, storage, consumer, claimer)
                task_status.started()
        finally:
            # Interrupted attempts are reported so that the leader (maybe this
            # process, waiting for it) records them at once.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                await reporter.flush()
            self._executed.set()

    # -- what the workers ask (``worker.Leading``) -----------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this process schedules now."""
        return self.coordinator is not None

    def reported(self, outcomes: list[TaskRun]) -> None:
        """This process's workers reported outcomes: apply them at once if leading
        (if not, the leader was notified)."""
        if self.coordinator is not None:
            self.coordinator.machine.post_reported(outcomes)

    @property
    def hands_over(self) -> bool:
        """Whether this process leads and has ready attempts to claim for its own
        workers at its next step (a worker freeing up need not claim)."""
        coordinator = self.coordinator
        return coordinator is not None and coordinator.machine.has_local_backlog()

    def take_stored(self, n: int) -> list[RowItem]:
        coordinator = self.coordinator
        return [] if coordinator is None else coordinator.machine.take_stored(n)

    def apply_local(self, tr: TaskRun) -> bool:
        """An outcome of this process's workers: applied by the state machine without
        being reported first, if this process leads and the machine takes it."""
        coordinator = self.coordinator
        return coordinator is not None and coordinator.machine.post_local(tr)

    def local_run(self, run_id: int) -> RunView | None:
        """The state of a run, if this process leads and runs it."""
        if self.coordinator is None:
            return None
        return self.coordinator.machine.state_of(run_id)

    def _reaped(self) -> None:
        """Attempts of stopped processes were recorded interrupted: apply them at once
        if leading."""
        if self.coordinator is not None:
            self.coordinator.machine.post_outcomes_due()

    def _run_cancelled(self, run_id: int) -> None:
        """The machine cancelled a run: this process's workers stop its attempts at
        once (other processes learn it from storage); those handed over or claimed and
        not started never start (they see the run cancelled), and no lease of the run
        is renewed any more."""
        if self.claimer is not None:
            self.claimer.cancel_run(run_id)
        if self.consumer is not None:
            self.consumer.cancel_run(run_id)

    def _attempts_written(self) -> None:
        """The machine wrote ready attempts: this process's workers look at once."""
        if self.claimer is not None:
            self.claimer.wake()

    # -- scheduling ----------------------------------------------------------------------

    async def _lead(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Stand for the leadership; while holding it, schedule. Stand again when it
        is lost (the connection dropped) or scheduling failed on a storage error.

        Started once this process schedules or stands by, so that a single process
        schedules from the moment ``serve`` reports it started."""
        reported = False
        worker_id = self.settings.worker_id

        def ready() -> None:
            nonlocal reported
            if not reported:
                reported = True
                task_status.started()

        while True:
            try:
                async with self.storage.leadership(on_standby=ready) as leader:
                    logger.info("%s now schedules", worker_id)
                    await self._schedule(leader, ready)
                logger.warning("%s lost the leadership; standing again", worker_id)
            except Exception as exc:
                logger.error("scheduling stopped on an error; standing again: %s", _describe(exc))
            ready()
            await anyio.sleep(LEADERSHIP_RETRY)

    async def _schedule(self, leader: Leadership, ready: Callable[[], None]) -> None:
        coordinator = self.coordinator = Coordinator(
            settings=self.settings,
            queue=None,
            shared=True,
            on_attempts_written=self._attempts_written,
            on_run_cancelled=self._run_cancelled,
            local=self.claimer,
        )
        machine, storage = coordinator.machine, self.storage
        storage.add_notice_callback("outcomes", machine.post_outcomes_due)
        try:
            async with anyio.create_task_group() as tg:
                await coordinator.start(tg)
                tg.start_soon(self._poll_outcomes, coordinator)
                ready()
                await leader.hold()
                tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # Stopping: let the workers report their interrupted attempts, then record
            # them while still the leader.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                await self._executed.wait()
                await coordinator.flush()
            raise
        finally:
            storage.remove_notice_callback("outcomes", machine.post_outcomes_due)
            self.coordinator = None

    async def _poll_outcomes(self, coordinator: Coordinator) -> None:
        """The slow fallback for lost ``outcomes`` notices."""
        while True:
            await anyio.sleep(self.storage.poll_interval.total_seconds())
            coordinator.machine.post_outcomes_due()

    # -- the Engine interface ------------------------------------------------------------

    def admit(self, runs: Iterable[DagRun]) -> None:
        if self.coordinator is not None:
            self.coordinator.admit(runs)

    async def queue_run(self, new: NewRun) -> DagRun:
        """While leading, as one process does; else write the run for the leader,
        which a notice of the write tells."""
        if self.coordinator is not None:
            return await self.coordinator.queue_run(new)
        return await create_run(self.storage, new)

    def set_paused(self, dag_id: str, paused: bool, resume_after: datetime | None) -> None:
        if self.coordinator is not None:
            self.coordinator.watcher.set_paused(dag_id, paused, resume_after)

    async def wait_for_run(self, run_id: int, seconds: float | None) -> DagRun:
        """Wait for a run that any process may be running, looking again when it may
        have finished: told by this process's state machine while it leads (after the
        commit that finished the run, which it hands over without reading storage when
        it holds the run), else on each ``finished`` notice; and every
        ``poll_interval`` in any case."""
        if seconds is None:
            return await self._wait_for_run(run_id)
        with anyio.fail_after(seconds):
            return await self._wait_for_run(run_id)

    async def _wait_for_run(self, run_id: int) -> DagRun:
        storage = self.storage
        poll = storage.poll_interval.total_seconds()
        while True:
            coordinator = self.coordinator
            if coordinator is not None and coordinator.machine.holds(run_id):
                watch = coordinator.machine.watch(run_id)
                try:
                    with anyio.move_on_after(poll):  # the leadership may be lost meanwhile
                        await watch.event.wait()
                finally:
                    coordinator.machine.unwatch(run_id, watch)
                if watch.run is not None:
                    return watch.run
                if watch.event.is_set():  # let go unfinished: storage says what it is
                    coordinator = None
                else:
                    continue
            machine = coordinator.machine if coordinator is not None else None
            wake = machine.watch(run_id) if machine is not None else None
            notice = anyio.Event()
            if machine is None:
                storage.add_notice_callback("finished", notice.set)
            try:
                run = await storage.get_run(run_id)
                if run is None:
                    raise RunNotFound(f"no run with id {run_id}")
                if run.status.finished:
                    return run
                with anyio.move_on_after(poll):
                    await (notice if wake is None else wake.event).wait()
            finally:
                if machine is not None and wake is not None:
                    machine.unwatch(run_id, wake)
                else:
                    storage.remove_notice_callback("finished", notice.set)
            if wake is not None and wake.run is not None:
                return wake.run

    async def flush_logs(self) -> None:
        if self.reporter is not None and self.reporter.pending:
            await self.reporter.flush()

    async def cancel_run(self, run_id: int, note: str) -> None:
        if self.coordinator is not None:
            await self.coordinator.cancel(run_id, note)
        # else: the leader learns of it from the notice of the cancel's commit

    def statistics(self) -> Statistics:
        """``queued_tasks`` adds the ready attempts left in storage at this process's
        last claim (or those the state machine keeps for it); the run and commit
        counters count only while it leads."""
        claimable = self.claimer.waiting if self.claimer is not None else 0
        if self.hands_over:
            claimable = 0  # the state machine's backlog counts them
        return statistics(self.coordinator, self.consumer, claimable)


async def keep_leases(
    storage: SharedStorage,
    worker_id: str,
    role: str,
    clock: Clock,
    dag_ids: Collection[str],
    held: Callable[[], Collection[tuple[int, str, int]]],
) -> None:
    """Renew, every half lease, this process's ``workers`` row (registered when it
    started) and the leases of the attempts it runs."""
    half = storage.lease.total_seconds() / 2
    retry = Backoff()
    while True:
        await anyio.sleep(half)
        while True:
            try:
                await storage.register_worker(worker_id, role, clock.now(), dag_ids)
                await storage.renew_leases(worker_id, held())
                break
            except StorageError as exc:
                logger.warning("cannot renew leases: %s; retrying in %.1f s", exc, retry.delay)
                await retry.sleep()
        retry.reset()


async def reap(storage: SharedStorage, on_reaped: Callable[[], None]) -> None:
    """Give up the attempts of processes that stopped renewing as soon as their lease
    runs out, so a killed process's attempts (and pool slots) come back within one
    lease of its last renewal; ``on_reaped`` is called when there were some (the leader
    is told by a notice, unless it is this process).

    It sleeps until the earliest lease runs out (a renewal meanwhile only makes it look
    again), or a whole lease when no attempt holds one: a lease taken meanwhile runs
    out no sooner."""
    lease = storage.lease.total_seconds()
    while True:
        wait = lease / 2  # after a storage error
        try:
            reaped = await storage.reap()
            for tr in reaped:
                logger.warning(
                    "run %s task %s attempt %d: %s; it runs again",
                    tr.run_id,
                    tr.task_id,
                    tr.attempt,
                    tr.error,
                )
            if reaped:
                on_reaped()
            due = await storage.lease_due()
            wait = lease if due is None else max(due.total_seconds() + REAP_LAG, REAP_LAG)
        except StorageError as exc:
            logger.warning("cannot look for abandoned attempts: %s", exc)
        await anyio.sleep(wait)


async def _follow_cancels(
    storage: SharedStorage,
    consumer: Consumer,
    claimer: Claimer,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Stop the attempts this process runs for runs cancelled elsewhere, and never start
    those it claimed but has not started: a cancelled run is a finished one, so each
    ``finished`` notice (and the slow poll) looks at the runs this process has attempts
    of."""
    wake = anyio.Event()

    def notice() -> None:
        wake.set()

    storage.add_notice_callback("finished", notice)
    task_status.started()
    try:
        while True:
            with anyio.move_on_after(storage.poll_interval.total_seconds()):
                await wake.wait()
            wake = anyio.Event()
            for run_id in claimer.claimed_runs().union(consumer.live_runs()):
                try:
                    run = await storage.get_run(run_id)
                except PpacerError as exc:
                    logger.warning("cannot look for cancelled runs: %s", exc)
                    break
                if run is not None and run.status is DagRunStatus.cancelled:
                    claimer.cancel_run(run_id)
                    consumer.cancel_run(run_id)
    finally:
        storage.remove_notice_callback("finished", notice)


def _describe(exc: BaseException) -> str:
    """The messages of an error, or of every error in a group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
