"""Interfaces that users implement: storage back ends, schedules, notifiers, clocks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from types import TracebackType
from typing import Any

from ._enums import DagRunStatus, RunTrigger, ScheduleEventKind
from ._structures import (
    Alert,
    Changes,
    DagInfo,
    DagRun,
    LogRecord,
    ScheduleEvent,
    StorageCounts,
    TaskRun,
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

    async def acquire_scheduler_lock(self) -> None:  # noqa: B027 (optional hook)
        """Claim the right to serve this storage as its only scheduler.

        Single-process back ends refuse a second scheduler with ``StorageLockedError``;
        the lock is released by :meth:`close` or by the process ending.
        """

    # -- DAG definitions -------------------------------------------------------------

    @abstractmethod
    async def sync_dag(
        self, dag_id: str, definition_hash: str, definition: dict[str, Any], now: datetime
    ) -> int:
        """Record a DAG definition and return its version number.

        An unchanged definition (same hash as the latest version) writes nothing.
        """

    @abstractmethod
    async def get_dag(self, dag_id: str) -> DagInfo | None:
        """Return the latest recorded definition of a DAG, or ``None``."""

    @abstractmethod
    async def list_dags(self) -> list[DagInfo]:
        """Return every recorded DAG (latest version), sorted by id."""

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
        import anyio

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

    @abstractmethod
    async def get_run(self, run_id: int) -> DagRun | None:
        """Return one run, or ``None``."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        status: DagRunStatus | None = None,
        limit: int = 50,
    ) -> list[DagRun]:
        """Runs, newest (highest id) first."""

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
    ) -> list[LogRecord]:
        """Task logs of a run in the order written, skipping the first ``offset`` matches."""

    @abstractmethod
    async def counts(self) -> StorageCounts:
        """Schema version and row counts."""
