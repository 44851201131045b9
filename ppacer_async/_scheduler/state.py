"""Pure state transitions of DAG runs: no I/O, no awaiting, easy to test exhaustively.

A ``RunState`` holds what the engine must know about one active run: per task its
phase, latest attempt, remaining unfinished parents (in-degree counter) and retry
budget. Each transition appends what must be written and done to an ``Effects``; the
caller commits ``Effects`` in one transaction before acting on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .._dag import DAG, Graph
from .._enums import AttemptReason, DagRunStatus, RunTrigger, TaskStatus
from .._structures import DagRun, TaskRun, instance_id, moved_run, split_instance_id
from . import rules
from .upstream import Instances, RunView

if TYPE_CHECKING:
    from .pools import Pools

#: Consecutive interruptions after which a task fails instead of running again.
MAX_INTERRUPTIONS = 3

# Task phases inside a run (small ints: one byte per task).
PENDING = 0  # waiting for parents, no live attempt
LIVE = 1  # an attempt is scheduled, running, or waiting for its retry
SUCCESS = 2
FAILED = 3
UPSTREAM_FAILED = 4
SKIPPED = 5
CANCELLED = 6
SETTLED = (SUCCESS, FAILED, UPSTREAM_FAILED, SKIPPED, CANCELLED)

_PHASE_STATUS = {
    SUCCESS: TaskStatus.success,
    FAILED: TaskStatus.failed,
    UPSTREAM_FAILED: TaskStatus.upstream_failed,
    SKIPPED: TaskStatus.skipped,
    CANCELLED: TaskStatus.cancelled,
}

# Enum members read once per attempt, bound once: reading ``TaskStatus.x`` costs about
# 0.1 µs on Python 3.11, as much as a third of what the state machine spends per task.
_SCHEDULED = TaskStatus.scheduled
_INITIAL = AttemptReason.initial
_RESTART = AttemptReason.restart

#: First attempts of a mapped async task's instances per queue item (see ``Instances``).
INSTANCES_PER_ITEM = 32

#: Why an alert is sent: a failed attempt that will be retried, or a final failure.
AlertKind = Literal["retry", "failure"]


@attrs.define(eq=False, kw_only=True)
class MapState:
    """The instances of one mapped task in one run, by map index."""

    phase: bytearray
    attempt: list[int]
    failures: list[int]
    streak: list[int]
    results: list[Any]
    settled: int = 0
    failed: int = 0

    @classmethod
    def new(cls, n: int) -> MapState:
        return cls(
            phase=bytearray(n),
            attempt=[0] * n,
            failures=[0] * n,
            streak=[0] * n,
            results=[None] * n,
        )


@attrs.define(eq=False, kw_only=True)
class RunState(RunView):
    """In-memory bookkeeping of one active run (rebuildable from storage).

    Per task: ``waiting`` counts the parents that have not ended, ``bad`` those that
    ended failed or upstream_failed, ``skips`` those that ended skipped.
    """

    phase: bytearray
    waiting: list[int]
    attempt: list[int]
    failures: list[int]
    streak: list[int]
    bad: list[int]
    skips: list[int]
    settled: int = 0
    failed: int = 0
    #: the instances of mapped tasks, by task index, once expanded
    maps: dict[int, MapState] = attrs.field(factory=dict)
    #: stored attempts of mapped instances, by task index, until expanded (recovery)
    stored_instances: dict[int, list[TaskRun]] = attrs.field(factory=dict)
    #: (task index, map index or -1) of the attempts waiting for their retry delay
    retrying: set[tuple[int, int]] = attrs.field(factory=set)
    #: sensors between pokes or poking: task index -> (first poke, the attempt's reason)
    sensing: dict[int, tuple[datetime, AttemptReason]] = attrs.field(factory=dict)
    #: the graph is plain (see ``Graph.plain``) and the run not cancelled: successes
    #: take the fast path
    plain: bool = attrs.field(init=False)
    #: some task takes slots (a pool, the DAG's ``max_active_tasks``): ready attempts
    #: go through the ``Pools``
    gated: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.gated = self.graph.pooled or self.dag.max_active_tasks is not None
        self.plain = self.graph.plain and not self.gated

    #: rebuilt for a restart: failed mapped instances run again
    restarting: bool = False

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
            bad=[0] * n,
            skips=[0] * n,
        )

    @property
    def finished(self) -> bool:
        return self.settled == len(self.phase)

    def expects(self, i: int, attempt: int, map_index: int | None = None) -> bool:
        """Whether ``attempt`` of task ``i`` (of its instance ``map_index``) is the live
        one (its outcome is due)."""
        if map_index is None:
            return self.phase[i] == LIVE and self.attempt[i] == attempt
        found = self.maps.get(i)
        return (
            found is not None
            and map_index < len(found.phase)
            and found.phase[map_index] == LIVE
            and found.attempt[map_index] == attempt
        )

    def locate(self, task_id: str) -> tuple[int, int | None] | None:
        """The task index and map index of a stored task id (``process[3]``)."""
        i = self.graph.index.get(task_id)
        if i is not None:
            return i, None
        base, k = split_instance_id(task_id)
        i = self.graph.index.get(base)
        if i is None or k is None:
            return None
        return i, k


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
    #: instances of mapped tasks: (task index, map index, reason)
    instances: list[tuple[int, int, AttemptReason]] = attrs.field(factory=list)
    #: every instance of a mapped task, first attempts: (task index, how many)
    expanded: list[tuple[int, int]] = attrs.field(factory=list)

    def __len__(self) -> int:
        n = len(self.indices)
        if self.instances:
            n += len(self.instances)
        if self.expanded:
            n += sum(count for _, count in self.expanded)
        return n

    def items(self) -> Iterator[tuple[RunState, int, TaskRun | Instances]]:
        """Queue items, made one at a time: an attempt each, or a range of instances."""
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
        for i, k, reason in self.instances:
            yield (
                state,
                i,
                TaskRun(
                    run_id=run_id,
                    task_id=instance_id(ids[i], k),
                    attempt=state.maps[i].attempt[k],
                    status=_SCHEDULED,
                    reason=reason,
                    scheduled_at=at,
                ),
            )
        for i, n in self.expanded:
            if state.graph.tasks[i].is_async:
                # A worker runs them back to back: an item per INSTANCES_PER_ITEM.
                for start in range(0, n, INSTANCES_PER_ITEM):
                    yield state, i, Instances(start, min(start + INSTANCES_PER_ITEM, n), at)
                continue
            prefix = ids[i] + "["
            for k in range(n):
                yield (
                    state,
                    i,
                    TaskRun(
                        run_id=run_id,
                        task_id=f"{prefix}{k}]",
                        attempt=1,
                        status=_SCHEDULED,
                        reason=_INITIAL,
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
    #: the slot counters, when some DAG served uses pools or ``max_active_tasks``
    pools: Pools | None = None

    task_runs: list[TaskRun] = attrs.field(factory=list)
    dag_runs: list[DagRun] = attrs.field(factory=list)
    #: attempts made ready, by run id
    ready: dict[int, Ready] = attrs.field(factory=dict)
    #: (due, run, task index, attempt, map index or -1)
    retries: list[tuple[datetime, RunState, int, int, int]] = attrs.field(factory=list)
    #: alerts to send once committed: the attempt and what happened to it
    alerts: list[tuple[RunState, int, TaskRun, AlertKind]] = attrs.field(factory=list)
    finished: list[RunState] = attrs.field(factory=list)
    #: runs with a time limit that started: (when it is up, run)
    deadlines: list[tuple[datetime, RunState]] = attrs.field(factory=list)
    #: runs cancelled: their attempts still executing must stop
    cancelled: list[RunState] = attrs.field(factory=list)


def _schedule(
    state: RunState, i: int, reason: AttemptReason | None, now: datetime, fx: Effects
) -> None:
    state.phase[i] = LIVE
    attempt = state.attempt[i] + 1
    if reason is None:
        reason = _INITIAL if attempt == 1 else _RESTART
    state.attempt[i] = attempt
    if state.gated and fx.pools is not None and not fx.pools.take(state, i, -1, attempt, reason):
        return  # waits for slots: the pools make it ready once it has them
    make_ready(state, i, attempt, reason, now, fx)


def make_ready(
    state: RunState, i: int, attempt: int, reason: AttemptReason, now: datetime, fx: Effects
) -> None:
    """Hand attempt ``attempt`` of task ``i`` to the workers (write its scheduled row
    on a shared storage)."""
    if fx.record_scheduled:
        # A sensor poked again keeps its first poke in its row, for a new leader.
        sensing = state.sensing.get(i) if state.sensing else None
        fx.task_runs.append(
            TaskRun(
                run_id=state.run.id,
                task_id=state.graph.ids[i],
                attempt=attempt,
                status=TaskStatus.scheduled,
                reason=reason,
                scheduled_at=now,
                started_at=None if sensing is None else sensing[0],
            )
        )
    _add_ready(state, i, reason, now, fx)


def _add_ready(state: RunState, i: int, reason: AttemptReason, now: datetime, fx: Effects) -> None:
    ready = fx.ready.get(state.run.id)
    if ready is None:
        ready = fx.ready[state.run.id] = Ready(state=state, at=now)
    ready.indices.append(i)
    ready.reasons.append(reason)


def _run(state: RunState, i: int, now: datetime, fx: Effects) -> None:
    """Start task ``i`` (all of its instances, if it is mapped)."""
    if state.graph.map_source and state.graph.map_source[i] >= 0:
        from .fanout import expand

        expand(state, i, now, fx)
    else:
        _schedule(state, i, None, now, fx)


def start_run(
    state: RunState, now: datetime, fx: Effects, *, trigger: RunTrigger | None = None
) -> None:
    """Move a queued run to running and schedule every task whose trigger rule is met."""
    run = state.run
    state.run = run = moved_run(
        run, DagRunStatus.running, trigger or run.trigger, run.started_at or now, None, None
    )
    fx.dag_runs.append(run)
    if state.dag.run_timeout is not None:
        fx.deadlines.append((now + state.dag.run_timeout, state))
    phase, waiting = state.phase, state.waiting
    if state.graph.plain:
        for i in range(len(phase)):
            if phase[i] == PENDING and waiting[i] == 0:
                _schedule(state, i, None, now, fx)
    else:
        _evaluate_pending(state, now, fx)
    _maybe_finish(state, now, fx)


def _evaluate_pending(state: RunState, now: datetime, fx: Effects) -> None:
    """Decide every pending task whose rule can be decided now, parents first."""
    for i in state.graph.order:
        if state.phase[i] == PENDING:
            found = _evaluate(state, i, "", now, fx)
            if found is not None:
                settle(state, i, found, None, now, fx)


def _evaluate(state: RunState, c: int, cause: str, now: datetime, fx: Effects) -> int | None:
    """Apply task ``c``'s trigger rule to what its parents did so far: run it, or
    write why it ends and return its phase (the caller settles it), or wait."""
    graph = state.graph
    rule = graph.tasks[c].trigger_rule
    total = len(graph.parents[c])
    bad, skips = state.bad[c], state.skips[c]
    decision = rules.decide(rule, total, total - state.waiting[c] - bad - skips, bad, skips)
    if decision == rules.RUN:
        _run(state, c, now, fx)
    elif decision == rules.SKIP:
        _end_row(
            state, c, SKIPPED, f"skipped: trigger rule {rule} can no longer be met{cause}", now, fx
        )
        return SKIPPED
    elif decision == rules.UPSTREAM_FAILED:
        failed = next(
            graph.ids[p] for p in graph.parents[c] if state.phase[p] in (FAILED, UPSTREAM_FAILED)
        )
        _end_row(state, c, UPSTREAM_FAILED, f"upstream task {failed!r} failed", now, fx)
        return UPSTREAM_FAILED
    return None


def _end_row(state: RunState, i: int, phase: int, error: str, now: datetime, fx: Effects) -> None:
    """The row of a task that ends without running (skipped, upstream_failed)."""
    state.attempt[i] += 1
    fx.task_runs.append(
        TaskRun(
            run_id=state.run.id,
            task_id=state.graph.ids[i],
            attempt=state.attempt[i],
            status=_PHASE_STATUS[phase],
            reason=AttemptReason.initial,
            scheduled_at=now,
            finished_at=now,
            error=error,
        )
    )


def settle(
    state: RunState,
    i: int,
    phase: int,
    result: Any,
    now: datetime,
    fx: Effects,
    *,
    chosen: frozenset[int] | None = None,
) -> None:
    """Task ``i`` ended (its row is written): tell its children, whose trigger rules
    may now be decided, and finish the run when every task has ended.

    ``chosen``: for a branch task, the children to follow; the others are skipped.
    Iterative: a failure at the head of a long chain settles the chain in a loop.
    """
    graph = state.graph
    work = [(i, phase, result, chosen)]
    while work:
        i, phase, result, chosen = work.pop()
        state.phase[i] = phase
        state.settled += 1
        if phase in (FAILED, UPSTREAM_FAILED):
            state.failed += 1
        elif phase == SUCCESS and graph.children[i]:
            state.results[i] = result
        for c in graph.children[i]:
            state.waiting[c] -= 1
            if phase in (FAILED, UPSTREAM_FAILED):
                state.bad[c] += 1
            elif phase != SUCCESS:
                state.skips[c] += 1
            if state.phase[c] != PENDING:
                continue
            if chosen is not None and c not in chosen:
                why = f"skipped: branch {graph.ids[i]!r} did not choose it"
                _end_row(state, c, SKIPPED, why, now, fx)
                found: int | None = SKIPPED
            else:
                found = _evaluate(
                    state, c, f" ({graph.ids[i]!r} ended {_PHASE_STATUS[phase]})", now, fx
                )
            if found is not None:
                state.phase[c] = found  # not PENDING: decided once
                work.append((c, found, None, None))
    _maybe_finish(state, now, fx)


def branch_choice(graph: Graph, i: int, result: Any) -> frozenset[int] | str:
    """The children a branch task chose, or why its result is not a valid choice."""
    ids = [result] if isinstance(result, str) else [] if result is None else result
    children = {graph.ids[c]: c for c in graph.children[i]}
    if isinstance(ids, list) and all(isinstance(x, str) and x in children for x in ids):
        return frozenset(children[x] for x in ids)
    return (
        f"branch task {graph.ids[i]!r} returned {result!r}; return the id of a direct "
        f"downstream task, a list of them, or None (valid ids: {', '.join(sorted(children))})"
    )


def plain_task_succeeded(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """``task_succeeded`` for a run whose tasks are all ``all_success``, unbranched and
    unmapped, and which is not cancelled (``state.plain``): the hot path."""
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


def task_succeeded(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """Record a successful attempt and schedule children whose rule it meets."""
    graph = state.graph
    if state.plain:
        plain_task_succeeded(state, i, tr, now, fx)
        return
    state.streak[i] = 0
    chosen = None
    if graph.tasks[i].branch:
        found = branch_choice(graph, i, tr.result)
        if isinstance(found, str):
            tr = attrs.evolve(tr, status=TaskStatus.failed, error=found, result=None)
            fx.task_runs.append(tr)
            _fail(state, i, tr, now, fx)
            return
        chosen = found
    fx.task_runs.append(tr)
    settle(state, i, SUCCESS, tr.result, now, fx, chosen=chosen)


def task_skipped(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """Record an attempt that raised ``SkipTask``: no retry is spent."""
    fx.task_runs.append(tr)
    state.streak[i] = 0
    settle(state, i, SKIPPED, None, now, fx)


def task_failed(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """Record a failed attempt: retry it if the error and the budget allow (an attempt
    reported ``failed`` rather than ``up_for_retry`` is not retried), else fail it."""
    task = state.graph.tasks[i]
    state.streak[i] = 0
    state.failures[i] += 1
    failures = state.failures[i]
    if failures <= task.retries and tr.status is not TaskStatus.failed:
        tr = attrs.evolve(tr, status=TaskStatus.up_for_retry)
        fx.task_runs.append(tr)
        due = now + task.retry_delay_for(failures)
        fx.retries.append((due, state, i, tr.attempt, -1))
        state.retrying.add((i, -1))
        if task.alert_on_retry:
            fx.alerts.append((state, i, tr, "retry"))
        return
    tr = attrs.evolve(tr, status=TaskStatus.failed)
    fx.task_runs.append(tr)
    _fail(state, i, tr, now, fx)


def _fail(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    if state.graph.tasks[i].alert_on_failure:
        fx.alerts.append((state, i, tr, "failure"))
    settle(state, i, FAILED, None, now, fx)


def retry_due(state: RunState, i: int, attempt: int, now: datetime, fx: Effects) -> None:
    """Create the next attempt of a task whose retry delay has passed, or poke a
    sensor again (the same attempt)."""
    if state.phase[i] == LIVE and state.attempt[i] == attempt:
        state.retrying.discard((i, -1))
        sensing = state.sensing.get(i)
        if sensing is not None:
            reason = sensing[1]
            pools = fx.pools if state.gated else None
            if pools is not None and not pools.take(state, i, -1, attempt, reason):
                return  # waits for slots: the pools make it ready once it has them
            make_ready(state, i, attempt, reason, now, fx)
            return
        _schedule(state, i, AttemptReason.retry, now, fx)


def sensor_waits(state: RunState, i: int, tr: TaskRun, now: datetime, fx: Effects) -> None:
    """A sensor's poke found its condition not holding: its attempt waits for the
    next poke (a timer; no worker, no slot), or fails once past its timeout.

    The row keeps the first poke as ``started_at``: the poke schedule and the
    deadline follow from it, so a restart resumes the wait (see ``recovery``)."""
    poking = state.graph.tasks[i].sensor
    assert poking is not None
    first, reason = state.sensing.get(i) or (tr.started_at or now, tr.reason)
    deadline = first + poking.timeout
    if now >= deadline:
        state.sensing.pop(i, None)
        tr = attrs.evolve(
            tr,
            status=TaskStatus.failed,
            started_at=first,
            error=(
                f"SensorTimeout: sensor {tr.task_id!r} found its condition still not "
                f"holding {poking.timeout} after its first poke (timeout); raise the "
                "sensor's timeout or check what it waits for"
            ),
        )
        fx.task_runs.append(tr)
        _fail(state, i, tr, now, fx)
        return
    state.sensing[i] = (first, reason)
    fx.task_runs.append(
        attrs.evolve(tr, status=TaskStatus.up_for_reschedule, started_at=first, result=None)
    )
    due = min(poking.next_poke(first, now), deadline)
    fx.retries.append((due, state, i, tr.attempt, -1))
    state.retrying.add((i, -1))


def sensor_ended(state: RunState, i: int, tr: TaskRun, *, keep: bool = False) -> TaskRun:
    """A sensor's attempt ended otherwise (its condition held, or it failed): its row
    spans the whole wait, from the first poke. ``keep``: it only started a poke."""
    found = state.sensing.get(i) if keep else state.sensing.pop(i, None)
    return tr if found is None else attrs.evolve(tr, started_at=found[0])


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
        tr = _crash_looped(tr, state.streak[i], now)
        fx.task_runs.append(tr)
        _fail(state, i, tr, now, fx)
        return
    fx.task_runs.append(
        attrs.evolve(tr, status=TaskStatus.interrupted, finished_at=tr.finished_at or now)
    )
    if resume:
        _schedule(state, i, AttemptReason.interrupted, now, fx)


def _crash_looped(tr: TaskRun, streak: int, now: datetime) -> TaskRun:
    return attrs.evolve(
        tr,
        status=TaskStatus.failed,
        finished_at=tr.finished_at or now,
        error=(
            f"interrupted {streak} times in a row (the scheduler stopped or "
            "crashed while it ran); not run again to avoid a crash loop. Fix the cause "
            "and restart the run."
        ),
    )


def cancel_run(state: RunState, note: str, now: datetime, fx: Effects) -> None:
    """End a run ``cancelled``: its live attempts are recorded ``cancelled`` (the
    caller stops those executing) and tasks that did not start never will."""
    if state.finished:
        return
    state.cancelled = True
    state.plain = False
    ids, run_id = state.graph.ids, state.run.id
    for i, phase in enumerate(state.phase):
        if phase == LIVE:
            mapped = state.maps.get(i)
            if mapped is None:
                waits = (i, -1) in state.retrying and i not in state.sensing
                attempt = state.attempt[i]
                fx.task_runs.append(_cancelled(run_id, ids[i], attempt, waits, now, note))
            else:
                for k, instance in enumerate(mapped.phase):
                    if instance == LIVE:
                        task_id = instance_id(ids[i], k)
                        waits = (i, k) in state.retrying
                        attempt = mapped.attempt[k]
                        fx.task_runs.append(_cancelled(run_id, task_id, attempt, waits, now, note))
                        mapped.phase[k] = CANCELLED
        if phase in (LIVE, PENDING):
            state.phase[i] = CANCELLED
            state.settled += 1
    fx.cancelled.append(state)
    state.run = attrs.evolve(state.run, note=note)
    _finish(state, now, fx)


def _cancelled(
    run_id: int, task_id: str, attempt: int, retrying: bool, now: datetime, note: str
) -> TaskRun:
    """The row of a live attempt of a cancelled run. Written over the attempt's row (its
    start time, if it started, is not known here; its own outcome is ignored when it
    comes); for a task waiting to be retried, the retry that never runs, keeping the
    failed attempt's row and error."""
    if retrying:
        attempt += 1
    return TaskRun(
        run_id=run_id,
        task_id=task_id,
        attempt=max(attempt, 1),
        status=TaskStatus.cancelled,
        reason=AttemptReason.initial if attempt <= 1 else AttemptReason.retry,
        scheduled_at=now,
        finished_at=now,
        error=note,
    )


def _maybe_finish(state: RunState, now: datetime, fx: Effects) -> None:
    if state.settled == len(state.phase) and state.run.finished_at is None:
        _finish(state, now, fx)


def _finish(state: RunState, now: datetime, fx: Effects) -> None:
    if state.cancelled:
        status = DagRunStatus.cancelled
    else:
        status = DagRunStatus.failed if state.failed else DagRunStatus.success
    run = state.run
    state.run = moved_run(run, status, run.trigger, run.started_at, now, run.note)
    fx.dag_runs.append(state.run)
    fx.finished.append(state)
