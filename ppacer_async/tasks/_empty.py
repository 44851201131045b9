"""``EmptyTask``: a task that does nothing, to join or fan out flows."""

from __future__ import annotations

from typing import Any

from .._task import Task, TaskContext


class EmptyTask(Task):
    """A task that does nothing and returns ``None``.

    Use it as a named join or fan-out point (``[a, b] >> EmptyTask("joined") >> c``),
    or as a placeholder while a DAG takes shape. It accepts every ``Task`` option.

    :param id: the task's id, unique within its DAG.
    """

    def __init__(self, id: str, **options: Any) -> None:
        super().__init__(id, **options)

    async def execute(self, ctx: TaskContext) -> None:
        return None
