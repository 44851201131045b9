"""Interfaces that users implement: storage back ends, schedules, notifiers, clocks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Literal

import anyio
import anyio.abc
import attrs

from ._enums import DagRunStatus, RunTrigger, ScheduleEventKind
from ._exceptions import StorageError
from ._structures import (
    Alert,
    Changes,
    DagInfo,
    DagRun,
    LocalClaim,
    LogRecord,
    NewRun,
    PoolUsage,
    PruneCounts,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
    WorkerInfo,
)


class Schedule(ABC):
    """When a DAG is due. Subclass it and implement :meth:`next` for custom schedules."""

    @abstractmethod
    def next(self, after: datetime) -> datetime | None:
        """Return the first schedule point strictly after ``after``, or ``None`` if none.

        :param after: a tz-aware datetime.
        :return: a tz-aware datetime, strictly later than ``after``.
        """

    def describe(self) -> str:
        """A short human-readable form, shown by the command line."""
        return repr(self)

    def spec(self) -> dict[str, Any] | None:
        """A JSON form stored with the DAG definition, so tools that cannot import the
        DAG (``ppacer-async backfill``) can rebuild the schedule; ``None`` if they cannot.
        """
        return None


class Notifier(ABC):
    """Receives alerts about failed and retried tasks."""

    @abstractmethod
    async def send(self, alert: Alert) -> None:
        """Deliver one alert. Exceptions are logged by the scheduler, never propagated."""


class Clock(ABC):
    """The source of "now" and of timed sleeps; inject a fake one in tests."""

    @abstractmethod
    def now(self) -> datetime:
        """Return the current time, tz-aware (UTC)."""

    @abstractmethod
    async def sleep_until(self, deadline: datetime | None) -> None:
        """Sleep until ``deadline`` (forever when ``None``); callers cancel to wake early."""


class Storage(ABC):
    """Where all scheduler state lives. Every method is one transaction.

    Times passed in are tz-aware; times returned are tz-aware UTC.
    """

    #: How long a serving process counts as live after it last renewed its record
    #: (:meth:`register_worker`); on a shared storage, also how long a claimed attempt
    #: stays its worker's without a renewal.
    lease: timedelta = timedelta(seconds=30)

    #: Whether :meth:`create_runs_and_commit` writes the new runs and the changes in one
    #: transaction. When it does, a serving scheduler writes the runs it is asked to
    #: trigger in its next group commit, one transaction for many triggers and the
    #: state changes of the moment; when not, each trigger calls :meth:`create_run`.
    creates_runs_in_commit: ClassVar[bool] = False

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect and create or migrate the schema.

        :raises StorageError: the target is not a ppacer-async database or cannot be opened;
            it is left untouched.
        :raises SchemaVersionError: the schema is newer than this program.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release connections and the scheduler lock. Safe to call twice."""

    async def schema_version_on_disk(self) -> int | None:
        """The schema version of the database as it is, read without opening the storage
        (opening creates or migrates it): ``None`` when there is no database yet; ``-1``
        (the default) when it cannot be told without opening."""
        return -1

    async def acquire_scheduler_lock(self) -> None:  # noqa: B027 (optional hook)
        """Claim the right to serve this storage as its only scheduler.

        Single-process back ends refuse a second scheduler with ``StorageLockedError``;
        the lock is released by :meth:`close` or by the process ending.
        """

    # -- DAG definitions -------------------------------------------------------------

    @abstractmethod
    async def sync_dag(
        self,
        dag_id: str,
        definition_hash: str,
        definition: bytes | Mapping[str, Any],
        now: datetime,
    ) -> int:
        """Record a DAG definition and return its version number.

        ``definition`` is its stored form (``DAG.encoded_definition()``: compressed JSON,
        read back with ``ppacer_async.storage.decode_definition``) or the definition
        itself as a dict. :meth:`get_dag` returns it decoded.
        An unchanged definition (same hash as the latest version) writes nothing.
        """

    @abstractmethod
    async def get_dag(self, dag_id: str) -> DagInfo | None:
        """Return the latest recorded definition of a DAG, or ``None``."""

    @abstractmethod
    async def list_dags(self) -> list[DagInfo]:
        """Return every recorded DAG (latest version), sorted by id."""

    async def dag_pauses(self) -> list[tuple[str, bool, datetime | None]]:
        """Every recorded DAG's id, whether it is paused and ``resume_after``, by id:
        what :meth:`list_dags` says of them, without reading their definitions (which
        a storage may skip)."""
        return [(info.dag_id, info.paused, info.resume_after) for info in await self.list_dags()]

    @abstractmethod
    async def set_paused(
        self, dag_id: str, paused: bool, resume_after: datetime | None = None
    ) -> None:
        """Pause or unpause a DAG; ``resume_after`` (when unpausing) makes the schedule
        skip the points up to that moment. :raises DagNotFound: the DAG was never recorded.
        """

    async def wait_for_external_change(self) -> None:
        """Return when another process may have changed the storage (a run triggered
        or restarted from the command line, a DAG paused). Called in a loop by a serving
        scheduler; the default polls every second."""
        await anyio.sleep(1.0)

    # -- runs ------------------------------------------------------------------------

    @abstractmethod
    async def create_run(
        self,
        *,
        dag_id: str,
        logical_time: datetime,
        trigger: RunTrigger,
        params: dict[str, Any],
        dag_version: int,
        created_at: datetime,
        event: ScheduleEventKind | None = None,
    ) -> DagRun | None:
        """Insert a queued run, with its schedule event if ``event`` is given.

        Runs triggered by the schedule (``schedule``, ``catchup``, ``backfill``) are
        unique per ``(dag_id, logical_time)``: a duplicate writes nothing and returns
        ``None``. Manual runs are never refused.
        """

    @abstractmethod
    async def record_schedule_event(self, event: ScheduleEvent) -> None:
        """Append a schedule event that created no run (e.g. a skipped point)."""

    async def record_schedule_events(self, events: Sequence[ScheduleEvent]) -> None:
        """Append several schedule events that created no run, in order.

        Storages that reach a server override this to write them in one round trip.
        """
        for event in events:
            await self.record_schedule_event(event)

    @abstractmethod
    async def last_schedule_point(self, dag_id: str) -> datetime | None:
        """The latest logical time decided by the schedule (run or skipped), if any.

        Manual and backfill events do not count: they never shift the schedule.
        """

    @abstractmethod
    async def schedule_events(self, dag_id: str, limit: int = 100) -> list[ScheduleEvent]:
        """Schedule events of a DAG, newest logical time first."""

    @abstractmethod
    async def commit(self, changes: Changes) -> None:
        """Apply one state-machine step atomically: upsert task runs by
        ``(run_id, task_id, attempt)``, update run status/trigger/times by id, append logs.
        """

    async def create_runs_and_commit(
        self, runs: Sequence[NewRun], changes: Changes
    ) -> list[DagRun]:
        """Insert queued runs (as :meth:`create_run` does, in order; none may be refused:
        manual runs), then apply ``changes`` (as :meth:`commit`); return the new runs
        as stored.

        ``changes`` never refer to the new runs. The default writes them one after the
        other; storages that set ``creates_runs_in_commit`` write all in one
        transaction, so that nothing is written when it raises.
        """
        created: list[DagRun] = []
        for new in runs:
            run = await self.create_run(**attrs.asdict(new, recurse=False))
            if run is None:
                raise StorageError(
                    f"a run of DAG {new.dag_id!r} at {new.logical_time.isoformat()} was "
                    "refused: its logical time is taken; nothing else was written"
                )
            created.append(run)
        await self.commit(changes)
        return created

    @abstractmethod
    async def get_run(self, run_id: int) -> DagRun | None:
        """Return one run, or ``None``."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        status: DagRunStatus | None = None,
        since: datetime | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[DagRun]:
        """Runs, newest (highest id) first.

        :param since: only runs whose logical time is at or after this moment.
        :param before: only runs with a lower id (the last id of the previous page).
        """

    @abstractmethod
    async def active_runs(self) -> list[DagRun]:
        """Runs that are queued or running, oldest (lowest id) first."""

    @abstractmethod
    async def task_runs(self, run_id: int) -> list[TaskRun]:
        """Every attempt of every task of a run, ordered by task id, then attempt."""

    @abstractmethod
    async def logs(
        self,
        run_id: int,
        task_id: str | None = None,
        attempt: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Task logs of a run in the order written, skipping the first ``offset`` matches;
        at most ``limit`` of them (all when ``None``)."""

    # -- serving processes -------------------------------------------------------------

    @abstractmethod
    async def register_worker(
        self, worker_id: str, role: str, now: datetime, dag_ids: Collection[str] = ()
    ) -> None:
        """Record a serving process and the DAGs it serves, or renew its record for
        :attr:`lease` more (it counts as live, in ``ppacer-async dags`` and ``db info``,
        until that passes without a renewal)."""

    @abstractmethod
    async def unregister_worker(self, worker_id: str) -> None:
        """Forget a process that stops cleanly."""

    @abstractmethod
    async def workers(self) -> list[WorkerInfo]:
        """The live processes serving this storage (registered and not expired), by id."""

    @abstractmethod
    async def counts(self) -> StorageCounts:
        """Schema version and row counts."""

    async def save_pools(self, pools: Collection[PoolUsage], now: datetime) -> None:  # noqa: B027
        """Record the pools as the scheduling process counts them, replacing what was
        recorded (for ``ppacer-async pools``). A storage that cannot is left out."""

    async def pools(self) -> list[PoolUsage]:
        """The pools as last recorded by ``save_pools``, by name."""
        return []

    @abstractmethod
    async def prune(
        self,
        before: datetime,
        *,
        dag_id: str | None = None,
        keep_failed: bool = False,
        limit: int = 100,
    ) -> PruneCounts:
        """Delete, in one transaction, up to ``limit`` runs that finished before
        ``before`` (oldest first) with their attempts, logs and schedule events, and up
        to ``limit`` schedule events without a run created before ``before``.

        Never deletes an active run, nor a DAG's last schedule point and what follows
        it (the watcher continues from there). Call again until it deletes no run and
        no event.
        """

    @abstractmethod
    async def prunable(
        self, before: datetime, *, dag_id: str | None = None, keep_failed: bool = False
    ) -> PruneCounts:
        """What pruning with these arguments would delete, in every batch together."""

    async def reclaim_space(self) -> bool:
        """Give some pages of deleted rows back to the file system where the storage
        needs to be asked (SQLite's incremental vacuum); return whether more are left."""
        return False


