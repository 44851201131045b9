"""What the public ``Scheduler`` talks to while it serves: one ``Engine``.

``LocalEngine`` (``local.py``) runs everything in one process; ``ClusterEngine``
(``cluster.py``) shares the work with other processes through a shared storage. Both
schedule with a ``Coordinator``: the state machine, the watcher and the alerter,
running together in the process that schedules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import anyio.abc
import attrs

from .._dag import DAG
from .._enums import DagRunStatus
from .._exceptions import PpacerError, RunNotFound, StorageError
from .._structures import Changes, DagRun, NewRun, PoolUsage, Statistics, TaskRun
from ..abc import Clock, Notifier, Storage
from .alerts import Alerter, alert_for
from .machine import LocalWorkers, StateMachine, create_run
from .pools import Pools
from .retention import Retention
from .watcher import Watcher

if TYPE_CHECKING:
    from .consumer import Consumer, Item
    from .queue import ReadyQueue
    from .state import AlertKind, RunState

logger = logging.getLogger("ppacer_async.scheduler")

#: How long a stopping scheduler may spend saving in-flight outcomes.
SHUTDOWN_BOUND = 10.0

#: The most often the pools' counts are recorded in storage (seconds).
RECORD_POOLS_EVERY = 0.5

#: What a serving process does on a shared storage: ``all`` schedules (when it holds
#: the leadership) and runs tasks, ``scheduler`` only schedules, ``worker`` only runs.
Role = Literal["all", "scheduler", "worker"]


@attrs.frozen(kw_only=True)
class Settings:
    """What an engine is built from: the ``Scheduler``'s arguments, checked, and what
    ``serve`` learned from storage (the DAG versions)."""

    dags: dict[str, DAG]
    versions: dict[str, int]
    storage: Storage
    clock: Clock
    notifier: Notifier
    max_concurrent_tasks: int
    max_threads: int
    queue_size: int
    role: Role
    worker_id: str
    #: the named pools and their slots
    pools: dict[str, int] = attrs.field(factory=dict)
    retention: timedelta | None = None
    #: Seconds without a turn of the event loop before it is reported (None: never).
    loop_block_warning: float | None = 1.0
    #: False: the watcher creates no scheduled runs (``Scheduler.run_once``).
    schedules: bool = True
    #: told of each commit of the state machine (the changes, the seconds it took)
    on_commit: Callable[[Changes, float], None] | None = None


class Engine(Protocol):
    """The running parts of one serving ``Scheduler``, seen from its public API."""

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run until cancelled; on the way out, save in-flight outcomes (bounded)."""

    async def queue_run(self, new: NewRun) -> DagRun:
        """Write a new queued run (a trigger) and schedule it if this process
        schedules; return it once it is stored."""

    def admit(self, runs: Iterable[DagRun]) -> None:
        """Runs were queued in storage here (restart, backfill): schedule them now if
        this process schedules (else the scheduling process learns of them from
        storage)."""

    def set_paused(self, dag_id: str, paused: bool, resume_after: datetime | None) -> None:
        """Follow a pause or an unpause written here."""

    async def wait_for_run(self, run_id: int, seconds: float | None) -> DagRun:
        """Wait until the run succeeds or fails (``TimeoutError`` after ``seconds``).

        :raises RunNotFound: no such run.
        """

    async def flush_logs(self) -> None:
        """Have the task logs written so far reach storage."""

    async def cancel_run(self, run_id: int, note: str) -> None:
        """A run was recorded cancelled here: if this process schedules it, stop it now
        and return once its live attempts are recorded cancelled."""

    def statistics(self) -> Statistics:
        """A snapshot of this process's counters."""


