"""Rebuilding a run's state from its stored attempts (pure, like ``state.py``)."""

from __future__ import annotations

from datetime import datetime

from .._dag import DAG
from .._enums import AttemptReason, TaskStatus
from .._structures import DagRun, TaskRun, split_instance_id
from . import rules
from .state import (
    FAILED,
    LIVE,
    MAX_INTERRUPTIONS,
    PENDING,
    SKIPPED,
    SUCCESS,
    UPSTREAM_FAILED,
    Effects,
    RunState,
    _add_ready,
    _evaluate_pending,
    _maybe_finish,
    _schedule,
    branch_choice,
    task_interrupted,
)

_DERIVED = {TaskStatus.skipped: SKIPPED, TaskStatus.upstream_failed: UPSTREAM_FAILED}


_SENSING = (TaskStatus.up_for_reschedule, TaskStatus.running, TaskStatus.interrupted)


def count_budget(attempts: list[TaskRun]) -> tuple[int, int]:
    """Failures since the last fresh start and interruptions in a row, counted back
    from the latest of one task's attempts (sorted by attempt)."""
    failures = streak = 0
    for k, tr in enumerate(reversed(attempts)):
        if tr.status is TaskStatus.interrupted:
            streak += 1
        elif not (k == 0 and tr.status is TaskStatus.running):  # counted when resumed
            break
    for tr in reversed(attempts):
        if tr.status in (TaskStatus.up_for_retry, TaskStatus.failed):
            failures += 1
        if tr.reason in (AttemptReason.initial, AttemptReason.restart):
            break
    return failures, streak


def _mark(state: RunState, i: int, phase: int, result: object = None) -> None:
    """Settle a task as stored, without deciding its children (they come later in
    topological order and read the counters updated here)."""
    state.phase[i] = phase
    state.settled += 1
    graph = state.graph
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
    get their timers back. Restart (``restart=True``): failed, cancelled and
    upstream-failed tasks are reset to run again with new attempt numbers and a fresh
    retry budget.

    ``shared``: other processes may still be running the ``running`` attempts (under a
    lease), so they stay live; their outcome, or the reaper's ``interrupted``, comes
    later.

    A row of a task that never ran (``skipped`` or ``upstream_failed`` by its trigger
    rule) holds only while its parents still say so: after a restart, the rows of
    tasks downstream of a retried failure belong to the previous attempt.
    """
    state = RunState.new(run, dag)
    graph = dag.graph
    index = graph.index
    latest: dict[int, TaskRun] = {}
    by_task: dict[int, list[TaskRun]] = {}
    for tr in rows:
        i = index.get(tr.task_id)
        if i is None:
            base, k = split_instance_id(tr.task_id)
            j = index.get(base)
            if j is not None and k is not None:
                state.stored_instances.setdefault(j, []).append(tr)
            continue  # else: the task was removed from the DAG since this run started
        prev = latest.get(i)
        if prev is None or tr.attempt > prev.attempt:
            latest[i] = tr
        state.attempt[i] = max(state.attempt[i], tr.attempt)
        by_task.setdefault(i, []).append(tr)
    for i, attempts in by_task.items():
        attempts.sort(key=lambda t: t.attempt)
        state.failures[i], state.streak[i] = count_budget(attempts)
    if restart:
        state.restarting = True

    resume: list[tuple[int, TaskRun]] = []
    phase = state.phase
    unchosen: set[int] = set()
    for i in graph.order:  # parents first: a child reads what its parents did
        found = latest.get(i)
        if found is None:
            continue
        tr = found
        status = tr.status
        if status is TaskStatus.success:
            _mark(state, i, SUCCESS, tr.result)
            if graph.tasks[i].branch:
                chosen = branch_choice(graph, i, tr.result)
                if not isinstance(chosen, str):
                    unchosen.update(c for c in graph.children[i] if c not in chosen)
        elif status is TaskStatus.upstream_failed or (
            status is TaskStatus.skipped and tr.started_at is None
        ):  # decided by its trigger rule (a skip with a start raised SkipTask)
            if i in unchosen:
                _mark(state, i, SKIPPED)
                continue
            total = len(graph.parents[i])
            bad, skips = state.bad[i], state.skips[i]
            decision = rules.decide(
                graph.tasks[i].trigger_rule,
                total,
                total - state.waiting[i] - bad - skips,
                bad,
                skips,
            )
            expanded_empty = graph.map_source[i] >= 0 and decision == rules.RUN
            if (
                (decision == rules.SKIP and status is TaskStatus.skipped)
                or (decision == rules.UPSTREAM_FAILED and status is TaskStatus.upstream_failed)
                or (expanded_empty and status is TaskStatus.skipped and not restart)
            ):
                _mark(state, i, _DERIVED[status])
            # else: stale, decided again below
        elif status is TaskStatus.skipped:  # the task raised SkipTask
            _mark(state, i, SKIPPED)
        elif status is TaskStatus.failed or status is TaskStatus.cancelled:
            if restart or status is TaskStatus.cancelled:
                state.failures[i] = 0
                state.streak[i] = 0
                continue  # PENDING: start_run decides it again
            _mark(state, i, FAILED)
        elif status is TaskStatus.scheduled:
            phase[i] = LIVE
            if state.gated and fx.pools is not None:
                fx.pools.hold(state, i, tr.task_id, tr.attempt)
            if graph.tasks[i].sensor is not None and tr.started_at is not None:
                state.sensing[i] = (tr.started_at, tr.reason)  # poked again: see make_ready
            _add_ready(state, i, tr.reason, now, fx)
        elif status is TaskStatus.up_for_retry:
            phase[i] = LIVE
            task = graph.tasks[i]
            finished = tr.finished_at or now
            due = finished + task.retry_delay_for(state.failures[i])
            fx.retries.append((due, state, i, tr.attempt, -1))
            state.retrying.add((i, -1))
        elif shared and status is TaskStatus.running:
            phase[i] = LIVE  # still leased by a process, or about to be reaped
            if state.gated and fx.pools is not None:
                fx.pools.hold(state, i, tr.task_id, tr.attempt)
            if graph.tasks[i].sensor is not None and tr.started_at is not None:
                state.sensing[i] = (tr.started_at, tr.reason)  # the first poke (claim)
        elif graph.tasks[i].sensor is not None and status in _SENSING:
            # Waiting for its next poke, or cut short while poking: the wait goes on
            # from its first poke (started_at), with the same deadline.
            phase[i] = LIVE
            first = tr.started_at or now
            state.sensing[i] = (first, tr.reason)
            due = now
            if status is TaskStatus.up_for_reschedule:
                poking = graph.tasks[i].sensor
                assert poking is not None
                due = min(poking.next_poke(first, tr.finished_at or now), first + poking.timeout)
            fx.retries.append((due, state, i, tr.attempt, -1))
            state.retrying.add((i, -1))
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
        # Tasks whose rule can be decided but which have no live attempt (a row that
        # predates a restart, a ready attempt never written) are decided now.
        if graph.plain:
            for i in range(len(phase)):
                if phase[i] == PENDING and state.waiting[i] == 0:
                    _schedule(state, i, None, now, fx)
        else:
            _evaluate_pending(state, now, fx)
        _maybe_finish(state, now, fx)
    return state
