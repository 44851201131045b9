"""Status and kind enumerations; members and values are lowercase."""

from __future__ import annotations

from enum import StrEnum


class DagRunStatus(StrEnum):
    """Lifecycle of a DAG run."""

    queued = "queued"
    running = "running"
    success = "success"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (DagRunStatus.success, DagRunStatus.failed, DagRunStatus.cancelled)


def prunable_statuses(*, keep_failed: bool) -> list[DagRunStatus]:
    """The statuses of runs that pruning may delete: finished ones (not failed ones
    with ``keep_failed``)."""
    return [
        s for s in DagRunStatus if s.finished and not (keep_failed and s is DagRunStatus.failed)
    ]


class TaskStatus(StrEnum):
    """Status of one task attempt (one ``TaskRun`` row)."""

    scheduled = "scheduled"
    running = "running"
    success = "success"
    failed = "failed"
    up_for_retry = "up_for_retry"
    upstream_failed = "upstream_failed"
    interrupted = "interrupted"
    skipped = "skipped"
    cancelled = "cancelled"
    #: a sensor whose condition did not hold yet, waiting for its next poke (it holds
    #: no worker and no slot meanwhile)
    up_for_reschedule = "up_for_reschedule"

    @property
    def finished(self) -> bool:
        """True when this attempt will not change any more."""
        return self not in (TaskStatus.scheduled, TaskStatus.running, TaskStatus.up_for_reschedule)


class TriggerRule(StrEnum):
    """When a task runs, given how its direct upstream tasks ended (Airflow's rules).

    A task whose rule can no longer be met ends ``skipped`` or ``upstream_failed``.
    """

    all_success = "all_success"
    all_failed = "all_failed"
    all_done = "all_done"
    one_success = "one_success"
    one_failed = "one_failed"
    one_done = "one_done"
    none_failed = "none_failed"
    none_failed_min_one_success = "none_failed_min_one_success"
    always = "always"


class RunTrigger(StrEnum):
    """Why a DAG run exists."""

    schedule = "schedule"
    catchup = "catchup"
    manual = "manual"
    restart = "restart"
    backfill = "backfill"


class ScheduleEventKind(StrEnum):
    """A decision of the schedule watcher, recorded for every schedule point."""

    regular = "regular"
    caught_up = "caught_up"
    skipped = "skipped"
    manual = "manual"
    backfill = "backfill"


class AttemptReason(StrEnum):
    """Why a task attempt was created."""

    initial = "initial"
    retry = "retry"
    interrupted = "interrupted"
    restart = "restart"