@attrs.define(eq=False, kw_only=True)
class Coordinator:
    """The state machine, the watcher and the alerter of the process that schedules.

    It is the machine's ``Followers``: retries go to the watcher's timers, alerts to
    the alerter, a finished run wakes the watcher (its slot is free).

    :param queue: where the machine puts ready attempts (one process); ``None`` on a
        shared storage, where they are written for any process to claim and
        ``on_attempts_written`` is called.
    """

    settings: Settings
    queue: ReadyQueue[Item] | None
    shared: bool = False
    on_attempts_written: Callable[[], None] | None = None
    #: a run was cancelled: stop its attempts executing in this process
    on_run_cancelled: Callable[[int], None] | None = None
    #: shared storage: this process's workers, handed the attempts claimed for them
    local: LocalWorkers | None = None
    machine: StateMachine = attrs.field(init=False)
    watcher: Watcher = attrs.field(init=False)
    alerter: Alerter = attrs.field(init=False)
    retention: Retention | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        s = self.settings
        self.alerter = Alerter(s.notifier)
        pools = None
        if s.pools or any(
            dag.max_active_tasks is not None or dag.graph.pooled for dag in s.dags.values()
        ):
            pools = Pools(s.dags, s.pools)
        self.machine = StateMachine(
            pools=pools,
            storage=s.storage,
            clock=s.clock,
            dags=s.dags,
            queue=self.queue,
            followers=self,
            shared=self.shared,
            local=self.local,
        )
        self.machine.on_commit = s.on_commit
        self.watcher = Watcher(
            storage=s.storage,
            clock=s.clock,
            dags=s.dags,
            versions=s.versions,
            machine=self.machine,
            schedules=s.schedules,
        )
        if s.retention is not None:
            self.retention = Retention(storage=s.storage, clock=s.clock, keep=s.retention)

    async def start(self, tg: anyio.abc.TaskGroup, consumer: Consumer | None = None) -> None:
        """Start the parts in ``tg``, in order: the machine recovers the runs left
        active, then the workers (``consumer``, when they take attempts from the
        machine's queue) start on them, before the watcher creates new runs."""
        await tg.start(self.machine.run)
        if consumer is not None:
            await tg.start(consumer.run)
        await tg.start(self.alerter.run)
        await tg.start(self.watcher.run)
        await tg.start(self._follow_storage)
        if self.machine.pools is not None:
            tg.start_soon(self._record_pools, self.machine.pools)
        if self.retention is not None:
            tg.start_soon(self.retention.run)

    async def flush(self) -> None:
        """Commit what is left and send the alerts (on shutdown, under a bound)."""
        await self.machine.flush()
        await self.alerter.drain()

    # -- the machine's followers ---------------------------------------------------------

    def retry_at(
        self, due: datetime, state: RunState, i: int, attempt: int, map_index: int
    ) -> None:
        self.watcher.add_retry(due, state, i, attempt, map_index)

    def cancel_at(self, due: datetime, state: RunState) -> None:
        self.watcher.add_deadline(due, state)

    def run_cancelled(self, state: RunState) -> None:
        if self.on_run_cancelled is not None:
            self.on_run_cancelled(state.run.id)

    def alert(self, state: RunState, i: int, tr: TaskRun, kind: AlertKind) -> None:
        self.alerter.post(state.graph.tasks[i].notifier, alert_for(state.run, tr, kind))

    def run_finished(self, run: DagRun) -> None:
        self.watcher.slot_freed(run.dag_id)

    def attempts_written(self) -> None:
        if self.on_attempts_written is not None:
            self.on_attempts_written()

    # -- what the engines ask ------------------------------------------------------------

    def admit(self, runs: Iterable[DagRun]) -> None:
        for run in runs:
            self.machine.post_run(run)

    async def queue_run(self, new: NewRun) -> DagRun:
        """Write a new queued run and hand it to the machine.

        Where the storage writes new runs in a commit, the machine writes it in its
        next one, with whatever else it commits then (many triggers at once share one
        transaction), and this returns once that is committed. Else the run is
        written here in a transaction of its own.
        """
        storage, machine = self.settings.storage, self.machine
        if storage.creates_runs_in_commit and machine.accepting:
            request = machine.post_new_run(new)
            await request.done.wait()
            if request.error is not None:
                raise request.error
            assert request.run is not None
            return request.run
        run = await create_run(storage, new)
        machine.post_run(run)
        return run

    async def wait_for_run(self, run_id: int, seconds: float | None) -> DagRun:
        """Wait for a run, told by the machine after the commit that finished it."""
        if seconds is None:  # no cancel scope: W3 waits for a thousand runs at once
            return await self._wait_for_run(run_id)
        with anyio.fail_after(seconds):
            return await self._wait_for_run(run_id)

    async def _wait_for_run(self, run_id: int) -> DagRun:
        machine = self.machine
        if machine.holds(run_id):
            # Answered from memory: the machine hands over the run as it committed it.
            watch = machine.watch(run_id)
            try:
                await watch.event.wait()
            finally:
                machine.unwatch(run_id, watch)
            if watch.run is not None:
                return watch.run
        storage = self.settings.storage
        watch = machine.watch(run_id)
        try:
            run = await storage.get_run(run_id)
            if run is None:
                raise RunNotFound(f"no run with id {run_id}")
            if run.status.finished and not machine.holds(run_id):
                return run
            await watch.event.wait()
        finally:
            machine.unwatch(run_id, watch)
        if watch.run is not None:
            return watch.run
        found = await storage.get_run(run_id)
        assert found is not None
        return found

    async def cancel(self, run_id: int, note: str) -> None:
        """Cancel a run this machine holds (or is about to be handed), returning once the
        step that cancels it is committed (bounded)."""
        machine = self.machine
        if machine.state_of(run_id) is None:
            machine.post_cancel(run_id, note)  # if it is handed over, it never starts
            return
        watch = machine.watch(run_id)
        try:
            machine.post_cancel(run_id, note)
            with anyio.move_on_after(SHUTDOWN_BOUND):
                await watch.event.wait()
        finally:
            machine.unwatch(run_id, watch)

    async def _follow_storage(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Pick up what other processes (the command line) wrote: queued and cancelled
        runs, and pauses. Event-driven where the storage can notify, polled where it
        cannot."""
        task_status.started()
        storage = self.settings.storage
        while True:
            await storage.wait_for_external_change()
            await self._sync_with_storage()

    async def _record_pools(self, pools: Pools) -> None:
        """Keep the pools' counts in storage for ``ppacer-async pools``: at each
        change, at most every ``RECORD_POOLS_EVERY`` seconds."""
        storage, clock = self.settings.storage, self.settings.clock
        recorded: tuple[PoolUsage, ...] | None = None
        while True:
            usage = pools.usage()
            if usage != recorded:
                try:
                    await storage.save_pools(usage, clock.now())
                    recorded = usage
                except PpacerError as exc:
                    logger.warning("cannot record the pools' counts: %s", exc)
            await pools.wait_for_change()
            await anyio.sleep(RECORD_POOLS_EVERY)  # a rate limit: changes come in bursts

    async def _sync_with_storage(self) -> None:
        storage, dags = self.settings.storage, self.settings.dags
        machine, watcher = self.machine, self.watcher
        for dag_id, paused, resume_after in await storage.dag_pauses():
            if dag_id in dags:
                watcher.set_paused(dag_id, paused, resume_after)
        active = await storage.active_runs()
        for run in active:
            if (
                run.status is DagRunStatus.queued
                and run.dag_id in dags
                and machine.state_of(run.id) is None
            ):
                machine.post_run(run)
        # A run this process holds that storage no longer lists as active was
        # cancelled by another process (the command line, the web app).
        listed = {run.id for run in active}
        for run_id, state in list(machine.runs.items()):
            if run_id not in listed and not state.finished:
                found = await storage.get_run(run_id)
                if found is not None and found.status is DagRunStatus.cancelled:
                    machine.post_cancel(run_id, found.note or "cancelled", state)


async def keep_registered(settings: Settings) -> None:
    """Renew this process's record (the DAGs it serves) every third of the storage's
    lease, so that it counts as live while it serves and not long after it dies."""
    storage, every = settings.storage, settings.storage.lease.total_seconds() / 3
    while True:
        await anyio.sleep(every)
        try:
            await storage.register_worker(
                settings.worker_id, settings.role, settings.clock.now(), settings.dags
            )
        except StorageError as exc:
            logger.warning("cannot renew this process's record: %s", exc)


async def unregister(settings: Settings) -> None:
    """Forget this process's record as it stops (the caller shields and bounds this)."""
    try:
        await settings.storage.unregister_worker(settings.worker_id)
    except PpacerError as exc:
        logger.warning("could not unregister %s: %s", settings.worker_id, exc)


def statistics(
    coordinator: Coordinator | None, consumer: Consumer | None, claimable: int = 0
) -> Statistics:
    """The counters of the parts running in this process.

    :param claimable: ready attempts left in a shared storage at the last claim.
    """
    machine = coordinator.machine if coordinator is not None else None
    queued = consumer.queued_attempts() if consumer else 0
    if machine is not None:  # ready attempts waiting for room in the queue
        queued += machine.backlogged
    queued += claimable
    return Statistics(
        active_runs=len(machine.runs) if machine else 0,
        queued_tasks=queued,
        running_tasks=consumer.running if consumer else 0,
        running_threads=consumer.running_threads if consumer else 0,
        tasks_finished=machine.tasks_finished if machine else 0,
        runs_finished=machine.runs_finished if machine else 0,
        commits=machine.commits if machine else 0,
        committed_rows=machine.committed_rows if machine else 0,
        pools=machine.pools.usage() if machine and machine.pools else (),
    )
