"""Dynamic fan-out (pure, like ``state.py``): a mapped task becomes one instance per
element of its upstream's list, each with attempts of its own (``process[3]``); when
all have ended, the task ends with the list of their results, in index order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from .._enums import AttemptReason, TaskStatus
from .._structures import TaskRun, instance_id, split_instance_id
from .recovery import count_budget
from .state import (
    FAILED,
    LIVE,
    MAX_INTERRUPTIONS,
    SKIPPED,
    SUCCESS,
    Effects,
    MapState,
    Ready,
    RunState,
    _crash_looped,
    _end_row,
    _fail,
    settle,
)

#: Failed instances named in the mapped task's error, at most.
_NAMED = 5


def expand(state: RunState, i: int, now: datetime, fx: Effects) -> None:
    """Make the instances of mapped task ``i`` from its source's result, keeping what
    stored attempts say (recovery, restart)."""
    graph = state.graph
    task = graph.tasks[i]
    source = graph.map_source[i]
    source_id = graph.ids[source]
    stored = state.stored_instances.pop(i, [])
    items = state.results.get(source)
    problem = None
    if state.phase[source] != SUCCESS:
        _end_row(
            state, i, SKIPPED, f"skipped: nothing to map, {source_id!r} did not succeed", now, fx
        )
        settle(state, i, SKIPPED, None, now, fx)
        return
    if not isinstance(items, list):
        problem = (
            f"task {task.id!r} maps over the result of {source_id!r}, which is "
            f"{type(items).__name__}, not a list; make {source_id!r} return a list"
        )
    elif len(items) > task.max_map_length:
        problem = (
            f"task {task.id!r} maps over {len(items)} elements of {source_id!r}, more than "
            f"its max_map_length={task.max_map_length}; raise max_map_length in "
            f"@task(max_map_length=...) or return fewer elements"
        )
    if problem is not None:
        _end_row(state, i, FAILED, problem, now, fx)
        tr = fx.task_runs[-1]
        _fail(state, i, tr, now, fx)
        return
    assert isinstance(items, list)
    if not items:
        why = f"skipped: {source_id!r} returned an empty list, nothing to map"
        _end_row(state, i, SKIPPED, why, now, fx)
        settle(state, i, SKIPPED, None, now, fx)
        return
    n = len(items)
    mapped = state.maps[i] = MapState.new(n)
    state.phase[i] = LIVE
    if not stored and not fx.record_scheduled and not state.gated:
        # Every instance makes its first attempt: one entry, not one per instance.
        mapped.phase[:] = bytes([LIVE]) * n
        mapped.attempt[:] = [1] * n
        _ready(state, now, fx).expanded.append((i, n))
        return
    by_index: dict[int, list[TaskRun]] = {}
    for tr in stored:
        k = split_instance_id(tr.task_id)[1]
        if k is not None and k < n:
            by_index.setdefault(k, []).append(tr)
    resume: list[tuple[int, TaskRun]] = []
    for k in range(n):
        attempts = by_index.get(k)
        if not attempts:
            _schedule_instance(state, i, k, None, now, fx)
            continue
        attempts.sort(key=lambda t: t.attempt)
        tr = attempts[-1]
        mapped.attempt[k] = tr.attempt
        mapped.failures[k], mapped.streak[k] = count_budget(attempts)
        status = tr.status
        if status is TaskStatus.success:
            _settle_instance(mapped, k, SUCCESS, tr.result)
        elif status is TaskStatus.skipped:
            _settle_instance(mapped, k, SKIPPED, None)
        elif status is TaskStatus.failed and not state.restarting:
            _settle_instance(mapped, k, FAILED, None)
        elif status in (TaskStatus.failed, TaskStatus.cancelled, TaskStatus.upstream_failed):
            mapped.failures[k] = mapped.streak[k] = 0
            _schedule_instance(state, i, k, AttemptReason.restart, now, fx)
        elif status is TaskStatus.scheduled:
            mapped.phase[k] = LIVE
            if state.gated and fx.pools is not None:
                fx.pools.hold(state, i, tr.task_id, tr.attempt)
            _ready(state, now, fx).instances.append((i, k, tr.reason))
        elif status is TaskStatus.up_for_retry:
            mapped.phase[k] = LIVE
            due = (tr.finished_at or now) + task.retry_delay_for(mapped.failures[k])
            fx.retries.append((due, state, i, tr.attempt, k))
            state.retrying.add((i, k))
        elif fx.record_scheduled and status is TaskStatus.running:
            mapped.phase[k] = LIVE  # leased by a process, or about to be reaped
            if state.gated and fx.pools is not None:
                fx.pools.hold(state, i, tr.task_id, tr.attempt)
        else:  # running or interrupted: cut short by a crash or a stop
            mapped.phase[k] = LIVE
            resume.append((k, tr))
    for k, tr in resume:
        if tr.status is TaskStatus.running:
            instance_interrupted(state, i, k, tr, now, fx, resume=True)
        elif mapped.streak[k] >= MAX_INTERRUPTIONS:
            mapped.streak[k] -= 1
            instance_interrupted(state, i, k, tr, now, fx, resume=True)
        else:
            _schedule_instance(state, i, k, AttemptReason.interrupted, now, fx)
    if mapped.settled == n:
        all_ended(state, i, now, fx)


def _ready(state: RunState, now: datetime, fx: Effects) -> Ready:
    ready = fx.ready.get(state.run.id)
    if ready is None:
        ready = fx.ready[state.run.id] = Ready(state=state, at=now)
    return ready


def _schedule_instance(
    state: RunState, i: int, k: int, reason: AttemptReason | None, now: datetime, fx: Effects
) -> None:
    mapped = state.maps[i]
    mapped.phase[k] = LIVE
    attempt = mapped.attempt[k] + 1
    if reason is None:
        reason = AttemptReason.initial if attempt == 1 else AttemptReason.restart
    mapped.attempt[k] = attempt
    if state.gated and fx.pools is not None and not fx.pools.take(state, i, k, attempt, reason):
        return  # waits for slots: the pools make it ready once it has them
    make_instance_ready(state, i, k, attempt, reason, now, fx)


def make_instance_ready(
    state: RunState,
    i: int,
    k: int,
    attempt: int,
    reason: AttemptReason,
    now: datetime,
    fx: Effects,
) -> None:
    """Hand an attempt of instance ``k`` of mapped task ``i`` to the workers."""
    if fx.record_scheduled:
        fx.task_runs.append(
            TaskRun(
                run_id=state.run.id,
                task_id=instance_id(state.graph.ids[i], k),
                attempt=attempt,
                status=TaskStatus.scheduled,
                reason=reason,
                scheduled_at=now,
            )
        )
    _ready(state, now, fx).instances.append((i, k, reason))


def _settle_instance(mapped: MapState, k: int, phase: int, result: Any) -> None:
    mapped.phase[k] = phase
    mapped.settled += 1
    if phase == FAILED:
        mapped.failed += 1
    else:
        mapped.results[k] = result


def instance_succeeded(
    state: RunState, i: int, k: int, tr: TaskRun, now: datetime, fx: Effects
) -> None:
    fx.task_runs.append(tr)
    mapped = state.maps[i]
    mapped.streak[k] = 0
    _settle_instance(mapped, k, SUCCESS, tr.result)
    if mapped.settled == len(mapped.phase):
        all_ended(state, i, now, fx)


def instance_skipped(
    state: RunState, i: int, k: int, tr: TaskRun, now: datetime, fx: Effects
) -> None:
    fx.task_runs.append(tr)
    mapped = state.maps[i]
    mapped.streak[k] = 0
    _settle_instance(mapped, k, SKIPPED, None)
    if mapped.settled == len(mapped.phase):
        all_ended(state, i, now, fx)


def instance_failed(
    state: RunState, i: int, k: int, tr: TaskRun, now: datetime, fx: Effects
) -> None:
    """Retry one instance if the error and its budget allow, else it has failed."""
    task = state.graph.tasks[i]
    mapped = state.maps[i]
    mapped.streak[k] = 0
    mapped.failures[k] += 1
    failures = mapped.failures[k]
    if failures <= task.retries and tr.status is not TaskStatus.failed:
        tr = attrs.evolve(tr, status=TaskStatus.up_for_retry)
        fx.task_runs.append(tr)
        fx.retries.append((now + task.retry_delay_for(failures), state, i, tr.attempt, k))
        state.retrying.add((i, k))
        if task.alert_on_retry:
            fx.alerts.append((state, i, tr, "retry"))
        return
    tr = attrs.evolve(tr, status=TaskStatus.failed)
    fx.task_runs.append(tr)
    if task.alert_on_failure:
        fx.alerts.append((state, i, tr, "failure"))
    _settle_instance(mapped, k, FAILED, None)
    if mapped.settled == len(mapped.phase):
        all_ended(state, i, now, fx)


def instance_retry_due(
    state: RunState, i: int, k: int, attempt: int, now: datetime, fx: Effects
) -> None:
    mapped = state.maps.get(i)
    if mapped is not None and mapped.phase[k] == LIVE and mapped.attempt[k] == attempt:
        state.retrying.discard((i, k))
        _schedule_instance(state, i, k, AttemptReason.retry, now, fx)


def instance_interrupted(
    state: RunState, i: int, k: int, tr: TaskRun, now: datetime, fx: Effects, *, resume: bool
) -> None:
    """An instance's attempt was cut short: as ``task_interrupted``, one by one."""
    mapped = state.maps[i]
    mapped.streak[k] += 1
    if mapped.streak[k] >= MAX_INTERRUPTIONS:
        tr = _crash_looped(tr, mapped.streak[k], now)
        fx.task_runs.append(tr)
        _settle_instance(mapped, k, FAILED, None)
        if mapped.settled == len(mapped.phase):
            all_ended(state, i, now, fx)
        return
    fx.task_runs.append(
        attrs.evolve(tr, status=TaskStatus.interrupted, finished_at=tr.finished_at or now)
    )
    if resume:
        _schedule_instance(state, i, k, AttemptReason.interrupted, now, fx)


def all_ended(state: RunState, i: int, now: datetime, fx: Effects) -> None:
    """Every instance ended: the mapped task ends with a row of its own, holding the
    list of results (or naming the instances that failed)."""
    mapped = state.maps[i]
    task_id = state.graph.ids[i]
    state.attempt[i] += 1
    failed = [instance_id(task_id, k) for k, p in enumerate(mapped.phase) if p == FAILED]
    row = TaskRun(
        run_id=state.run.id,
        task_id=task_id,
        attempt=state.attempt[i],
        status=TaskStatus.failed if failed else TaskStatus.success,
        reason=AttemptReason.initial,
        scheduled_at=now,
        finished_at=now,
        error=(
            f"{len(failed)} of {len(mapped.phase)} instances failed: "
            + ", ".join(failed[:_NAMED])
            + (", ..." if len(failed) > _NAMED else "")
            if failed
            else None
        ),
        result=None if failed else mapped.results,
    )
    fx.task_runs.append(row)
    settle(state, i, FAILED if failed else SUCCESS, row.result, now, fx)
