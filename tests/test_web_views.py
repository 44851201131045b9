from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ppacer_async import DagRunStatus, TaskStatus
from ppacer_async._enums import RunTrigger
from ppacer_async._structures import DagRun, RunDetail, TaskDetail, TaskRun
from ppacer_async.web import _views as views

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(run_id: int, seconds: float | None, status=DagRunStatus.success) -> DagRun:
    return DagRun(
        id=run_id,
        dag_id="d",
        logical_time=T0,
        status=status,
        trigger=RunTrigger.manual,
        created_at=T0,
        started_at=T0,
        finished_at=None if seconds is None else T0 + timedelta(seconds=seconds),
    )


def _attempt(run_id: int, task_id: str, attempt: int, status: TaskStatus) -> TaskRun:
    return TaskRun(run_id=run_id, task_id=task_id, attempt=attempt, status=status)


def _detail(run: DagRun, *tasks: TaskDetail) -> RunDetail:
    return RunDetail(run=run, tasks=tasks)


def test_grid_puts_the_newest_run_on_the_right_and_each_tasks_latest_attempt_in_it():
    older = _detail(
        _run(1, 10),
        TaskDetail(task_id="a", attempts=(_attempt(1, "a", 1, TaskStatus.success),)),
        TaskDetail(task_id="b", attempts=()),
    )
    newer = _detail(
        _run(2, 5, DagRunStatus.failed),
        TaskDetail(
            task_id="a",
            attempts=(
                _attempt(2, "a", 1, TaskStatus.up_for_retry),
                _attempt(2, "a", 2, TaskStatus.failed),
            ),
        ),
        TaskDetail(task_id="b", attempts=(_attempt(2, "b", 1, TaskStatus.upstream_failed),)),
    )
    grid = views.build_grid(["a", "b"], [newer, older], T0 + timedelta(seconds=60))
    assert [c.run.id for c in grid.columns] == [1, 2]
    assert [row.task_id for row in grid.rows] == ["a", "b"]
    a, b = grid.rows
    assert [None if c is None else (c.attempt, c.status) for c in a.cells] == [
        (1, TaskStatus.success),
        (2, TaskStatus.failed),
    ]
    assert [None if c is None else c.status for c in b.cells] == [
        None,
        TaskStatus.upstream_failed,
    ]
    # The longer run stands taller.
    assert grid.columns[0].height > grid.columns[1].height
    assert grid.columns[0].duration == "10.0 s"


def test_grid_keeps_tasks_an_older_definition_ran():
    old = _detail(
        _run(1, 1),
        TaskDetail(task_id="gone", attempts=(_attempt(1, "gone", 1, TaskStatus.success),)),
    )
    grid = views.build_grid(["a"], [old], T0)
    assert [row.task_id for row in grid.rows] == ["a", "gone"]


def test_status_counts_follow_the_legend_order():
    counts = views.count_statuses(["failed", "success", "running", "success", "new_one"])
    assert counts == [("running", 1), ("success", 2), ("failed", 1), ("new_one", 1)]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4213, "0.42 s"),
        (12.34, "12.3 s"),
        (245, "4 min 05 s"),
        (7380, "2 h 03 min"),
        (3 * 86400 + 7200, "3 d 2 h"),
        (None, "—"),
    ],
)
def test_durations_read_naturally(seconds, text):
    delta = None if seconds is None else timedelta(seconds=seconds)
    assert views.duration_text(delta) == text


def test_error_headline_is_the_exception_line_of_the_traceback():
    error = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad row\n'
    assert views.headline(error) == "ValueError: bad row"
    assert views.headline(None) == ""


def test_a_running_task_is_timed_until_now():
    detail = _detail(
        _run(1, None, DagRunStatus.running),
        TaskDetail(
            task_id="a",
            attempts=(
                TaskRun(run_id=1, task_id="a", attempt=1, status=TaskStatus.running, started_at=T0),
            ),
        ),
        TaskDetail(task_id="b", waiting="pending"),
    )
    a, b = views.task_views(detail, T0 + timedelta(seconds=3))
    assert (a.status, a.duration) == ("running", "3.00 s")
    assert (b.status, b.duration) == ("pending", "—")


def test_grid_leaves_out_the_tasks_past_its_limit_and_says_how_many():
    detail = _detail(_run(1, 1), *(TaskDetail(task_id=f"t{i}") for i in range(5)))
    grid = views.build_grid([f"t{i}" for i in range(5)], [detail], T0, max_rows=3)
    assert [row.task_id for row in grid.rows] == ["t0", "t1", "t2"]
    assert grid.hidden_rows == 2
