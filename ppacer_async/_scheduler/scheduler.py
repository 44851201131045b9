"""The public ``Scheduler``: owns the task group in which the watcher, the state
machine, the task-queue consumer and the alerter cooperate.

On a shared storage (PostgreSQL) several processes serve the same DAGs: each one with
role ``all`` or ``scheduler`` stands for the leadership, and the one holding it runs
the watcher and the state machine; each one with role ``all`` or ``worker`` claims and
runs attempts (see ``shared.py``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, get_args

import anyio
import anyio.abc

from .. import operations
from .._dag import DAG
from .._enums import DagRunStatus
from .._exceptions import DagNotFound, InvalidOperation, PpacerError, RunNotFound
from .._structures import Alert, Changes, DagRun, LogRecord, Statistics, TaskRun
from ..abc import Clock, Leadership, Notifier, SharedStorage, Storage
from ..clock import SystemClock
from ..notify import LogNotifier
from ..storage import DEFAULT_URL, from_url
from .alerts import Alerter
from .consumer import Consumer, Item
from .machine import StateMachine
from .queue import ReadyQueue
from .shared import Claimer, Reporter, keep_leases, reap
from .state import RunState
from .watcher import Watcher

logger = logging.getLogger("ppacer_async.scheduler")

#: How long a stopping scheduler may spend saving in-flight outcomes.
SHUTDOWN_BOUND = 10.0

#: What a serving process does on a shared storage: ``all`` schedules (when it holds
#: the leadership) and runs tasks, ``scheduler`` only schedules, ``worker`` only runs.
Role = Literal["all", "scheduler", "worker"]

#: Pause between two attempts at the leadership after losing it to an error.
LEADERSHIP_RETRY = 1.0


class Scheduler:
    """Runs DAGs on their schedules and on demand, persisting every state change.

    :param dags: the DAGs to serve (ids must be unique).
    :param storage: a ``Storage`` or a URL (``memory://``, ``sqlite:///path.db``,
        ``postgresql://...``); default ``sqlite:///ppacer.db``.
    :param max_concurrent_tasks: task attempts executing at once (worker coroutines).
    :param max_threads: sync tasks running in threads at once.
    :param queue_size: ready attempts waiting for a worker before the state machine waits.
    :param notifier: receives failure and retry alerts; default ``LogNotifier()``.
    :param clock: the source of "now"; inject a ``FakeClock`` in tests.
    :param role: on a storage several processes share (PostgreSQL): ``"all"`` both
        schedules and runs tasks, ``"scheduler"`` only schedules, ``"worker"`` only runs
        tasks. One process at a time schedules; the others stand by.
    """

    def __init__(
        self,
        dags: Iterable[DAG],
        *,
        storage: Storage | str | None = None,
        max_concurrent_tasks: int = 100,
        max_threads: int = 40,
        queue_size: int = 1000,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        role: Role = "all",
    ) -> None:
        if isinstance(dags, DAG):
            dags = [dags]
        self._dags: dict[str, DAG] = {}
        for dag in dags:
            if not isinstance(dag, DAG):
                raise TypeError(f"Scheduler takes DAG objects, got {dag!r}")
            if dag.dag_id in self._dags and self._dags[dag.dag_id] is not dag:
                raise PpacerError(
                    f"two different DAGs have the id {dag.dag_id!r}; DAG ids must be unique"
                )
            self._dags[dag.dag_id] = dag
        for name, value in (
            ("max_concurrent_tasks", max_concurrent_tasks),
            ("max_threads", max_threads),
            ("queue_size", queue_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if isinstance(storage, str) or storage is None:
            storage = from_url(storage or DEFAULT_URL)
        self.storage: Storage = storage
        if role not in get_args(Role):
            raise ValueError(f"role must be 'all', 'scheduler' or 'worker', got {role!r}")
        if role != "all" and not isinstance(storage, SharedStorage):
            raise ValueError(
                f"role={role!r} needs a storage that several processes share "
                f"(PostgreSQL); {type(storage).__name__} is served by one process that "
                "both schedules and runs tasks (role='all')"
            )
        self.role: Role = role
        self.max_concurrent_tasks = max_concurrent_tasks
        self.max_threads = max_threads
        self.queue_size = queue_size
        self.notifier: Notifier = notifier or LogNotifier()
        self.clock: Clock = clock or SystemClock()
        self._versions: dict[str, int] = {}
        self._machine: StateMachine | None = None
        self._consumer: Consumer | None = None
        self._watcher: Watcher | None = None
        self._alerter: Alerter | None = None
        self._scope: anyio.CancelScope | None = None
        self._serving = False
        self._background: anyio.abc.TaskGroup | None = None
        self._reporter: Reporter | None = None
        self._claimer: Claimer | None = None
        self._executed: anyio.Event | None = None
        self._commit_listeners: list[Callable[[Changes, float], None]] = []
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def dags(self) -> Mapping[str, DAG]:
        return dict(self._dags)

    @property
    def serving(self) -> bool:
        """Whether the scheduler is serving now (between start and stop)."""
        return self._scope is not None

    # -- lifecycle ---------------------------------------------------------------------

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled or :meth:`stop` is called.

        Opens the storage, records the DAG definitions, recovers the runs a previous
        process left active, then runs. On the way out, in-flight attempts are recorded
        ``interrupted`` (within ``SHUTDOWN_BOUND`` seconds) and the storage is closed.
        """
        if self._serving:
            raise InvalidOperation("this scheduler is already serving")
        self._serving = True
        storage = self.storage
        try:
            await storage.open()
            try:
                await storage.acquire_scheduler_lock()
                await self._sync_dags()
                await self._run(task_status)
            finally:
                with anyio.CancelScope(shield=True):
                    await storage.close()
        finally:
            self._serving = False
            self._machine = self._consumer = self._watcher = self._alerter = None
            self._reporter = self._claimer = None

    async def _sync_dags(self) -> None:
        now = self.clock.now()
        for dag in self._dags.values():
            definition = dag.definition()
            self._versions[dag.dag_id] = await self.storage.sync_dag(
                dag.dag_id, dag.definition_hash(definition), definition, now
            )

    async def _run(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        if isinstance(self.storage, SharedStorage):
            await self._run_shared(self.storage, task_status)
        else:
            await self._run_alone(task_status)

    def _leader_parts(self, queue: ReadyQueue[Item] | None) -> StateMachine:
        """Build the state machine, watcher and alerter (set on ``self``)."""
        self._alerter = Alerter()
        shared = queue is None
        machine = self._machine = StateMachine(
            storage=self.storage,
            clock=self.clock,
            dags=self._dags,
            queue=queue,
            on_retry=self._on_retry,
            on_alert=self._on_alert,
            on_run_finished=self._on_run_finished,
            shared=shared,
            on_ready=self._on_ready if shared else None,
            on_deadline=self._on_deadline,
            on_cancelled=self._on_cancelled,
        )
        machine.on_commit = self._committed
        self._watcher = Watcher(
            storage=self.storage,
            clock=self.clock,
            dags=self._dags,
            versions=self._versions,
            machine=machine,
        )
        return machine

    async def _run_alone(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        """One process does everything: attempts go from the machine to the workers
        through memory."""
        queue: ReadyQueue[Item] = ReadyQueue(self.queue_size)
        machine = self._leader_parts(queue)
        alerter, watcher = self._alerter, self._watcher
        assert alerter is not None and watcher is not None
        self._consumer = Consumer(
            sink=machine,
            queue=queue,
            clock=self.clock,
            workers=self.max_concurrent_tasks,
            max_threads=self.max_threads,
            notifier=self.notifier,
        )
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with anyio.create_task_group() as tg:
                    await tg.start(machine.run)
                    await tg.start(self._consumer.run)
                    await tg.start(alerter.run)
                    await tg.start(watcher.run)
                    await tg.start(self._follow_storage)
                    logger.info(
                        "serving %d DAGs: %s", len(self._dags), ", ".join(self._dags) or "-"
                    )
                    task_status.started()
        finally:
            self._scope = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                await machine.flush()
                await alerter.drain()

    async def _run_shared(
        self, storage: SharedStorage, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Share the work with other processes through ``storage``."""
        executes = self.role in ("all", "worker")
        self._executed = anyio.Event()
        if not executes:
            self._executed.set()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with anyio.create_task_group() as tg:
                    await tg.start(storage.listen)
                    await storage.register_worker(self.worker_id, self.role, self.clock.now())
                    tg.start_soon(keep_leases, storage, self.worker_id, self.role, self.clock)
                    tg.start_soon(reap, storage, self._on_reaped)
                    if executes:
                        await tg.start(self._execute, storage)
                    if self.role in ("all", "scheduler"):
                        await tg.start(self._lead, storage)
                    logger.info(
                        "serving %d DAGs as %s (role %s): %s",
                        len(self._dags),
                        self.worker_id,
                        self.role,
                        ", ".join(self._dags) or "-",
                    )
                    task_status.started()
        finally:
            self._scope = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                try:
                    await storage.unregister_worker(self.worker_id)
                except PpacerError as exc:
                    logger.warning("could not unregister %s: %s", self.worker_id, exc)

    async def _execute(
        self, storage: SharedStorage, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Claim and run attempts; report what they did."""
        workers = self.max_concurrent_tasks
        queue: ReadyQueue[Item] = ReadyQueue(max(self.queue_size, workers))
        reporter = self._reporter = Reporter(
            storage=storage,
            worker_id=self.worker_id,
            leading=lambda: self._machine is not None,
            on_reported=self._on_reported,
        )
        consumer = self._consumer = Consumer(
            sink=reporter,
            queue=queue,
            clock=self.clock,
            workers=workers,
            max_threads=self.max_threads,
            notifier=self.notifier,
        )
        self._claimer = Claimer(
            storage=storage,
            worker_id=self.worker_id,
            dags=self._dags,
            consumer=consumer,
            queue=queue,
            clock=self.clock,
            reporter=reporter,
            local_run=self._local_run,
        )
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(reporter.run)
                await tg.start(consumer.run)
                await tg.start(self._claimer.run)
                await tg.start(_follow_cancels, storage, consumer)
                task_status.started()
        finally:
            # Interrupted attempts are reported so that the leader (maybe this
            # process, waiting for it) records them at once.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                await reporter.flush()
            assert self._executed is not None
            self._executed.set()

    async def _lead(
        self, storage: SharedStorage, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Stand for the leadership; while holding it, schedule. Stand again when it
        is lost (the connection dropped) or scheduling failed on a storage error.

        Started once this process schedules or stands by, so that a single process
        schedules from the moment ``serve`` reports it started."""
        reported = False

        def ready() -> None:
            nonlocal reported
            if not reported:
                reported = True
                task_status.started()

        while True:
            try:
                async with storage.leadership(on_standby=ready) as leader:
                    logger.info("%s now schedules", self.worker_id)
                    await self._schedule(leader, ready)
                logger.warning("%s lost the leadership; standing again", self.worker_id)
            except Exception as exc:
                logger.error("scheduling stopped on an error; standing again: %s", _describe(exc))
            ready()
            await anyio.sleep(LEADERSHIP_RETRY)

    async def _schedule(self, leader: Leadership, ready: Callable[[], None]) -> None:
        machine = self._leader_parts(None)
        alerter, watcher = self._alerter, self._watcher
        assert alerter is not None and watcher is not None
        storage = self.storage
        assert isinstance(storage, SharedStorage)
        storage.add_notice_callback("outcomes", machine.post_outcomes_due)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(machine.run)
                await tg.start(alerter.run)
                await tg.start(watcher.run)
                await tg.start(self._follow_storage)
                tg.start_soon(self._poll_outcomes, machine, storage)
                ready()
                await leader.hold()
                tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # Stopping: let the workers report their interrupted attempts, then record
            # them while still the leader.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                if self._executed is not None:
                    await self._executed.wait()
                await machine.flush()
                await alerter.drain()
            raise
        finally:
            storage.remove_notice_callback("outcomes", machine.post_outcomes_due)
            self._machine = self._watcher = self._alerter = None

    @staticmethod
    async def _poll_outcomes(machine: StateMachine, storage: SharedStorage) -> None:
        """The slow fallback for lost ``outcomes`` notices."""
        while True:
            await anyio.sleep(storage.poll_interval.total_seconds())
            machine.post_outcomes_due()

    async def _follow_storage(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Pick up what other processes (the command line) wrote: queued runs and
        pauses. Event-driven where the storage can notify, polled where it cannot."""
        task_status.started()
        while True:
            await self.storage.wait_for_external_change()
            await self._sync_with_storage()

    async def _sync_with_storage(self) -> None:
        machine, watcher = self._machine, self._watcher
        assert machine is not None and watcher is not None
        for info in await self.storage.list_dags():
            if info.dag_id in self._dags:
                watcher.set_paused(info.dag_id, info.paused, info.resume_after)
        active = await self.storage.active_runs()
        for run in active:
            if (
                run.status is DagRunStatus.queued
                and run.dag_id in self._dags
                and run.id not in machine.runs
            ):
                machine.post_run(run)
        # A run this process holds that storage no longer lists as active was
        # cancelled by another process (the command line, the web app).
        listed = {run.id for run in active}
        for run_id, state in list(machine.runs.items()):
            if run_id not in listed and not state.finished:
                found = await self.storage.get_run(run_id)
                if found is not None and found.status is DagRunStatus.cancelled:
                    machine.post_cancel(run_id, found.note or "cancelled", state)

    def stop(self) -> None:
        """Ask a serving scheduler to stop; ``serve()`` then returns."""
        if self._scope is not None:
            self._scope.cancel()

    async def __aenter__(self) -> Scheduler:
        self._background_cm = anyio.create_task_group()
        tg = await self._background_cm.__aenter__()
        try:
            await tg.start(self.serve)
        except BaseException as exc:
            await self._background_cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.stop()
        return await self._background_cm.__aexit__(exc_type, exc, tb)

    # -- callbacks from the state machine ------------------------------------------------

    def _on_retry(self, due: Any, state: RunState, i: int, attempt: int, k: int) -> None:
        assert self._watcher is not None
        self._watcher.add_retry(due, state, i, attempt, k)

    def _on_deadline(self, due: Any, state: RunState) -> None:
        assert self._watcher is not None
        self._watcher.add_deadline(due, state)

    def _on_cancelled(self, state: RunState) -> None:
        """A run was cancelled: stop its attempts executing in this process (other
        processes learn it from storage)."""
        if self._consumer is not None:
            self._consumer.cancel_run(state.run.id)

    def _on_alert(self, state: RunState, i: int, alert: Alert) -> None:
        assert self._alerter is not None
        task = state.graph.tasks[i]
        self._alerter.post(task.notifier or self.notifier, alert)

    def _on_run_finished(self, run: DagRun) -> None:
        if self._watcher is not None:
            self._watcher.wake()

    def _on_ready(self) -> None:
        """The machine wrote ready attempts: this process's workers look at once."""
        if self._claimer is not None:
            self._claimer.wake()

    def _on_reported(self, outcomes: list[TaskRun]) -> None:
        """This process's workers reported outcomes: apply them at once if leading
        (if not, the leader was notified)."""
        if self._machine is not None:
            self._machine.post_reported(outcomes)

    def _on_reaped(self) -> None:
        """Attempts of stopped processes were recorded interrupted: apply them at once
        if leading."""
        if self._machine is not None:
            self._machine.post_outcomes_due()

    def _local_run(self, run_id: int) -> RunState | None:
        """The state of a run, if this process leads and runs it."""
        return self._machine.runs.get(run_id) if self._machine is not None else None

    # -- the public API ----------------------------------------------------------------

    def _require_serving(self) -> None:
        if self._scope is None:
            raise InvalidOperation(
                "the scheduler is not serving; use `async with scheduler:` or run "
                "`await scheduler.serve()` in a task group first"
            )

    def _admit(self, runs: Iterable[DagRun]) -> None:
        """Hand queued runs to the state machine, if it runs in this process (on a
        shared storage, the leader learns of them from a notice otherwise)."""
        if self._machine is not None:
            for run in runs:
                self._machine.post_run(run)

    def _dag(self, dag_id: str) -> DAG:
        try:
            return self._dags[dag_id]
        except KeyError:
            known = ", ".join(sorted(self._dags)) or "none"
            raise DagNotFound(f"no DAG {dag_id!r} is served here (known: {known})") from None

    async def trigger(self, dag_id: str, params: Mapping[str, Any] | None = None) -> DagRun:
        """Queue a manual run of a DAG now; ``params`` override the DAG's defaults.

        :raises DagNotFound: no such DAG is served.
        """
        self._require_serving()
        dag = self._dag(dag_id)
        run = await operations.queue_manual_run(
            self.storage, dag_id, self._versions[dag_id], dag.params, params, self.clock.now()
        )
        self._admit([run])
        return run

    async def wait_for_run(self, run_id: int, timeout: float | timedelta | None = None) -> DagRun:
        """Wait until a run succeeds or fails and return it.

        :raises RunNotFound: no such run.
        :raises TimeoutError: ``timeout`` passed first.
        """
        self._require_serving()
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if isinstance(self.storage, SharedStorage):
            with anyio.fail_after(seconds):
                return await self._wait_shared(self.storage, run_id)
        machine = self._machine
        assert machine is not None
        event = anyio.Event()
        machine.waiters.setdefault(run_id, []).append(event)
        try:
            with anyio.fail_after(seconds):
                run = await self.storage.get_run(run_id)
                if run is None:
                    raise RunNotFound(f"no run with id {run_id}")
                if run.status.finished and run_id not in machine.runs:
                    return run
                await event.wait()
        finally:
            _discard_waiter(machine, run_id, event)
        found = await self.storage.get_run(run_id)
        assert found is not None
        return found

    async def _wait_shared(self, storage: SharedStorage, run_id: int) -> DagRun:
        """Wait for a run that any process may be running, looking again when it may
        have finished: told by this process's state machine while it leads (after the
        commit that finished the run), else on each ``finished`` notice; and every
        ``poll_interval`` in any case."""
        while True:
            wake = anyio.Event()
            machine = self._machine
            if machine is not None:
                machine.waiters.setdefault(run_id, []).append(wake)
            else:
                storage.add_notice_callback("finished", wake.set)
            try:
                run = await storage.get_run(run_id)
                if run is None:
                    raise RunNotFound(f"no run with id {run_id}")
                if run.status.finished:
                    return run
                with anyio.move_on_after(storage.poll_interval.total_seconds()):
                    await wake.wait()
            finally:
                if machine is not None:
                    _discard_waiter(machine, run_id, wake)
                else:
                    storage.remove_notice_callback("finished", wake.set)

    async def restart_run(self, run_id: int) -> DagRun:
        """Run again what did not succeed in a failed run (new attempt numbers).

        The run is queued again before this returns.
        :raises RunNotFound: no such run. :raises InvalidOperation: it is not failed.
        """
        self._require_serving()
        run = await operations.restart(self.storage, run_id)
        self._admit([run])
        return run

    async def cancel_run(self, run_id: int, note: str | None = None) -> DagRun:
        """Cancel a queued or running run: its executing attempts are cancelled (a
        thread task sees ``ctx.cancelled``), tasks not started never start, and the
        run ends ``cancelled``. A cancelled run can be restarted.

        :raises RunNotFound: no such run. :raises InvalidOperation: it has finished.
        """
        self._require_serving()
        run = await operations.cancel(self.storage, run_id, self.clock.now(), note)
        machine = self._machine
        if machine is not None and run_id in machine.runs:
            event = anyio.Event()
            machine.waiters.setdefault(run_id, []).append(event)
            try:
                machine.post_cancel(run_id, run.note or "cancelled")
                with anyio.fail_after(SHUTDOWN_BOUND):
                    await event.wait()
            finally:
                _discard_waiter(machine, run_id, event)
            found = await self.storage.get_run(run_id)
            assert found is not None
            return found
        return run

    async def pause(self, dag_id: str) -> None:
        """Stop creating scheduled runs of a DAG (manual triggers still run)."""
        self._require_serving()
        self._dag(dag_id)
        await operations.pause(self.storage, dag_id)
        if self._watcher is not None:
            self._watcher.set_paused(dag_id, True, None)

    async def unpause(self, dag_id: str, from_: Literal["now", "last"] = "now") -> None:
        """Resume a paused DAG's schedule.

        :param from_: ``"now"`` skips the points missed while paused (recorded as
            skipped); ``"last"`` follows the DAG's catch-up rule from its last point.
        """
        self._require_serving()
        self._dag(dag_id)
        now = self.clock.now()
        await operations.unpause(self.storage, dag_id, from_, now)
        if self._watcher is not None:
            self._watcher.set_paused(dag_id, False, now if from_ == "now" else None)

    async def backfill(self, dag_id: str, start: datetime, end: datetime) -> list[DagRun]:
        """Queue runs for the schedule points in ``[start, end]`` that have none; they
        start oldest first as ``max_active_runs`` allows."""
        self._require_serving()
        dag = self._dag(dag_id)
        if dag.schedule is None:
            raise InvalidOperation(f"DAG {dag_id!r} has no schedule to backfill")
        runs = await operations.backfill(
            self.storage, dag_id, start, end, self.clock.now(), schedule=dag.schedule
        )
        self._admit(runs)
        return runs

    async def get_run(self, run_id: int) -> DagRun:
        """:raises RunNotFound: no such run."""
        self._require_serving()
        run = await self.storage.get_run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id}")
        return run

    async def list_runs(
        self, dag_id: str | None = None, limit: int = 50, status: DagRunStatus | None = None
    ) -> list[DagRun]:
        """Runs, newest first."""
        self._require_serving()
        return await self.storage.list_runs(dag_id=dag_id, status=status, limit=limit)

    async def task_runs(self, run_id: int) -> list[TaskRun]:
        """Every attempt of every task of a run."""
        self._require_serving()
        return await self.storage.task_runs(run_id)

    async def logs(self, run_id: int, task_id: str | None = None) -> list[LogRecord]:
        """Stored task logs of a run (optionally of one task), in the order written."""
        self._require_serving()
        if self._machine is not None and self._machine.logs:
            self._machine.wake()
        if self._reporter is not None and self._reporter.pending:
            await self._reporter.flush()
        return await self.storage.logs(run_id, task_id)

    def statistics(self) -> Statistics:
        """A snapshot of this process's counters. On a shared storage, ``queued_tasks``
        adds the ready attempts left in storage at this process's last claim, and the
        run and commit counters count only while this process is the leader."""
        machine, consumer, claimer = self._machine, self._consumer, self._claimer
        queued = len(consumer.queue) if consumer else 0
        if machine is not None:  # ready attempts waiting for room in the queue
            queued += machine.backlogged
        if claimer is not None:  # ready attempts in the shared storage, at the last claim
            queued += claimer.waiting
        return Statistics(
            active_runs=len(machine.runs) if machine else 0,
            queued_tasks=queued,
            running_tasks=consumer.running if consumer else 0,
            running_threads=consumer.running_threads if consumer else 0,
            tasks_finished=machine.tasks_finished if machine else 0,
            runs_finished=machine.runs_finished if machine else 0,
            commits=machine.commits if machine else 0,
            committed_rows=machine.committed_rows if machine else 0,
        )

    def _add_commit_listener(self, listener: Callable[[Changes, float], None]) -> None:
        """Call ``listener(changes, seconds)`` after each commit of this process's state
        machine (on the event loop, so it must not block). The web app's live updates
        and metrics use it."""
        self._commit_listeners.append(listener)

    def _remove_commit_listener(self, listener: Callable[[Changes, float], None]) -> None:
        if listener in self._commit_listeners:
            self._commit_listeners.remove(listener)

    def _committed(self, changes: Changes, seconds: float) -> None:
        for listener in self._commit_listeners:
            try:
                listener(changes, seconds)
            except Exception:
                logger.exception("a commit listener failed")

    def __repr__(self) -> str:
        return f"<Scheduler dags={list(self._dags)} storage={self.storage!r}>"


async def _follow_cancels(
    storage: SharedStorage,
    consumer: Consumer,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Stop the attempts this process runs for runs cancelled elsewhere: a cancelled run
    is a finished one, so each ``finished`` notice (and the slow poll) looks at the
    runs this process has attempts of."""
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
            for run_id in consumer.live_runs():
                try:
                    run = await storage.get_run(run_id)
                except PpacerError as exc:
                    logger.warning("cannot look for cancelled runs: %s", exc)
                    break
                if run is not None and run.status is DagRunStatus.cancelled:
                    consumer.cancel_run(run_id)
    finally:
        storage.remove_notice_callback("finished", notice)


def _discard_waiter(machine: StateMachine, run_id: int, event: anyio.Event) -> None:
    waiters = machine.waiters.get(run_id)
    if waiters and event in waiters:
        waiters.remove(event)
        if not waiters:
            del machine.waiters[run_id]


def _describe(exc: BaseException) -> str:
    """The messages of an error, or of every error in a group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
