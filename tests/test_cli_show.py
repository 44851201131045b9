"""`show` lists tasks that have no attempt row yet (readiness is not written)."""

from __future__ import annotations

from datetime import UTC, datetime

from ppacer_async import DagRun, DagRunStatus, RunTrigger, TaskRun, TaskStatus
from ppacer_async._structures import DagInfo
from ppacer_async.cli.runs import _not_started

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INFO = DagInfo(
    dag_id="d",
    version=1,
    definition_hash="x",
    definition={"tasks": {"a": {"upstream": []}, "b": {"upstream": ["a"]}}},
    paused=False,
    created_at=T0,
)


def run(status: DagRunStatus) -> DagRun:
    return DagRun(
        id=1,
        dag_id="d",
        logical_time=T0,
        status=status,
        trigger=RunTrigger.manual,
        created_at=T0,
    )


def row(task_id: str, status: TaskStatus) -> TaskRun:
    return TaskRun(run_id=1, task_id=task_id, attempt=1, status=status)


def test_task_whose_upstream_succeeded_is_shown_scheduled() -> None:
    latest = {"a": row("a", TaskStatus.success)}
    assert _not_started("b", INFO, latest, run(DagRunStatus.running)) == "scheduled"


def test_task_waiting_for_upstream_is_shown_pending() -> None:
    latest = {"a": row("a", TaskStatus.running)}
    assert _not_started("b", INFO, latest, run(DagRunStatus.running)) == "pending"
    assert _not_started("a", INFO, {}, run(DagRunStatus.queued)) == "pending"


def test_finished_runs_show_no_status_for_tasks_that_never_ran() -> None:
    assert _not_started("b", INFO, {}, run(DagRunStatus.failed)) == "-"
