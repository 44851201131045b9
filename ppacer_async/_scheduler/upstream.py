"""What an executing attempt sees of its run: the run, its DAG and the results of the
tasks upstream of it (``ctx.upstream``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

import attrs

from .._dag import DAG, Graph
from .._enums import AttemptReason, TaskStatus
from .._structures import DagRun, TaskRun
from .capture import Key


@attrs.define(eq=False, kw_only=True)
class RunView:
    """What executing an attempt needs to know of its run: the run, its DAG, and the
    results of finished tasks (by task index) that downstream tasks may read."""

    run: DagRun
    dag: DAG
    graph: Graph
    results: dict[int, Any] = attrs.field(factory=dict)
    #: the run was cancelled: its attempts not started yet never start
    cancelled: bool = False
    #: the DAG has mapped tasks (read per attempt: one attribute, not two)
    mapped: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.mapped = self.graph.mapped

    def upstream_results(self, index: int) -> Upstream:
        return Upstream(self, index)


class Instances:
    """A queue item's work for the instances ``start`` to ``stop - 1`` of a mapped task:
    their first attempts, made ready at ``at``. One item, not one per instance: a worker
    runs them one after the other, each its own attempt, and reports their outcomes
    together (see ``Consumer``)."""

    __slots__ = ("at", "start", "stop")

    def __init__(self, start: int, stop: int, at: datetime) -> None:
        self.start = start
        self.stop = stop
        self.at = at

    def __len__(self) -> int:
        return self.stop - self.start


class Upstream(Mapping[str, Any]):
    """``ctx.upstream``: the stored results of a task's direct upstream tasks, by id
    (read lazily: most tasks never look)."""

    __slots__ = ("_index", "_state")

    def __init__(self, state: RunView, index: int) -> None:
        self._state = state
        self._index = index

    def __getitem__(self, task_id: str) -> Any:
        graph = self._state.graph
        parent = graph.index.get(task_id)
        if parent is None or parent not in graph.parents[self._index]:
            raise KeyError(
                f"{task_id!r} is not directly upstream of {graph.ids[self._index]!r}; "
                f"upstream tasks: {sorted(self)}"
            )
        return self._state.results.get(parent)

    def __iter__(self) -> Iterator[str]:
        graph = self._state.graph
        return (graph.ids[p] for p in graph.parents[self._index])

    def __len__(self) -> int:
        return len(self._state.graph.parents[self._index])

    def __repr__(self) -> str:
        return repr(dict(self))


class Attempt(Key, Protocol):
    """Which attempt a queue item is: a ``ReadyAttempt``, or a claimed ``TaskRun`` row
    (what names it, ``capture.Key``, and how it was made ready)."""

    @property
    def reason(self) -> AttemptReason: ...
    @property
    def scheduled_at(self) -> datetime | None: ...


class ReadyAttempt:
    """An attempt made ready in this process, as the workers need it.

    Not a ``TaskRun``: a frozen record costs four times as much to build, and the
    attempt's row is built once, when it ends (or suspends).
    """

    __slots__ = ("attempt", "reason", "run_id", "scheduled_at", "task_id")

    def __init__(
        self,
        run_id: int,
        task_id: str,
        attempt: int,
        reason: AttemptReason,
        scheduled_at: datetime | None,
    ) -> None:
        self.run_id = run_id
        self.task_id = task_id
        self.attempt = attempt
        self.reason = reason
        self.scheduled_at = scheduled_at

    @property
    def key(self) -> tuple[int, str, int]:
        """The attempt's key, as ``TaskRun.key``."""
        return (self.run_id, self.task_id, self.attempt)

    def __repr__(self) -> str:
        return (
            f"ReadyAttempt(run_id={self.run_id!r}, task_id={self.task_id!r}, "
            f"attempt={self.attempt!r}, reason={self.reason!r})"
        )


def claimed(tr: TaskRun, now: datetime) -> TaskRun:
    """An attempt as a worker gets it once claimed at ``now``: a stored row marked
    running. An attempt made ready in this process is a ``ReadyAttempt`` in the
    same place (its row is built when it ends): it is handed on as it is."""
    if isinstance(tr, TaskRun):
        return attrs.evolve(tr, status=TaskStatus.running, started_at=now)
    return tr