#: What a shared storage tells every serving process about: new ready attempts
#: (``work``), attempt outcomes to apply (``outcomes``), runs queued or DAGs paused by
#: someone else (``changes``), and runs that finished (``finished``).
Notice = Literal["work", "outcomes", "changes", "finished"]


class Leadership:
    """Held by the one process that schedules on a shared storage. ``lost`` is set when
    the storage can no longer guarantee it (its connection dropped): stop scheduling."""

    def __init__(self) -> None:
        self.lost = anyio.Event()

    async def hold(self) -> None:
        """Return when the leadership is lost (implementations may check actively)."""
        await self.lost.wait()


class SharedStorage(Storage):
    """A storage that several serving processes share, on one or many machines.

    One process at a time holds the :meth:`leadership`: it creates due runs and applies
    every transition (it commits with :meth:`commit`, which writes each ready attempt as
    a ``scheduled`` row). Every process executes attempts: it :meth:`claim` s scheduled
    rows under a lease it renews (:meth:`renew_leases`), and :meth:`report` s their
    outcomes, which the leader reads with :meth:`reported_outcomes`. :meth:`reap` gives
    up the attempts of workers that stopped renewing, as ``interrupted`` outcomes.
    """

    #: How long a claimed attempt stays its worker's without a renewal.
    lease: timedelta
    #: How often processes look for work and changes when no notification came.
    poll_interval: timedelta

    @abstractmethod
    async def listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Receive notices until cancelled, reconnecting with backoff; after a
        reconnection every callback is called, since notices may have been lost."""

    @abstractmethod
    def add_notice_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) whenever a notice of ``kind`` arrives
        from another process (what this one writes, it tells its own parts)."""

    @abstractmethod
    def remove_notice_callback(self, kind: Notice, callback: Callable[[], None]) -> None:
        """Undo :meth:`add_notice_callback`."""

    @abstractmethod
    def leadership(
        self, on_standby: Callable[[], None] | None = None
    ) -> AbstractAsyncContextManager[Leadership]:
        """Wait until this process may schedule, then hold the right until the block
        ends or ``Leadership.lost`` is set. While held, :meth:`commit` writes only if
        the right is still held. ``on_standby`` is called each time the right is found
        taken (or out of reach) and waiting begins."""

    def renew_leases_from_thread(
        self, worker_id: str, keys: Collection[tuple[int, str, int]]
    ) -> None:
        """Renew this process's ``workers`` row and leases like ``renew_leases``, but
        blocking, over a connection of its own: called from a thread while the event
        loop is blocked (by a task that does not give control back)."""

    @abstractmethod
    async def renew_leases(self, worker_id: str, keys: Collection[tuple[int, str, int]]) -> None:
        """Extend by :attr:`lease` the leases of the attempts ``worker_id`` holds, by
        their keys ``(run_id, task_id, attempt)``; a row claimed for it but not among
        ``keys`` (the reply to the claim was lost) is left to expire and be reaped."""

    @abstractmethod
    async def claim(
        self, worker_id: str, dag_ids: Collection[str], limit: int, now: datetime
    ) -> tuple[list[tuple[DagRun, TaskRun]], int | None]:
        """Take up to ``limit`` scheduled attempts of the given DAGs, oldest first, and
        mark them running under ``worker_id``'s lease. No attempt is given to two
        callers. Also return how many scheduled attempts are left (0 when none was
        taken), or ``None`` when this call did not count them."""

    async def claim_keys(
        self, worker_id: str, keys: Collection[tuple[int, str, int]], now: datetime
    ) -> set[tuple[int, str, int]]:
        """Take the scheduled attempts of ``keys`` that no one took yet, as
        :meth:`claim` would; return the keys taken. The default takes none (they stay
        for :meth:`claim`)."""
        return set()

    async def held(
        self, worker_id: str, keys: Collection[tuple[int, str, int]]
    ) -> set[tuple[int, str, int]]:
        """The attempts of ``keys`` that ``worker_id`` still holds (claimed, under its
        lease, no outcome reported). The default holds none."""
        return set()

    async def commit_claiming(
        self, changes: Changes, claim: LocalClaim
    ) -> set[tuple[int, str, int]]:
        """:meth:`commit`, and in the same transaction take the attempts of ``claim``
        for ``claim.worker_id`` as :meth:`claim` would (running, under its lease);
        return the keys taken. A storage that cannot do both at once commits and takes
        none: the attempts stay ``scheduled`` for :meth:`claim`."""
        await self.commit(changes)
        return set()

    @abstractmethod
    async def upstream_results(
        self, keys: Collection[tuple[int, str]]
    ) -> dict[tuple[int, str], Any]:
        """The results of the successful attempts of ``(run_id, task_id)``; tasks
        without one (or with a ``None`` result) are left out."""

    @abstractmethod
    async def report(
        self,
        worker_id: str,
        outcomes: Collection[TaskRun],
        logs: Collection[LogRecord],
        *,
        notify: bool = True,
    ) -> set[tuple[int, str, int]]:
        """Store outcomes (status ``success``, ``failed`` or ``interrupted``) of attempts
        ``worker_id`` claimed, and task logs; return the keys accepted. An attempt whose
        lease was given up meanwhile is not accepted: its outcome is dropped. Without
        ``notify`` the leader is not sent an ``outcomes`` notice (it is this process,
        and is handed the outcomes directly)."""

    @abstractmethod
    async def reported_outcomes(self, dag_ids: Collection[str], limit: int) -> list[TaskRun]:
        """Reported outcomes not applied yet (their row is still ``running``), as task
        runs with the outcome as status."""

    @abstractmethod
    async def reap(self) -> list[TaskRun]:
        """Record the attempts whose lease expired as ``interrupted`` outcomes and
        return them."""

    @abstractmethod
    async def lease_due(self) -> timedelta | None:
        """How long until the earliest lease of a running attempt runs out (zero or
        less: it has), or ``None`` when no attempt holds a lease; :meth:`reap` then
        gives the attempt up as soon as its lease runs out."""
