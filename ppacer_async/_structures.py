"""Frozen records: what storage holds and what the public API returns."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from ._definition import decode_definition
from ._enums import (
    AttemptReason,
    DagRunStatus,
    RunTrigger,
    ScheduleEventKind,
    TaskStatus,
)


@attrs.frozen(kw_only=True)
class DagRun:
    """One run of a DAG for one logical time.

    :ivar id: storage-assigned id, unique across DAGs.
    :ivar logical_time: the schedule point the run is for (UTC, tz-aware).
    :ivar dag_version: the version of the DAG definition the run executes.
    :ivar started_at: when the run started, or started again after a restart (its
        ``run_timeout`` counts from it).
    :ivar note: why the run ended as it did, when that needs saying (cancelled by
        whom, timed out after how long).
    """

    id: int
    dag_id: str
    logical_time: datetime
    status: DagRunStatus
    trigger: RunTrigger
    params: dict[str, Any] = attrs.field(factory=dict)
    dag_version: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    note: str | None = None


def moved_run(
    run: DagRun,
    status: DagRunStatus,
    trigger: RunTrigger,
    started_at: datetime | None,
    finished_at: datetime | None,
    note: str | None,
) -> DagRun:
    """``run`` with what a state change writes (its status, trigger, times and note)
    replaced: ``attrs.evolve`` without its generic machinery, which costs more than
    the rest of a run's start or end."""
    return DagRun(
        id=run.id,
        dag_id=run.dag_id,
        logical_time=run.logical_time,
        status=status,
        trigger=trigger,
        params=run.params,
        dag_version=run.dag_version,
        created_at=run.created_at,
        started_at=started_at,
        finished_at=finished_at,
        note=note,
    )


def instance_id(task_id: str, map_index: int) -> str:
    """The id of one instance of a mapped task: ``process[3]``."""
    return f"{task_id}[{map_index}]"


def split_instance_id(task_id: str) -> tuple[str, int | None]:
    """``"process[3]"`` -> ``("process", 3)``; ``"process"`` -> ``("process", None)``.

    Task ids cannot contain brackets, so the two never collide.
    """
    if task_id.endswith("]"):
        base, _, index = task_id[:-1].partition("[")
        if index.isdigit():
            return base, int(index)
    return task_id, None


@attrs.frozen(kw_only=True)
class TaskRun:
    """One attempt of one task within a DAG run.

    ``result`` is the JSON value the task returned (``None`` until it succeeds);
    ``error`` is the failure text with its traceback (or why it was skipped). An
    instance of a mapped task has the id ``process[3]``: see :attr:`map_index` and
    :attr:`task`. A mapped task also has a row of its own, ``process``, once all its
    instances ended: its result is the list of theirs, in index order.
    """

    run_id: int
    task_id: str
    attempt: int
    status: TaskStatus
    reason: AttemptReason = AttemptReason.initial
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    result: Any = None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.run_id, self.task_id, self.attempt)

    @property
    def map_index(self) -> int | None:
        """The index of a mapped task's instance (``process[3]`` -> 3), else ``None``."""
        return split_instance_id(self.task_id)[1]

    @property
    def task(self) -> str:
        """The id of the task in the DAG (``process[3]`` -> ``process``)."""
        return split_instance_id(self.task_id)[0]


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    if names != tuple(a.name for a in attrs.fields(cls)):
        raise TypeError(f"the fast constructor of {cls.__name__} must set every field")
    return tuple(getattr(cls, name).__set__ for name in names)


(
    _run_id,
    _task_id,
    _attempt,
    _status,
    _reason,
    _scheduled_at,
    _started_at,
    _finished_at,
    _error,
    _result,
) = _slot_setters(
    TaskRun,
    (
        "run_id",
        "task_id",
        "attempt",
        "status",
        "reason",
        "scheduled_at",
        "started_at",
        "finished_at",
        "error",
        "result",
    ),
)


def make_task_run(
    run_id: int,
    task_id: str,
    attempt: int,
    status: TaskStatus,
    reason: AttemptReason,
    scheduled_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
    error: str | None,
    result: Any,
) -> TaskRun:
    """``TaskRun(...)`` with every field given, positionally, at about half the cost:
    the scheduler builds one per attempt. ``TaskRun`` has no validators or converters;
    its slots are set as its own ``__init__`` sets them (``object.__setattr__`` is what
    a frozen class's ``__init__`` uses; the slots' setters are the same, with no
    lookup by name)."""
    tr: TaskRun = object.__new__(TaskRun)
    _run_id(tr, run_id)
    _task_id(tr, task_id)
    _attempt(tr, attempt)
    _status(tr, status)
    _reason(tr, reason)
    _scheduled_at(tr, scheduled_at)
    _started_at(tr, started_at)
    _finished_at(tr, finished_at)
    _error(tr, error)
    _result(tr, result)
    return tr


@attrs.frozen(kw_only=True)
class LogRecord:
    """A log line written by a task through ``ctx.log``."""

    run_id: int
    task_id: str
    attempt: int
    time: datetime
    level: str
    message: str


