"""The pure state functions (no storage, no event loop) on richer DAGs: every trigger
rule against every combination of two parents' outcomes (the first parent ends first),
branching, mapping and cancel."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from ppacer_async import DAG, DagRun, DagRunStatus, RunTrigger, TaskStatus, TriggerRule, task
from ppacer_async._scheduler import fanout
from ppacer_async._scheduler import state as st
from ppacer_async._scheduler.rules import RUN, SKIP, UPSTREAM_FAILED, WAIT
from ppacer_async._scheduler.upstream import Instances
from ppacer_async._structures import TaskRun

from .test_trigger_rules import OUTCOMES, PENDING, _oracle

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _noop(ctx: object) -> None: ...


def _run() -> DagRun:
    return DagRun(
        id=1,
        dag_id="d",
        logical_time=T0,
        status=DagRunStatus.queued,
        trigger=RunTrigger.manual,
        created_at=T0,
    )


def _outcome(
    state: st.RunState, task_id: str, status: TaskStatus, result: object = None
) -> TaskRun:
    i = state.graph.index[task_id]
    return TaskRun(
        run_id=1, task_id=task_id, attempt=state.attempt[i], status=status, result=result
    )


def _end(state: st.RunState, fx: st.Effects, task_id: str, outcome: str) -> None:
    i = state.graph.index[task_id]
    if outcome == "success":
        st.task_succeeded(state, i, _outcome(state, task_id, TaskStatus.success), T0, fx)
    elif outcome == "failed":
        st.task_failed(state, i, _outcome(state, task_id, TaskStatus.failed), T0, fx)
    elif outcome == "skipped":
        st.task_skipped(state, i, _outcome(state, task_id, TaskStatus.skipped), T0, fx)


def _status_of(fx: st.Effects, task_id: str) -> TaskStatus | None:
    rows = [tr for tr in fx.task_runs if tr.task_id == task_id]
    return rows[-1].status if rows else None


_DECISION = {
    RUN: "ready",
    WAIT: "pending",
    SKIP: TaskStatus.skipped,
    UPSTREAM_FAILED: TaskStatus.upstream_failed,
}

_CASES = [
    (rule, pair)
    for rule in TriggerRule
    for pair in itertools.product((*OUTCOMES, PENDING), repeat=2)
]


@pytest.mark.parametrize(("rule", "parents"), _CASES, ids=[f"{r}-{'+'.join(p)}" for r, p in _CASES])
def test_child_of_two_parents_follows_its_rule_through_the_state_functions(
    rule: TriggerRule, parents: tuple[str, str]
) -> None:
    r1, r2 = task(_noop, id="r1"), task(_noop, id="r2")
    p1, p2 = task(_noop, id="p1"), task(_noop, id="p2")
    child = task(_noop, id="c", trigger_rule=rule)
    dag = DAG("d").add(r1 >> p1 >> child, r2 >> p2 >> child)
    state = st.RunState.new(_run(), dag)
    fx = st.Effects()
    st.start_run(state, T0, fx)
    for root, parent, outcome in (("r1", "p1", parents[0]), ("r2", "p2", parents[1])):
        _end(state, fx, root, "failed" if outcome == "upstream_failed" else "success")
        if outcome in ("success", "failed", "skipped"):
            _end(state, fx, parent, outcome)
    c = state.graph.index["c"]
    # Decided as soon as it is known: the first parent ends first.
    first = _oracle(rule, (parents[0], PENDING))
    expected = _DECISION[first if first != WAIT else _oracle(rule, parents)]
    if expected == "ready":
        assert state.phase[c] == st.LIVE
        assert c in fx.ready[1].indices
    elif expected == "pending":
        assert state.phase[c] == st.PENDING
        assert _status_of(fx, "c") is None
    else:
        assert _status_of(fx, "c") is expected
    # The run fails only for failures, never for skips.
    if not any(o == PENDING for o in parents) and expected != "ready":
        assert state.finished
        failed = any(o in ("failed", "upstream_failed") for o in parents) or (
            expected is TaskStatus.upstream_failed
        )
        assert state.run.status is (DagRunStatus.failed if failed else DagRunStatus.success)


def test_branch_skips_the_children_it_did_not_choose() -> None:
    pick = task.branch(_noop, id="pick")
    a, b, c = task(_noop, id="a"), task(_noop, id="b"), task(_noop, id="c")
    after_b = task(_noop, id="after_b")
    dag = DAG("d").add(pick >> [a, b >> after_b, c])
    state = st.RunState.new(_run(), dag)
    fx = st.Effects()
    st.start_run(state, T0, fx)
    i = state.graph.index["pick"]
    st.task_succeeded(state, i, _outcome(state, "pick", TaskStatus.success, ["a", "c"]), T0, fx)
    assert _status_of(fx, "b") is TaskStatus.skipped
    assert _status_of(fx, "after_b") is TaskStatus.skipped
    assert sorted(state.graph.ids[k] for k in fx.ready[1].indices) == ["a", "c", "pick"]


def test_a_mapped_task_expands_and_gathers_results_in_index_order() -> None:
    split, process, combine = (
        task(_noop, id="split"),
        task(_noop, id="process"),
        task(_noop, id="combine"),
    )
    dag = DAG("d").add(split >> process.map("split") >> combine)
    state = st.RunState.new(_run(), dag)
    fx = st.Effects()
    st.start_run(state, T0, fx)
    i = state.graph.index["process"]
    st.task_succeeded(
        state, 0, _outcome(state, "split", TaskStatus.success, ["x", "y", "z"]), T0, fx
    )
    # One queue item for the first attempts of every instance: a worker runs them.
    queued = [(j, work) for _, j, work in fx.ready[1].items() if j == i]
    assert [(j, work.start, work.stop) for j, work in queued if isinstance(work, Instances)] == [
        (i, 0, 3)
    ]
    assert len(queued) == 1 and len(fx.ready[1]) == 4  # split's attempt, then 3 instances
    for k in (2, 0, 1):  # in any order
        tr = TaskRun(
            run_id=1, task_id=f"process[{k}]", attempt=1, status=TaskStatus.success, result=k * 10
        )
        fanout.instance_succeeded(state, i, k, tr, T0, fx)
    assert state.results[i] == [0, 10, 20]
    assert _status_of(fx, "process") is TaskStatus.success
    assert state.phase[state.graph.index["combine"]] == st.LIVE


def test_cancel_settles_every_task_and_records_live_attempts() -> None:
    a, b = task(_noop, id="a"), task(_noop, id="b")
    dag = DAG("d").add(a >> b)
    state = st.RunState.new(_run(), dag)
    fx = st.Effects()
    st.start_run(state, T0, fx)
    fx = st.Effects()
    st.cancel_run(state, "stop", T0, fx)
    assert state.run.status is DagRunStatus.cancelled and state.run.note == "stop"
    assert [(tr.task_id, tr.status) for tr in fx.task_runs] == [("a", TaskStatus.cancelled)]
    assert fx.cancelled == [state] and fx.finished == [state]
