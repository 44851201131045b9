"""The public ``Scheduler``: checks its arguments, opens the storage, and serves with
one engine: ``LocalEngine`` (``local.py``) when one process schedules alone,
``ClusterEngine`` (``cluster.py``) when several processes share a PostgreSQL storage.
Its public methods write through the operations layer and tell the engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, get_args

import anyio
import anyio.abc

from .. import operations
from .._dag import DAG
from .._enums import DagRunStatus
from .._exceptions import DagNotFound, InvalidOperation, PpacerError, RunNotFound
from .._structures import Changes, DagRun, LogRecord, Statistics, TaskRun
from ..abc import Clock, Notifier, SharedStorage, Storage
from ..clock import SystemClock
from ..notify import LogNotifier
from ..storage import DEFAULT_URL, from_url
from .cluster import ClusterEngine
from .engine import Engine, Role, Settings, statistics
from .local import LocalEngine
from .pools import check_pools

logger = logging.getLogger("ppacer_async.scheduler")

#: The shortest ``retention``: runs are kept at least this long after they finish.
MIN_RETENTION = timedelta(seconds=1)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _sole_error(
    group: BaseExceptionGroup[BaseException], prefer: BaseException | None = None
) -> BaseException | None:
    """The one exception a task group's error stands for, so that callers catch it as
    itself: ``prefer`` (what the body of ``async with scheduler:`` raised) when the group
    holds it, else the group's only exception besides cancellations; ``None`` when it
    holds several."""
    leaves = _leaves(group)
    if prefer is not None and any(leaf is prefer for leaf in leaves):
        return prefer
    cancelled = anyio.get_cancelled_exc_class()
    errors = [leaf for leaf in leaves if not isinstance(leaf, cancelled)]
    return errors[0] if len(errors) == 1 else None


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
    :param pools: named pools and their slots, e.g. ``{"warehouse": 4}``: a task with
        ``pool="warehouse"`` runs only while it holds ``pool_slots`` of them (on a
        shared storage, across every process together). A task naming a pool not
        given here is refused with ``UnknownPool``.
    :param retention: delete runs that finished longer ago than this, with their
        attempts, logs and schedule events, in small batches while serving (the
        process that schedules does it). ``None`` (the default) keeps everything.
    :param loop_block_warning: report a task that keeps the event loop from turning
        for longer than this (a blocking call in an ``async def``): a warning naming
        it, a log record on its attempt, and on PostgreSQL its leases kept alive
        meanwhile. ``None`` turns the watchdog thread off.
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
        pools: Mapping[str, int] | None = None,
        retention: timedelta | None = None,
        loop_block_warning: timedelta | None = timedelta(seconds=1),
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
        self.pools: dict[str, int] = {}
        for name, slots in (pools or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"pool names must be non-empty strings, got {name!r}")
            if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
                raise ValueError(
                    f"pool {name!r} must have a whole number >= 1 of slots, got {slots!r}"
                )
            self.pools[name] = slots
        check_pools(self._dags, self.pools)
        if retention is not None and (
            not isinstance(retention, timedelta) or retention < MIN_RETENTION
        ):
            raise ValueError(
                f"retention must be a timedelta of at least {MIN_RETENTION} (e.g. "
                f"timedelta(days=30)), or None to keep every run; got {retention!r}"
            )
        self.retention = retention
        if loop_block_warning is not None and (
            not isinstance(loop_block_warning, timedelta)
            or loop_block_warning < timedelta(milliseconds=10)
        ):
            raise ValueError(
                "loop_block_warning must be a timedelta of at least 10 ms (e.g. "
                f"timedelta(seconds=1)), or None to turn it off; got {loop_block_warning!r}"
            )
        self.loop_block_warning = loop_block_warning
        self.max_concurrent_tasks = max_concurrent_tasks
        self.max_threads = max_threads
        self.queue_size = queue_size
        self.notifier: Notifier = notifier or LogNotifier()
        self.clock: Clock = clock or SystemClock()
        self._versions: dict[str, int] = {}
        self._engine: Engine | None = None
        self._scope: anyio.CancelScope | None = None
        self._serving = False
        self._schedules = True
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
        ``interrupted`` (within ``engine.SHUTDOWN_BOUND`` seconds) and the storage is closed.
        """
        if self._serving:
            raise InvalidOperation("this scheduler is already serving")
        self._serving = True
        storage = self.storage
        try:
            check_pools(self._dags, self.pools)  # tasks may have been added since
            await storage.open()
            try:
                await storage.acquire_scheduler_lock()
                await self._sync_dags()
                sole: BaseException | None = None
                try:
                    await self._run(task_status)
                except BaseExceptionGroup as group:
                    sole = _sole_error(group)
                    if sole is None:
                        raise
                if sole is not None:
                    raise sole  # outside the handler: no group as its context
            finally:
                with anyio.CancelScope(shield=True):
                    await storage.close()
        finally:
            self._serving = False

    async def _sync_dags(self) -> None:
        now = self.clock.now()
        for dag in self._dags.values():
            definition_hash, stored = dag.encoded_definition()
            self._versions[dag.dag_id] = await self.storage.sync_dag(
                dag.dag_id, definition_hash, stored, now
            )

    async def _run(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        settings = Settings(
            dags=self._dags,
            versions=self._versions,
            storage=self.storage,
            clock=self.clock,
            notifier=self.notifier,
            max_concurrent_tasks=self.max_concurrent_tasks,
            max_threads=self.max_threads,
            queue_size=self.queue_size,
            role=self.role,
            worker_id=self.worker_id,
            pools=self.pools,
            retention=self.retention,
            loop_block_warning=(
                None if self.loop_block_warning is None else self.loop_block_warning.total_seconds()
            ),
            schedules=self._schedules,
            on_commit=self._committed,
        )
        storage = self.storage
        engine: Engine
        if isinstance(storage, SharedStorage):
            engine = ClusterEngine(settings=settings, storage=storage)
        else:
            engine = LocalEngine(settings=settings)
        self._engine = engine
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                await engine.run(task_status=task_status)
        finally:
            self._scope = None
            self._engine = None

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
            await self._close_background(exc)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.stop()
        return await self._close_background(exc)

    async def _close_background(self, exc: BaseException | None) -> bool | None:
        """Leave the background task group, raising the library's errors and the body's
        own exception as themselves rather than in an ``ExceptionGroup``."""
        sole: BaseException | None = None
        try:
            return await self._background_cm.__aexit__(
                None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__
            )
        except BaseExceptionGroup as group:
            sole = _sole_error(group, exc)
            if sole is None:
                raise
        raise sole  # outside the handler: no group as its context

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
        if self._engine is not None:
            self._engine.admit(runs)

    def _follow_pause(self, dag_id: str, paused: bool, resume_after: datetime | None) -> None:
        if self._engine is not None:
            self._engine.set_paused(dag_id, paused, resume_after)

    def _dag(self, dag_id: str) -> DAG:
        try:
            return self._dags[dag_id]
        except KeyError:
            known = ", ".join(sorted(self._dags)) or "none"
            raise DagNotFound(f"no DAG {dag_id!r} is served here (known: {known})") from None

    async def trigger(self, dag_id: str, params: Mapping[str, Any] | None = None) -> DagRun:
        """Queue a manual run of a DAG now; ``params`` override the DAG's defaults.

        Returns the run as stored (queued), once it is committed. On SQLite, triggers
        are written in the scheduler's next commit: many at once share a transaction.
        :raises DagNotFound: no such DAG is served.
        """
        self._require_serving()
        dag = self._dag(dag_id)
        new = operations.manual_run(
            dag_id, self._versions[dag_id], dag.params, params, self.clock.now()
        )
        assert self._engine is not None
        return await self._engine.queue_run(new)

    async def wait_for_run(self, run_id: int, timeout: float | timedelta | None = None) -> DagRun:
        """Wait until a run succeeds or fails and return it.

        :raises RunNotFound: no such run.
        :raises TimeoutError: ``timeout`` passed first.
        """
        self._require_serving()
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        assert self._engine is not None
        return await self._engine.wait_for_run(run_id, seconds)

    async def run_once(
        self,
        dag_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | timedelta | None = None,
    ) -> DagRun:
        """Run a DAG once, now, in this process, and return the finished run: for tests
        and trying a DAG out (``ppacer-async test``).

        A scheduler that is not serving serves for this run only and creates no
        scheduled runs meanwhile; use ``storage="memory://"`` to leave nothing behind.
        A serving one triggers the run and waits for it.

        :raises DagNotFound: no such DAG is served.
        :raises TimeoutError: ``timeout`` passed first.
        """
        self._dag(dag_id)
        if self._scope is not None:
            run = await self.trigger(dag_id, params)
            return await self.wait_for_run(run.id, timeout)
        async with self._serving_one_run():
            run = await self.trigger(dag_id, params)
            return await self.wait_for_run(run.id, timeout)

    @contextlib.asynccontextmanager
    async def _serving_one_run(self) -> AsyncIterator[Scheduler]:
        """Serve for the body, creating no scheduled runs (what :meth:`run_once` does
        around its one run)."""
        self._schedules = False
        try:
            async with self:
                yield self
        finally:
            self._schedules = True

    async def restart_run(self, run_id: int) -> DagRun:
        """Run again what did not succeed in a failed or cancelled run (new attempt
        numbers).

        The run is queued again before this returns.
        :raises RunNotFound: no such run. :raises InvalidOperation: it is not failed or
            cancelled.
        """
        self._require_serving()
        run = await operations.restart(self.storage, run_id)
        self._admit([run])
        return run

    async def cancel_run(self, run_id: int, note: str | None = None) -> DagRun:
        """Cancel a queued or running run: its executing attempts are cancelled (a
        thread task sees ``ctx.cancelled``), tasks not started never start, and the
        run ends ``cancelled`` (``note`` says why). A cancelled run can be restarted.

        Returns once the run's live attempts are recorded ``cancelled`` (when this
        process schedules it; else the scheduling process does so at once).
        :raises RunNotFound: no such run. :raises InvalidOperation: it has finished.
        """
        self._require_serving()
        run = await operations.cancel(self.storage, run_id, self.clock.now(), note)
        assert self._engine is not None
        await self._engine.cancel_run(run_id, run.note or "cancelled")
        return await self.storage.get_run(run_id) or run

    async def pause(self, dag_id: str) -> None:
        """Stop creating scheduled runs of a DAG (manual triggers still run)."""
        self._require_serving()
        self._dag(dag_id)
        await operations.pause(self.storage, dag_id)
        self._follow_pause(dag_id, True, None)

    async def unpause(self, dag_id: str, from_: Literal["now", "last"] = "now") -> None:
        """Resume a paused DAG's schedule.

        :param from_: ``"now"`` skips the points missed while paused (recorded as
            skipped); ``"last"`` follows the DAG's catch-up rule from its last point.
        """
        self._require_serving()
        self._dag(dag_id)
        now = self.clock.now()
        await operations.unpause(self.storage, dag_id, from_, now)
        self._follow_pause(dag_id, False, now if from_ == "now" else None)

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
        if self._engine is not None:
            await self._engine.flush_logs()
        return await self.storage.logs(run_id, task_id)

    def statistics(self) -> Statistics:
        """A snapshot of this process's counters. On a shared storage, ``queued_tasks``
        adds the ready attempts left in storage at this process's last claim, and the
        run and commit counters count only while this process is the leader."""
        if self._engine is None:
            return statistics(None, None)
        return self._engine.statistics()

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