@attrs.frozen(kw_only=True)
class ScheduleEvent:
    """A decision about one schedule point of one DAG."""

    dag_id: str
    logical_time: datetime
    kind: ScheduleEventKind
    created_at: datetime
    run_id: int | None = None


@attrs.frozen(kw_only=True)
class DagInfo:
    """What storage knows about a DAG: its latest definition and whether it is paused."""

    dag_id: str
    version: int
    definition_hash: str
    #: the definition as storage holds it (compressed JSON, JSON text, or the object),
    #: decoded when :attr:`definition` is first read: a DAG's paused state does not
    #: need its million tasks decoded
    stored_definition: bytes | str | dict[str, Any] = attrs.field(
        alias="definition", eq=False, repr=False
    )
    paused: bool
    created_at: datetime
    #: when unpaused "from now": schedule points up to this moment are skipped
    resume_after: datetime | None = None

    @functools.cached_property
    def definition(self) -> dict[str, Any]:
        """The definition (``DAG.definition()`` as recorded)."""
        found: dict[str, Any] = decode_definition(self.stored_definition)
        return found


@attrs.frozen(kw_only=True)
class NewRun:
    """A queued run to insert (the arguments of ``Storage.create_run``): the scheduler
    writes the runs it is asked to trigger in its next group commit
    (``Storage.create_runs_and_commit``)."""

    dag_id: str
    logical_time: datetime
    trigger: RunTrigger
    params: dict[str, Any]
    dag_version: int
    created_at: datetime
    #: the schedule event recorded with the run, if any
    event: ScheduleEventKind | None = None


@attrs.frozen(kw_only=True)
class Changes:
    """Everything one state-machine step writes, committed in one transaction.

    ``task_runs`` are upserted by ``(run_id, task_id, attempt)``; ``dag_runs`` are
    updated by id (status and times); the rest are appended.
    """

    task_runs: list[TaskRun] = attrs.field(factory=list)
    dag_runs: list[DagRun] = attrs.field(factory=list)
    logs: list[LogRecord] = attrs.field(factory=list)

    def __bool__(self) -> bool:
        return bool(self.task_runs or self.dag_runs or self.logs)


@attrs.frozen(kw_only=True)
class LocalClaim:
    """Attempts a commit on a shared storage also claims for the committing process's
    own workers, under that process's lease, so that they start without a claim of
    their own (``SharedStorage.commit_claiming``).

    ``fresh``: keys of ``scheduled`` rows among the commit's ``task_runs``, written
    ``running`` instead (started ``now``). ``stored``: keys of rows stored
    ``scheduled`` by an earlier commit, claimed if no process has claimed them since.
    A storage may take fewer or none: the rest stay ``scheduled`` for any process.
    ``applied``: attempts of this process whose outcomes the commit applies directly.
    """

    worker_id: str
    #: the DAGs the process serves: it claims only while no other live process
    #: executes attempts of one of them (it has no one to leave them to)
    dag_ids: tuple[str, ...]
    now: datetime
    fresh: frozenset[tuple[int, str, int]] = frozenset()
    stored: tuple[tuple[int, str, int], ...] = ()
    #: keys of attempts the process holds (claimed, leased) whose outcomes the commit
    #: applies without their having been reported: it writes nothing unless each is
    #: still held, and raises ``LeaseLost``.
    applied: tuple[tuple[int, str, int], ...] = ()


@attrs.frozen(kw_only=True)
class Statistics:
    """A snapshot of a scheduler's counters (``Scheduler.statistics()``)."""

    active_runs: int
    queued_tasks: int
    running_tasks: int
    running_threads: int
    tasks_finished: int
    runs_finished: int
    commits: int
    committed_rows: int
    #: the named pools (``Scheduler(pools=...)``) as the scheduling process sees them
    pools: tuple[PoolUsage, ...] = ()


@attrs.frozen(kw_only=True)
class PoolUsage:
    """A pool's slots: how many attempts hold (``used``) and how many attempts wait
    for one (``waiting``), as the scheduling process counts them."""

    name: str
    slots: int
    used: int
    waiting: int
    #: when the scheduling process recorded it (``ppacer-async pools``); ``None`` in
    #: ``statistics()``, which counts now
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True)
class StorageCounts:
    """Row counts of a storage, for ``ppacer-async db info``."""

    schema_version: int
    dags: int
    dag_runs: int
    task_runs: int
    task_logs: int
    schedule_events: int


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class PruneCounts:
    """What pruning deleted (or, in a dry run, would delete)."""

    dag_runs: int = 0
    task_runs: int = 0
    task_logs: int = 0
    schedule_events: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(
            dag_runs=self.dag_runs + other.dag_runs,
            task_runs=self.task_runs + other.task_runs,
            task_logs=self.task_logs + other.task_logs,
            schedule_events=self.schedule_events + other.schedule_events,
        )


