"""Pure state transitions of DAG runs: no I/O, no awaiting, easy to test exhaustively.

A ``RunState`` holds what the engine must know about one active run: per task its
phase, latest attempt, remaining unfinished parents (in-degree counter) and retry
budget. Each transition appends what must be written and done to an ``Effects``; the
caller commits ``Effects`` in one transaction before acting on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Literal

import attrs

from .._dag import DAG
from .._enums import AttemptReason, DagRunStatus, RunTrigger, TaskStatus
from .._structures import DagRun, TaskRun
from .upstream import RunView

#: Consecutive interruptions after which a task fails instead of running again.
MAX_INTERRUPTIONS = 3

# Task phases inside a run (small ints: one byte per task).
PENDING = 0  # waiting for parents, no live attempt
LIVE = 1  # an attempt is scheduled, running, or waiting for its retry
SUCCESS = 2
FAILED = 3
UPSTREAM_FAILED = 4
SETTLED = (SUCCESS, FAILED, UPSTREAM_FAILED)

# Enum members read once per attempt, bound once: reading ``TaskStatus.x`` costs about
# 0.1 µs on Python 3.11, as much as a third of what the state machine spends per task.
_SCHEDULED = TaskStatus.scheduled
_INITIAL = AttemptReason.initial
_RESTART = AttemptReason.restart

#: Why an alert is sent: a failed attempt that will be retried, or a final failure.
AlertKind = Literal["retry", "failure"]


@attrs.define(eq=False, kw_only=True)
class RunState(RunView):
    """In-memory bookkeeping of one active run (rebuildable from storage)."""

    phase: bytearray
    waiting: list[int]
    attempt: list[int]
    failures: list[int]
    streak: list[int]
    settled: int = 0
    failed: int = 0

    @classmethod
    def new(cls, run: DagRun, dag: DAG) -> RunState:
        graph = dag.graph
        n = len(graph.ids)
        return cls(
            run=run,
            dag=dag,
            graph=graph,
            phase=bytearray(n),
            waiting=[len(p) for p in graph.parents],
            attempt=[0] * n,
            failures=[0] * n,
            streak=[0] * n,
        )

    @property
    def finished(self) -> bool:
        return self.settled == len(self.phase)

    def expects(self, i: int, attempt: int) -> bool:
        """Whether ``attempt`` of task ``i`` is the live one (its outcome is due)."""
        return self.phase[i] == LIVE and self.attempt[i] == attempt


@attrs.define(eq=False, kw_only=True)
class Ready:
    """The attempts of one run made ready in one step, as task indices.

    They become queue items (a record each) only as they are queued: 100,000 leaves made
    ready at once are two lists here, not 100,000 records that every garbage
    collection would scan while they wait for room in the queue.
    """

    state: RunState
    at: datetime
    indices: list[int] = attrs.field(factory=list)
    reasons: list[AttemptReason] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self.indices)

    def items(self) -> Iterator[tuple[RunState, int, TaskRun]]:
        """Queue items, made one at a time."""
        state = self.state
        run_id = state.run.id
        ids, attempts, at = state.graph.ids, state.attempt, self.at
        for i, reason in zip(self.indices, self.reasons, strict=True):
            yield (
                state,
                i,
                TaskRun(
                    run_id=run_id,
                    task_id=ids[i],
                    attempt=attempts[i],
                    status=_SCHEDULED,
                    reason=reason,
                    scheduled_at=at,
                ),
            )


@attrs.define(eq=False, kw_only=True)
class Effects:
    """What one batch of transitions writes (``task_runs``, ``dag_runs``) and then does.

    ``record_scheduled``: write a ``scheduled`` row for each attempt made ready (on a
    shared storage, where other processes claim them). Without it (one process),
    readiness is not written separately: it follows from the stored
    results of the parents, committed in the same transaction as the step that made
    the attempt ready, and recovery derives it again. That halves the rows written per
    task; the attempt's row appears when it starts (if it suspends) or ends.
    """

    record_scheduled: bool = False

    task_runs: list[TaskRun] = attrs.field(factory=list)
    dag_runs: list[DagRun] = attrs.field(factory=list)
    #: attempts made ready, by run id
    ready: dict[int, Ready] = attrs.field(factory=dict)
    retries: list[tuple[datetime, RunState, int, int]] = attrs.field(factory=list)
    #: alerts to send once committed: the attempt and what happened to it
    alerts: list[tuple[RunState, int, TaskRun, AlertKind]] = attrs.field(factory=list)
    finished: list[RunState] = attrs.field(factory=list)


def _schedule(
    state: RunState, i: int, reason: AttemptReason | None, now: datetime, fx: Effects
) -> None:
    state.phase[i] = LIVE
    attempt = state.attempt[i] + 1
    if reason is None:
        reason = _INITIAL if attempt == 1 else _RESTART
    state.attempt[i] = attempt
    if fx.record_scheduled:
        fx.task_runs.append(
            TaskRun(
                run_id=state.run.id,
                task_id=state.graph.ids[i],
                attempt=attempt,
                status=TaskStatus.scheduled,
                reason=reason,
                scheduled_at=now,
            )
        )
    _add_ready(state, i, reason, now, fx)


def _add_ready(state: RunState, i: int, reason: AttemptReason, now: datetime, fx: Effects) -> None:
    ready = fx.ready.get(state.run.id)
    if ready is None:
        ready = fx.ready[state.run.id] = Ready(state=state, at=now)
    ready.indices.append(i)
    ready.reasons.append(reason)


def start_run(
    state: RunState, now: datetime, fx: Effects, *, trigger: RunTrigger | None = None
) -> None:
    """Move a queued run to running and schedule every task whose parents all succeeded."""
    run = state.run
    state.run = run = attrs.evolve(
        run,
        status=DagRunStatus.running,
        trigger=trigger or run.trigger,
        started_at=run.started_at or now,
        finished_at=None,
    )
    fx.dag_runs.append(run)
    phase, waiting = state.phase, state.waiting
    for i in range(len(phase)):
        if phase[i] == PENDING and waiting[i] == 0:
            _schedule(state, i, None, now, fx)
    _maybe_finish(state, now, fx)


def task_succeeded(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """Record a successful attempt and schedule children whose last parent this was."""
    fx.task_runs.append(tr)
    state.phase[i] = SUCCESS
    state.streak[i] = 0
    state.settled += 1
    children = state.graph.children[i]
    if children:
        state.results[i] = tr.result
        waiting, phase = state.waiting, state.phase
        for c in children:
            waiting[c] -= 1
            if waiting[c] == 0 and phase[c] == PENDING:
                _schedule(state, c, None, now, fx)
    if state.settled == len(state.phase):
        _finish(state, now, fx)


def task_failed(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """Record a failed attempt: retry it if the budget allows, else fail it and
    everything downstream of it."""
    task = state.graph.tasks[i]
    state.streak[i] = 0
    state.failures[i] += 1
    failures = state.failures[i]
    if failures <= task.retries:
        tr = attrs.evolve(tr, status=TaskStatus.up_for_retry)
        fx.task_runs.append(tr)
        due = now + task.retry_delay_for(failures)
        fx.retries.append((due, state, i, tr.attempt))
        if task.alert_on_retry:
            fx.alerts.append((state, i, tr, "retry"))
        return
    tr = attrs.evolve(tr, status=TaskStatus.failed)
    fx.task_runs.append(tr)
    _fail(state, i, tr, now, fx)


def _fail(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    state.phase[i] = FAILED
    state.settled += 1
    state.failed += 1
    if state.graph.tasks[i].alert_on_failure:
        fx.alerts.append((state, i, tr, "failure"))
    ids = state.graph.ids
    for d in state.graph.descendants(i):
        if state.phase[d] == PENDING:
            state.phase[d] = UPSTREAM_FAILED
            state.settled += 1
            state.attempt[d] += 1
            fx.task_runs.append(
                TaskRun(
                    run_id=state.run.id,
                    task_id=ids[d],
                    attempt=state.attempt[d],
                    status=TaskStatus.upstream_failed,
                    reason=AttemptReason.initial,
                    scheduled_at=now,
                    finished_at=now,
                    error=f"upstream task {ids[i]!r} failed",
                )
            )
    _maybe_finish(state, now, fx)


def retry_due(state: RunState, i: int, attempt: int, now: datetime, fx: Effects) -> None:
    """Create the next attempt of a task whose retry delay has passed."""
    if state.phase[i] == LIVE and state.attempt[i] == attempt:
        _schedule(state, i, AttemptReason.retry, now, fx)


def task_interrupted(
    state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects, *, resume: bool
) -> None:
    """Record an attempt cut short by a stop or a crash.

    Interruptions do not spend retries, but the ``MAX_INTERRUPTIONS``-th in a row fails
    the task, so a task that kills its process cannot loop forever. With ``resume`` a
    new attempt is scheduled at once (recovery); without it (shutdown) the task is left
    for the next start.
    """
    state.streak[i] += 1
    if state.streak[i] >= MAX_INTERRUPTIONS:
        tr = attrs.evolve(
            tr,
            status=TaskStatus.failed,
            finished_at=tr.finished_at or now,
            error=(
                f"interrupted {state.streak[i]} times in a row (the scheduler stopped or "
                "crashed while it ran); not run again to avoid a crash loop. Fix the cause "
                "and restart the run."
            ),
        )
        fx.task_runs.append(tr)
        _fail(state, i, tr, now, fx)
        return
    fx.task_runs.append(
        attrs.evolve(tr, status=TaskStatus.interrupted, finished_at=tr.finished_at or now)
    )
    if resume:
        _schedule(state, i, AttemptReason.interrupted, now, fx)


def _maybe_finish(state: RunState, now: datetime, fx: Effects) -> None:
    if state.settled == len(state.phase):
        _finish(state, now, fx)


def _finish(state: RunState, now: datetime, fx: Effects) -> None:
    status = DagRunStatus.failed if state.failed else DagRunStatus.success
    state.run = attrs.evolve(state.run, status=status, finished_at=now)
    fx.dag_runs.append(state.run)
    fx.finished.append(state)


def restore(
    run: DagRun,
    dag: DAG,
    rows: list[TaskRun],
    now: datetime,
    fx: Effects,
    *,
    restart: bool,
    shared: bool = False,
) -> RunState:
    """Rebuild a run's state from its stored attempts.

    Recovery (``restart=False``): attempts left ``running`` by a crash become
    ``interrupted`` and run again; ``scheduled`` ones are queued again; pending retries
    get their timers back. Restart (``restart=True``): failed and upstream-failed tasks
    are reset to run again with new attempt numbers and a fresh retry budget.

    ``shared``: other processes may still be running the ``running`` attempts (under a
    lease), so they stay live; their outcome, or the reaper's ``interrupted``, comes
    later.
    """
    state = RunState.new(run, dag)
    index = dag.graph.index
    latest: dict[int, TaskRun] = {}
    for tr in rows:
        i = index.get(tr.task_id)
        if i is None:
            continue  # the task was removed from the DAG since this run started
        prev = latest.get(i)
        if prev is None or tr.attempt > prev.attempt:
            latest[i] = tr
        state.attempt[i] = max(state.attempt[i], tr.attempt)
    # Budgets and streaks, counted back from the latest attempt.
    by_task: dict[int, list[TaskRun]] = {}
    for tr in rows:
        i = index.get(tr.task_id)
        if i is not None:
            by_task.setdefault(i, []).append(tr)
    for i, attempts in by_task.items():
        attempts.sort(key=lambda t: t.attempt)
        for k, tr in enumerate(reversed(attempts)):
            if tr.status is TaskStatus.interrupted:
                state.streak[i] += 1
            elif not (k == 0 and tr.status is TaskStatus.running):  # counted when resumed
                break
        for tr in reversed(attempts):
            if tr.status in (TaskStatus.up_for_retry, TaskStatus.failed):
                state.failures[i] += 1
            if tr.reason in (AttemptReason.initial, AttemptReason.restart):
                break

    graph = dag.graph
    # Successes first: they release the in-degree counters of their children.
    for i, tr in latest.items():
        if tr.status is TaskStatus.success:
            state.phase[i] = SUCCESS
            state.settled += 1
            if graph.children[i]:
                state.results[i] = tr.result
            for c in graph.children[i]:
                state.waiting[c] -= 1
    resume: list[tuple[int, TaskRun]] = []
    phase = state.phase
    for i in graph.order:  # parents first: upstream_failed needs its cause settled
        found = latest.get(i)
        if found is None:
            continue
        tr = found
        status = tr.status
        if status is TaskStatus.success:
            continue
        if status is TaskStatus.failed:
            if restart:
                state.failures[i] = 0
                state.streak[i] = 0
                continue  # PENDING: start_run schedules it (its parents all succeeded)
            phase[i] = FAILED
            state.settled += 1
            state.failed += 1
        elif status is TaskStatus.upstream_failed:
            # Valid only while a parent is still failed: after a restart, the rows of
            # tasks downstream of a retried failure belong to the previous attempt.
            if not restart and any(phase[p] in (FAILED, UPSTREAM_FAILED) for p in graph.parents[i]):
                phase[i] = UPSTREAM_FAILED
                state.settled += 1
        elif status is TaskStatus.scheduled:
            phase[i] = LIVE
            _add_ready(state, i, tr.reason, now, fx)
        elif status is TaskStatus.up_for_retry:
            phase[i] = LIVE
            task = graph.tasks[i]
            finished = tr.finished_at or now
            due = finished + task.retry_delay_for(state.failures[i])
            fx.retries.append((due, state, i, tr.attempt))
        elif shared and status is TaskStatus.running:
            phase[i] = LIVE  # still leased by a process, or about to be reaped
        else:  # running or interrupted: cut short by a crash or a stop
            phase[i] = LIVE
            resume.append((i, tr))
    for i, tr in resume:
        if tr.status is TaskStatus.running:
            task_interrupted(state, i, tr, now, fx, resume=True)
        elif state.streak[i] >= MAX_INTERRUPTIONS:  # stopped while running, too often
            state.streak[i] -= 1
            task_interrupted(state, i, tr, now, fx, resume=True)
        else:
            _schedule(state, i, AttemptReason.interrupted, now, fx)
    if not restart:
        # A task whose parents all succeeded but which has no live attempt (its
        # upstream_failed row predates a restart) is due now.
        for i in range(len(phase)):
            if phase[i] == PENDING and state.waiting[i] == 0:
                _schedule(state, i, None, now, fx)
        _maybe_finish(state, now, fx)
    return state
