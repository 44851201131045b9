"""The scheduler's positional builders of per-attempt records make exactly what the
public constructors make."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

from ppacer_async import TaskContext, TaskRun
from ppacer_async._enums import AttemptReason, TaskStatus
from ppacer_async._structures import make_task_run
from ppacer_async._task import make_context

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_make_task_run_equals_the_constructor_field_for_field() -> None:
    values: dict[str, Any] = {
        "run_id": 7,
        "task_id": "process[3]",
        "attempt": 2,
        "status": TaskStatus.up_for_retry,
        "reason": AttemptReason.retry,
        "scheduled_at": T0,
        "started_at": T0.replace(second=1),
        "finished_at": T0.replace(second=2),
        "error": "ValueError: no",
        "result": {"rows": [1, 2]},
    }
    assert [f.name for f in attrs.fields(TaskRun)] == list(values)
    made = make_task_run(*values.values())
    assert made == TaskRun(**values)
    assert attrs.asdict(made, recurse=False) == values
    assert type(made) is TaskRun


def test_make_context_equals_the_constructor_slot_for_slot() -> None:
    def sink(ctx: TaskContext) -> object:
        raise AssertionError("not called")

    async def drain() -> None:
        return None

    args: dict[str, Any] = {
        "dag_id": "etl",
        "run_id": 3,
        "task_id": "load",
        "attempt": 1,
        "logical_time": T0,
        "params": {"day": 1},
        "upstream": {"extract": 10},
        "notifier": None,
        "log_sink": sink,
        "log_drain": drain,
    }
    made = make_context(*args.values())
    public = TaskContext(**args)
    for name in TaskContext.__slots__:
        assert getattr(made, name) == getattr(public, name), name
