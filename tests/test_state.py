"""The pure transitions of ``_scheduler/state.py``, table by table: no storage, no event
loop. Each case builds a DAG from a short spec ("a>b>c, a>d"), plays steps on one
run's state and compares what the last step writes, makes ready, arms and alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from ppacer_async import DAG, DagRunStatus, TaskContext, TaskStatus, task
from ppacer_async._enums import AttemptReason, RunTrigger
from ppacer_async._scheduler import recovery
from ppacer_async._scheduler import state as transitions
from ppacer_async._scheduler.state import MAX_INTERRUPTIONS, Effects, RunState
from ppacer_async._structures import DagRun, TaskRun, moved_run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
BOOM = "Traceback (most recent call last):\nValueError: boom"


def noop(ctx: TaskContext) -> None: ...


def build(spec: str, options: dict[str, dict[str, Any]] | None = None) -> DAG:
    """A DAG from chains separated by commas: ``"a>b>c, a>d"``; ``"a, b"`` has no edges."""
    options = options or {}
    tasks: dict[str, Any] = {}
    dag = DAG("d")
    for chain in spec.split(","):
        ids = [part.strip() for part in chain.split(">")]
        for task_id in ids:
            if task_id not in tasks:
                tasks[task_id] = task(noop, id=task_id, **options.get(task_id, {}))
        flow: Any = tasks[ids[0]]
        for task_id in ids[1:]:
            flow = flow >> tasks[task_id]
        dag.add(flow)
    return dag


def queued_run(trigger: RunTrigger = RunTrigger.manual) -> DagRun:
    return DagRun(
        id=1,
        dag_id="d",
        logical_time=T0,
        status=DagRunStatus.queued,
        trigger=trigger,
        created_at=T0,
    )


def row(text: str) -> TaskRun:
    """A stored attempt from ``"b#2 running"`` or ``"b#2 running retry"`` (its reason)."""
    name, status, *reason = text.split()
    task_id, attempt = name.split("#")
    finished = TaskStatus(status).finished
    return TaskRun(
        run_id=1,
        task_id=task_id,
        attempt=int(attempt),
        status=TaskStatus(status),
        reason=AttemptReason(reason[0]) if reason else AttemptReason.initial,
        scheduled_at=T0,
        started_at=T0,
        finished_at=T0 if finished else None,
        error=BOOM if status in ("failed", "up_for_retry") else None,
        result=f"result of {task_id}" if status == "success" else None,
    )


class Play:
    """One run's state and the steps played on it; ``fx`` is the last step's effects."""

    def __init__(self, state: RunState, *, record_scheduled: bool = False) -> None:
        self.state = state
        self.record_scheduled = record_scheduled
        self.fx = Effects(record_scheduled=record_scheduled)

    @classmethod
    def new(cls, dag: DAG, *, record_scheduled: bool = False) -> Play:
        return cls(RunState.new(queued_run(), dag), record_scheduled=record_scheduled)

    def steps(self, *steps: str) -> Play:
        for step in steps:
            self.step(step)
        return self

    def step(self, step: str) -> Effects:
        """``start``; ``ok a``, ``fail a``: the live attempt of ``a`` ended; ``retry a``:
        its retry delay passed; ``interrupt a`` (resumed at once), ``stop a`` (left for
        the next start)."""
        state = self.state
        fx = self.fx = Effects(record_scheduled=self.record_scheduled)
        verb, _, task_id = step.partition(" ")
        if verb == "start":
            transitions.start_run(state, NOW, fx)
            return fx
        i = state.graph.index[task_id]
        attempt = state.attempt[i]
        if verb == "retry":
            transitions.retry_due(state, i, attempt, NOW, fx)
            return fx
        tr = TaskRun(
            run_id=state.run.id,
            task_id=task_id,
            attempt=attempt,
            # A worker reports a failure it may be retried for as up_for_retry; the
            # machine decides whether the budget allows it.
            status=TaskStatus.success if verb == "ok" else TaskStatus.up_for_retry,
            started_at=NOW,
            finished_at=NOW,
            error=None if verb == "ok" else BOOM,
            result=f"result of {task_id}" if verb == "ok" else None,
        )
        if verb == "ok":
            transitions.task_succeeded(state, i, tr, NOW, fx)
        elif verb == "fail":
            transitions.task_failed(state, i, tr, NOW, fx)
        elif verb in ("interrupt", "stop"):
            running = TaskRun(
                run_id=state.run.id,
                task_id=task_id,
                attempt=attempt,
                status=TaskStatus.running,
                started_at=NOW,
            )
            transitions.task_interrupted(state, i, running, NOW, fx, resume=verb == "interrupt")
        else:
            raise AssertionError(f"unknown step {step!r}")
        return fx

    # -- what the last step did, as short strings ----------------------------------------

    @property
    def writes(self) -> list[str]:
        return [f"{tr.task_id}#{tr.attempt} {tr.status}" for tr in self.fx.task_runs]

    @property
    def ready(self) -> list[str]:
        fx, ids = self.fx, self.state.graph.ids
        return [
            f"{ids[i]}#{self.state.attempt[i]} {reason}"
            for ready in fx.ready.values()
            for i, reason in zip(ready.indices, ready.reasons, strict=True)
        ]

    @property
    def retries(self) -> list[str]:
        ids = self.state.graph.ids
        return [
            f"{ids[i]}#{attempt} in {(due - NOW).total_seconds():g}s"
            for due, _, i, attempt, _ in self.fx.retries
        ]

    @property
    def alerts(self) -> list[str]:
        return [f"{kind} {tr.task_id}#{tr.attempt}" for _, _, tr, kind in self.fx.alerts]

    def status(self) -> DagRunStatus:
        """The run's status (a call: mypy would keep a property's value narrowed)."""
        return self.state.run.status


# -- start_run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ready", "status"),
    [
        pytest.param("a>b>c", ["a#1 initial"], DagRunStatus.running, id="chain-starts-its-root"),
        pytest.param(
            "a>c, b>c", ["a#1 initial", "b#1 initial"], DagRunStatus.running, id="every-root"
        ),
        pytest.param(
            "a>b, c", ["a#1 initial", "c#1 initial"], DagRunStatus.running, id="isolated-task"
        ),
    ],
)
def test_start_run_makes_the_roots_ready_and_the_run_running(
    spec: str, ready: list[str], status: DagRunStatus
) -> None:
    play = Play.new(build(spec))
    play.step("start")
    assert play.ready == ready
    assert play.status() is status
    assert play.state.run.started_at == NOW
    assert play.fx.dag_runs == [play.state.run]
    assert play.writes == []  # one process: readiness follows from the parents' rows
    assert not play.fx.finished


def test_start_run_of_a_dag_without_tasks_finishes_it_successfully() -> None:
    play = Play.new(DAG("d"))
    play.step("start")
    assert play.status() is DagRunStatus.success
    assert play.fx.finished == [play.state]
    assert [run.status for run in play.fx.dag_runs] == [
        DagRunStatus.running,
        DagRunStatus.success,
    ]


def test_start_run_on_a_shared_storage_writes_a_scheduled_row_per_ready_attempt() -> None:
    play = Play.new(build("a>c, b>c"), record_scheduled=True)
    play.step("start")
    assert play.writes == ["a#1 scheduled", "b#1 scheduled"]
    assert play.ready == ["a#1 initial", "b#1 initial"]


# -- task_succeeded ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "steps", "writes", "ready", "status"),
    [
        pytest.param(
            "a>b>c",
            ["start", "ok a"],
            ["a#1 success"],
            ["b#1 initial"],
            DagRunStatus.running,
            id="child-of-its-only-parent-is-ready",
        ),
        pytest.param(
            "a>b, a>c, b>d, c>d",
            ["start", "ok a"],
            ["a#1 success"],
            ["b#1 initial", "c#1 initial"],
            DagRunStatus.running,
            id="fan-out-makes-every-child-ready",
        ),
        pytest.param(
            "a>b, a>c, b>d, c>d",
            ["start", "ok a", "ok b"],
            ["b#1 success"],
            [],
            DagRunStatus.running,
            id="fan-in-waits-for-its-last-parent",
        ),
        pytest.param(
            "a>b, a>c, b>d, c>d",
            ["start", "ok a", "ok b", "ok c"],
            ["c#1 success"],
            ["d#1 initial"],
            DagRunStatus.running,
            id="fan-in-ready-after-its-last-parent",
        ),
        pytest.param(
            "a>b",
            ["start", "ok a", "ok b"],
            ["b#1 success"],
            [],
            DagRunStatus.success,
            id="last-task-finishes-the-run",
        ),
        pytest.param(
            "a>b",
            ["start", "fail a", "retry a", "ok a"],
            ["a#2 success"],
            ["b#1 initial"],
            DagRunStatus.running,
            id="success-after-a-retry-releases-the-child",
        ),
    ],
)
def test_task_succeeded(
    spec: str, steps: list[str], writes: list[str], ready: list[str], status: DagRunStatus
) -> None:
    play = Play.new(build(spec, {"a": {"retries": 1}})).steps(*steps)
    assert play.writes == writes
    assert play.ready == ready
    assert play.status() is status
    assert bool(play.fx.finished) is status.finished


def test_a_result_is_kept_only_for_tasks_with_children() -> None:
    play = Play.new(build("a>b, c")).steps("start", "ok a", "ok c")
    graph = play.state.graph
    assert play.state.results == {graph.index["a"]: "result of a"}
    assert dict(play.state.upstream_results(graph.index["b"])) == {"a": "result of a"}


# -- task_failed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "steps", "writes", "retries", "alerts", "status"),
    [
        pytest.param(
            {},
            ["start", "fail a"],
            ["a#1 failed", "b#1 upstream_failed", "c#1 upstream_failed"],
            [],
            ["failure a#1"],
            DagRunStatus.failed,
            id="no-retries-fails-it-and-everything-downstream",
        ),
        pytest.param(
            {"retries": 1, "retry_delay": timedelta(seconds=10)},
            ["start", "fail a"],
            ["a#1 up_for_retry"],
            ["a#1 in 10s"],
            [],
            DagRunStatus.running,
            id="within-the-budget-it-waits-for-a-retry",
        ),
        pytest.param(
            {"retries": 1, "retry_delay": timedelta(seconds=10), "alert_on_retry": True},
            ["start", "fail a"],
            ["a#1 up_for_retry"],
            ["a#1 in 10s"],
            ["retry a#1"],
            DagRunStatus.running,
            id="alert-on-retry",
        ),
        pytest.param(
            {"retries": 2, "retry_delay": timedelta(seconds=10), "retry_backoff": 3},
            ["start", "fail a", "retry a", "fail a"],
            ["a#2 up_for_retry"],
            ["a#2 in 30s"],
            [],
            DagRunStatus.running,
            id="backoff-multiplies-the-delay",
        ),
        pytest.param(
            {
                "retries": 3,
                "retry_delay": timedelta(seconds=10),
                "retry_backoff": 3,
                "max_retry_delay": timedelta(seconds=20),
            },
            ["start", "fail a", "retry a", "fail a"],
            ["a#2 up_for_retry"],
            ["a#2 in 20s"],
            [],
            DagRunStatus.running,
            id="max-retry-delay-caps-it",
        ),
        pytest.param(
            {"retries": 1},
            ["start", "fail a", "retry a", "fail a"],
            ["a#2 failed", "b#1 upstream_failed", "c#1 upstream_failed"],
            [],
            ["failure a#2"],
            DagRunStatus.failed,
            id="budget-spent-it-fails",
        ),
        pytest.param(
            {"alert_on_failure": False},
            ["start", "fail a"],
            ["a#1 failed", "b#1 upstream_failed", "c#1 upstream_failed"],
            [],
            [],
            DagRunStatus.failed,
            id="no-alert-on-failure",
        ),
        pytest.param(
            {"retries": 1},
            ["start", "fail a", "retry a", "interrupt a", "fail a"],
            ["a#3 failed", "b#1 upstream_failed", "c#1 upstream_failed"],
            [],
            ["failure a#3"],
            DagRunStatus.failed,
            id="interruptions-do-not-spend-retries-nor-restore-them",
        ),
    ],
)
def test_task_failed(
    options: dict[str, Any],
    steps: list[str],
    writes: list[str],
    retries: list[str],
    alerts: list[str],
    status: DagRunStatus,
) -> None:
    play = Play.new(build("a>b>c", {"a": options})).steps(*steps)
    assert play.writes == writes
    assert play.retries == retries
    assert play.alerts == alerts
    assert play.ready == []
    assert play.status() is status


def test_a_failure_beside_a_live_task_finishes_the_run_when_that_task_settles() -> None:
    play = Play.new(build("a>b, a>c, b>d, c>d")).steps("start", "ok a", "fail b")
    assert play.writes == ["b#1 failed", "d#1 upstream_failed"]
    assert play.status() is DagRunStatus.running  # c still runs
    play.step("ok c")
    assert play.writes == ["c#1 success"]
    assert play.ready == []  # d already settled as upstream_failed
    assert play.status() is DagRunStatus.failed
    assert play.fx.finished == [play.state]


def test_an_upstream_failed_row_names_the_failed_task() -> None:
    play = Play.new(build("a>b")).steps("start", "fail a")
    upstream_failed = play.fx.task_runs[1]
    assert upstream_failed.status is TaskStatus.upstream_failed
    assert upstream_failed.error == "upstream task 'a' failed"
    assert upstream_failed.finished_at == NOW


# -- retry_due ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "due_attempt", "ready", "writes"),
    [
        pytest.param(["start", "fail a"], 1, ["a#2 retry"], [], id="makes-the-next-attempt"),
        pytest.param(
            ["start", "fail a", "retry a"], 1, [], [], id="twice-for-one-attempt-is-ignored"
        ),
        pytest.param(
            ["start", "fail a", "retry a", "ok a"], 2, [], [], id="after-the-task-settled"
        ),
    ],
)
def test_retry_due(steps: list[str], due_attempt: int, ready: list[str], writes: list[str]) -> None:
    play = Play.new(build("a>b", {"a": {"retries": 2}})).steps(*steps)
    play.fx = fx = Effects()
    transitions.retry_due(play.state, play.state.graph.index["a"], due_attempt, NOW, fx)
    assert play.ready == ready
    assert play.writes == writes


def test_retry_due_on_a_shared_storage_writes_the_scheduled_row() -> None:
    play = Play.new(build("a", {"a": {"retries": 1}}), record_scheduled=True)
    play.steps("start", "fail a", "retry a")
    assert play.writes == ["a#2 scheduled"]
    assert play.fx.task_runs[0].reason is AttemptReason.retry


# -- task_interrupted --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "writes", "ready", "status"),
    [
        pytest.param(
            ["start", "interrupt a"],
            ["a#1 interrupted"],
            ["a#2 interrupted"],
            DagRunStatus.running,
            id="resumed-at-once",
        ),
        pytest.param(
            ["start", "stop a"],
            ["a#1 interrupted"],
            [],
            DagRunStatus.running,
            id="stopping-leaves-it-for-the-next-start",
        ),
        pytest.param(
            ["start", "interrupt a", "interrupt a"],
            ["a#2 interrupted"],
            ["a#3 interrupted"],
            DagRunStatus.running,
            id="twice-in-a-row-still-runs",
        ),
        pytest.param(
            ["start", "interrupt a", "interrupt a", "interrupt a"],
            ["a#3 failed", "b#1 upstream_failed"],
            [],
            DagRunStatus.failed,
            id="three-in-a-row-fail",
        ),
        pytest.param(
            ["start", "interrupt a", "interrupt a", "fail a", "retry a", "interrupt a"],
            ["a#4 interrupted"],
            ["a#5 interrupted"],
            DagRunStatus.running,
            id="a-failure-breaks-the-streak",
        ),
    ],
)
def test_task_interrupted(
    steps: list[str], writes: list[str], ready: list[str], status: DagRunStatus
) -> None:
    play = Play.new(build("a>b", {"a": {"retries": 1}})).steps(*steps)
    assert play.writes == writes
    assert play.ready == ready
    assert play.status() is status


def test_the_third_interruption_in_a_row_says_why_the_task_failed() -> None:
    play = Play.new(build("a")).steps("start", *["interrupt a"] * MAX_INTERRUPTIONS)
    (failed,) = play.fx.task_runs
    assert failed.status is TaskStatus.failed
    assert failed.error is not None
    assert f"interrupted {MAX_INTERRUPTIONS} times in a row" in failed.error
    assert play.alerts == [f"failure a#{MAX_INTERRUPTIONS}"]


# -- restore -----------------------------------------------------------------------------


def restore(
    spec: str,
    rows: list[str],
    *,
    restart: bool = False,
    shared: bool = False,
    options: dict[str, dict[str, Any]] | None = None,
) -> Play:
    run = queued_run(RunTrigger.restart if restart else RunTrigger.manual)
    if not restart:
        run = DagRun(
            id=run.id,
            dag_id=run.dag_id,
            logical_time=run.logical_time,
            status=DagRunStatus.running,
            trigger=run.trigger,
            created_at=T0,
            started_at=T0,
        )
    fx = Effects(record_scheduled=shared)
    state = recovery.restore(
        run, build(spec, options), [row(r) for r in rows], NOW, fx, restart=restart, shared=shared
    )
    play = Play(state, record_scheduled=shared)
    play.fx = fx
    return play


@pytest.mark.parametrize(
    ("rows", "writes", "ready", "retries", "status"),
    [
        pytest.param(
            ["a#1 success", "b#1 running"],
            ["b#1 interrupted"],
            ["b#2 interrupted"],
            [],
            DagRunStatus.running,
            id="a-running-attempt-was-interrupted-and-runs-again",
        ),
        pytest.param(
            ["a#1 success", "b#1 interrupted"],
            [],
            ["b#2 interrupted"],
            [],
            DagRunStatus.running,
            id="an-attempt-stopped-on-shutdown-runs-again",
        ),
        pytest.param(
            ["a#1 success", "b#1 scheduled"],
            [],
            ["b#1 initial"],
            [],
            DagRunStatus.running,
            id="a-scheduled-attempt-is-queued-again",
        ),
        pytest.param(
            ["a#1 success"],
            [],
            ["b#1 initial"],
            [],
            DagRunStatus.running,
            id="a-child-whose-parents-succeeded-is-due",
        ),
        pytest.param(
            ["a#1 success", "b#1 up_for_retry"],
            [],
            [],
            ["b#1 in -3590s"],
            DagRunStatus.running,
            id="a-pending-retry-gets-its-timer-back",
        ),
        pytest.param(
            ["a#1 success", "b#1 success", "c#1 success"],
            [],
            [],
            [],
            DagRunStatus.success,
            id="all-succeeded-finishes-it",
        ),
        pytest.param(
            ["a#1 failed", "b#1 upstream_failed", "c#1 upstream_failed"],
            [],
            [],
            [],
            DagRunStatus.failed,
            id="a-failure-finishes-it-failed",
        ),
        pytest.param(
            ["a#1 success", "b#1 interrupted", "b#2 interrupted", "b#3 running interrupted"],
            ["b#3 failed", "c#1 upstream_failed"],
            [],
            [],
            DagRunStatus.failed,
            id="a-third-interruption-in-a-row-fails-it",
        ),
        pytest.param(
            ["a#1 success", "b#1 interrupted", "b#2 interrupted", "b#3 interrupted interrupted"],
            ["b#3 failed", "c#1 upstream_failed"],
            [],
            [],
            DagRunStatus.failed,
            id="stopped-three-times-in-a-row-fails-it",
        ),
        pytest.param(
            ["a#1 success", "b#1 up_for_retry", "b#2 running retry"],
            ["b#2 interrupted"],
            ["b#3 interrupted"],
            [],
            DagRunStatus.running,
            id="a-retry-cut-short-runs-again",
        ),
    ],
)
def test_restore_after_a_crash(
    rows: list[str], writes: list[str], ready: list[str], retries: list[str], status: DagRunStatus
) -> None:
    play = restore(
        "a>b>c", rows, options={"b": {"retries": 2, "retry_delay": timedelta(seconds=10)}}
    )
    assert play.writes == writes
    assert play.ready == ready
    assert play.retries == retries
    assert play.status() is status
    assert bool(play.fx.finished) is status.finished


@pytest.mark.parametrize(
    "last",
    [
        pytest.param("b#3 running interrupted", id="crashed"),
        pytest.param("b#3 interrupted interrupted", id="stopped"),
    ],
)
def test_restore_says_a_task_failed_after_three_interruptions_in_a_row(last: str) -> None:
    play = restore("a>b", ["a#1 success", "b#1 interrupted", "b#2 interrupted", last])
    failed = play.fx.task_runs[0]
    assert failed.status is TaskStatus.failed
    assert failed.error is not None
    assert f"interrupted {MAX_INTERRUPTIONS} times in a row" in failed.error


def test_restore_counts_the_retries_already_spent() -> None:
    play = restore(
        "a>b",
        ["a#1 up_for_retry", "a#2 running retry"],
        options={"a": {"retries": 2}},
    )
    assert play.ready == ["a#3 interrupted"]
    play.step("fail a")
    assert play.writes == ["a#3 up_for_retry"]  # the second of two retries
    play.steps("retry a", "fail a")
    assert play.writes == ["a#4 failed", "b#1 upstream_failed"]


def test_restore_keeps_the_results_downstream_tasks_read() -> None:
    play = restore("a>b", ["a#1 success", "b#1 running"])
    b = play.state.graph.index["b"]
    assert dict(play.state.upstream_results(b)) == {"a": "result of a"}


def test_restore_on_a_shared_storage_leaves_running_attempts_to_their_process() -> None:
    play = restore("a>b, a>c", ["a#1 success", "b#1 running", "c#1 scheduled"], shared=True)
    assert play.writes == []
    assert play.ready == ["c#1 initial"]
    b = play.state.graph.index["b"]
    assert play.state.expects(b, 1)  # its outcome, or the reaper's, comes later
    play.step("ok b")
    assert play.writes == ["b#1 success"]


@pytest.mark.parametrize(
    ("rows", "ready", "status_after"),
    [
        pytest.param(
            ["a#1 success", "b#1 failed", "c#1 upstream_failed"],
            ["b#2 restart"],
            DagRunStatus.running,
            id="the-failed-task-runs-again-downstream-waits",
        ),
        pytest.param(
            ["a#1 up_for_retry", "a#2 failed retry", "b#1 upstream_failed", "c#1 upstream_failed"],
            ["a#3 restart"],
            DagRunStatus.running,
            id="a-root-that-spent-its-retries-runs-again",
        ),
        pytest.param(
            ["a#1 success", "b#1 success", "c#1 failed"],
            ["c#2 restart"],
            DagRunStatus.running,
            id="succeeded-tasks-never-run-again",
        ),
    ],
)
def test_restore_for_a_restart_reruns_what_did_not_succeed(
    rows: list[str], ready: list[str], status_after: DagRunStatus
) -> None:
    play = restore("a>b>c", rows, restart=True, options={"a": {"retries": 1}})
    assert play.writes == []
    assert play.ready == []  # nothing runs before the run starts again
    play.step("start")
    assert play.ready == ready
    assert play.status() is status_after
    assert play.state.run.trigger is RunTrigger.restart


def test_a_restarted_task_has_a_fresh_retry_budget() -> None:
    play = restore(
        "a>b",
        ["a#1 up_for_retry", "a#2 failed retry", "b#1 upstream_failed"],
        restart=True,
        options={"a": {"retries": 1}},
    )
    play.steps("start", "fail a")
    assert play.writes == ["a#3 up_for_retry"]
    play.steps("retry a", "ok a")
    assert play.ready == ["b#2 restart"]
    play.step("ok b")
    assert play.status() is DagRunStatus.success


def test_a_moved_run_changes_only_what_a_state_change_writes() -> None:
    # Every field set, none to its default: a field moved_run forgot would differ.
    run = DagRun(
        id=7,
        dag_id="d",
        logical_time=T0,
        status=DagRunStatus.queued,
        trigger=RunTrigger.schedule,
        params={"n": 1},
        dag_version=3,
        created_at=T0 - timedelta(minutes=1),
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=2),
        note="why",
    )
    assert {f.name for f in attrs.fields(DagRun)} == {
        "id",
        "dag_id",
        "logical_time",
        "status",
        "trigger",
        "params",
        "dag_version",
        "created_at",
        "started_at",
        "finished_at",
        "note",
    }, "a new DagRun field must be kept by moved_run"
    moved = moved_run(run, DagRunStatus.failed, RunTrigger.restart, NOW, NOW, None)
    assert moved == attrs.evolve(
        run,
        status=DagRunStatus.failed,
        trigger=RunTrigger.restart,
        started_at=NOW,
        finished_at=NOW,
        note=None,
    )