@attrs.frozen(kw_only=True)
class WorkerInfo:
    """A process serving a storage, as it last renewed its record.

    :ivar dag_ids: the DAGs it serves.
    :ivar expires_at: it counts as live until then (a process renews it while it serves).
    """

    id: str
    host: str
    pid: int
    role: str
    started_at: datetime
    renewed_at: datetime
    expires_at: datetime
    dag_ids: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen(kw_only=True)
class Alert:
    """A task failed (``kind="failure"``) or is about to be retried (``kind="retry"``).

    ``text`` is rendered from the alert template with the other fields.
    """

    kind: str
    dag_id: str
    run_id: int
    task_id: str
    attempt: int
    logical_time: datetime
    error: str
    text: str


# -- what ``ppacer_async.operations`` returns -------------------------------------------


@attrs.frozen(kw_only=True)
class DagSummary:
    """A recorded DAG as a list of DAGs shows it.

    :ivar schedule: the schedule described in words (``None``: runs only when triggered).
    :ivar next_due: when the schedule next creates a run; ``None`` when paused, without
        a schedule, or when it cannot be computed from storage alone (a custom schedule).
    :ivar last_run: the newest run, whatever created it.
    :ivar tasks: how many tasks the DAG has.
    :ivar version: the number of the latest recorded definition.
    :ivar served_by: the live processes serving the DAG (none: nothing will start its
        runs until a scheduler serving it starts).
    """

    dag_id: str
    schedule: str | None
    paused: bool
    next_due: datetime | None
    last_run: DagRun | None
    tasks: int
    version: int
    description: str = ""
    tags: tuple[str, ...] = ()
    served_by: tuple[WorkerInfo, ...] = ()

    @property
    def served(self) -> bool:
        """Whether a live process serves this DAG (schedules it and runs its tasks)."""
        return bool(self.served_by)


@attrs.frozen(kw_only=True)
class TaskDefinition:
    """One task of a recorded DAG: the ids it waits for and its options (``retries``,
    ``timeout`` in seconds, ``priority``, ...) as the definition stores them."""

    task_id: str
    upstream: tuple[str, ...]
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class DagDetail:
    """A recorded DAG with its tasks, in definition order.

    :ivar start: the first schedule point may not be earlier than this.
    :ivar params: default params of a run.
    """

    summary: DagSummary
    tasks: tuple[TaskDefinition, ...]
    start: datetime | None
    catchup: bool
    max_active_runs: int
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TaskDetail:
    """One task of a run and every attempt of it, oldest first.

    :ivar upstream: the ids of the tasks it waits for (empty when the DAG's definition
        is no longer known).
    :ivar waiting: for a task with no attempt yet in an active run, ``"scheduled"`` when
        its upstream tasks all succeeded in a running run (it is about to start), else
        ``"pending"``; ``None`` when it has attempts or the run has finished.
    """

    task_id: str
    upstream: tuple[str, ...] = ()
    attempts: tuple[TaskRun, ...] = ()
    waiting: str | None = None
    #: a branch task: its result names the downstream tasks it chose
    branch: bool = False

    @property
    def latest(self) -> TaskRun | None:
        """The latest attempt, or ``None`` when the task has not started."""
        return self.attempts[-1] if self.attempts else None

    @property
    def status(self) -> TaskStatus | None:
        """The status of the latest attempt, or ``None`` when the task has not started."""
        return None if not self.attempts else self.attempts[-1].status

    @property
    def last_error(self) -> TaskRun | None:
        """The latest attempt that recorded an error, if any."""
        for attempt in reversed(self.attempts):
            if attempt.error:
                return attempt
        return None


@attrs.frozen(kw_only=True)
class RunDetail:
    """A run and each of its tasks: the DAG's tasks in definition order, then any task
    only the run's attempts know (from an older definition)."""

    run: DagRun
    tasks: tuple[TaskDetail, ...]

    @property
    def attempts(self) -> list[TaskRun]:
        """Every attempt of every task, ordered by task id, then attempt."""
        return sorted(
            (attempt for detail in self.tasks for attempt in detail.attempts),
            key=lambda attempt: (attempt.task_id, attempt.attempt),
        )


@attrs.frozen(kw_only=True)
class LogPage:
    """Task log records of a run, read after the run itself.

    :ivar run: the run as read just before the records: when it has finished, every
        record it will ever have is in this page or an earlier one.
    :ivar records: the records in the order written.
    :ivar next_after: the cursor of the next page (pass it as ``after``).
    """

    run: DagRun
    records: list[LogRecord]
    next_after: int


@attrs.frozen(kw_only=True)
class DbInfo:
    """A storage's schema version and row counts, and the processes serving it.

    :ivar workers: the live processes serving the storage; ``None`` for a storage that
        does not record them.
    """

    counts: StorageCounts
    workers: list[WorkerInfo] | None = None


def render_alert_text(template: str, **fields: Any) -> str:
    """Render an alert template (``str.format`` style) with an ``Alert``'s fields;
    ``error_line`` is the last non-blank line of the error."""
    error = str(fields.get("error") or "")
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return template.format(error_line=lines[-1] if lines else "", **fields)
