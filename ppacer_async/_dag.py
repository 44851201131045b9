"""DAGs and flows: composition with ``>>``, validation and content hashing (pure, sync)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from ._enums import TriggerRule
from ._exceptions import DagDefinitionError
from ._params import params_problem
from ._task import Task, _check_duration, _check_id
from ._time import is_aware
from .abc import Schedule

#: How many runs for passed points one scheduler start creates per DAG by default.
DEFAULT_MAX_CATCHUP_RUNS = 10_000


@attrs.frozen
class Flow:
    """Tasks joined by ``>>``: ``heads`` are its first tasks, ``tails`` its last ones."""

    tasks: tuple[Task, ...]
    edges: tuple[tuple[Task, Task], ...]
    heads: tuple[Task, ...]
    tails: tuple[Task, ...]

    @classmethod
    def of(cls, item: Task | Flow | Iterable[Task | Flow]) -> Flow:
        """Make a flow of a task, a flow, or a list of them (side by side)."""
        if isinstance(item, Flow):
            return item
        if isinstance(item, Task):
            return cls((item,), (), (item,), (item,))
        if isinstance(item, str | bytes) or not isinstance(item, Iterable):
            raise DagDefinitionError(
                f"expected a task, a flow (a >> b) or a list of them, got {item!r}"
            )
        parts = [cls.of(part) for part in item]
        return cls(
            tuple(t for p in parts for t in p.tasks),
            tuple(e for p in parts for e in p.edges),
            tuple(t for p in parts for t in p.heads),
            tuple(t for p in parts for t in p.tails),
        )

    def __rshift__(self, other: Task | Flow | Iterable[Task | Flow]) -> Flow:
        right = Flow.of(other)
        links = tuple((a, b) for a in self.tails for b in right.heads)
        return Flow(
            self.tasks + right.tasks, self.edges + right.edges + links, self.heads, right.tails
        )

    def __rrshift__(self, other: Task | Flow | Iterable[Task | Flow]) -> Flow:
        return Flow.of(other) >> self


@attrs.frozen
class Graph:
    """A validated DAG as index arrays, for O(1) readiness checks.

    :ivar ids: task ids in insertion order; a task's index is its position.
    :ivar children: per task index, the indexes of its direct downstream tasks.
    :ivar parents: per task index, the indexes of its direct upstream tasks.
    """

    ids: tuple[str, ...]
    tasks: tuple[Task, ...]
    index: Mapping[str, int]
    children: tuple[tuple[int, ...], ...]
    parents: tuple[tuple[int, ...], ...]
    roots: tuple[int, ...]
    #: task indexes in an order where every task comes after its parents
    order: tuple[int, ...]
    #: per task index, the index of the parent a mapped task maps over, else -1
    map_source: tuple[int, ...] = ()
    #: no trigger rule but ``all_success``, no branch, no mapping: the fast path
    plain: bool = True
    #: some task is mapped
    mapped: bool = False
    #: some task names a pool
    pooled: bool = False

    @classmethod
    def build(cls, dag_id: str, tasks: dict[str, Task], edges: set[tuple[str, str]]) -> Graph:
        ids = tuple(tasks)
        index = {task_id: i for i, task_id in enumerate(ids)}
        children: list[list[int]] = [[] for _ in ids]
        parents: list[list[int]] = [[] for _ in ids]
        for a, b in sorted(edges, key=lambda e: (index[e[0]], index[e[1]])):
            children[index[a]].append(index[b])
            parents[index[b]].append(index[a])
        _check_acyclic(dag_id, ids, children)
        map_source = []
        for i, t in enumerate(tasks.values()):
            if t.map_over is None:
                map_source.append(-1)
                continue
            source = index.get(t.map_over)
            if source is None or source not in parents[i]:
                direct = ", ".join(ids[p] for p in parents[i]) or "none"
                raise DagDefinitionError(
                    f"DAG {dag_id!r}: task {t.id!r} maps over {t.map_over!r}, which is not "
                    f"directly upstream of it (upstream: {direct}); write "
                    f"{t.map_over} >> {t.id}.map({t.map_over!r})"
                )
            map_source.append(source)
        plain = all(
            t.trigger_rule is TriggerRule.all_success
            and not t.branch
            and t.map_over is None
            and t.sensor is None
            for t in tasks.values()
        )
        return cls(
            map_source=tuple(map_source),
            plain=plain,
            mapped=any(source >= 0 for source in map_source),
            pooled=any(t.pool is not None for t in tasks.values()),
            order=_topological_order(children, parents),
            ids=ids,
            tasks=tuple(tasks.values()),
            index=index,
            children=tuple(tuple(c) for c in children),
            parents=tuple(tuple(p) for p in parents),
            roots=tuple(i for i, p in enumerate(parents) if not p),
        )

    def descendants(self, start: int) -> list[int]:
        """Every task downstream of ``start``, each once."""
        seen: set[int] = set()
        stack = list(self.children[start])
        found: list[int] = []
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                found.append(i)
                stack.extend(self.children[i])
        return found


def _topological_order(children: list[list[int]], parents: list[list[int]]) -> tuple[int, ...]:
    waiting = [len(p) for p in parents]
    ready = [i for i, n in enumerate(waiting) if n == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return tuple(order)


def _check_acyclic(dag_id: str, ids: tuple[str, ...], children: list[list[int]]) -> None:
    """Raise ``DagDefinitionError`` naming one cycle, if there is any (iterative DFS)."""
    white, grey, black = 0, 1, 2
    color = [white] * len(ids)
    for start in range(len(ids)):
        if color[start] != white:
            continue
        path = [start]
        iters = [iter(children[start])]
        color[start] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                color[path.pop()] = black
                iters.pop()
            elif color[nxt] == grey:
                cycle = [*path[path.index(nxt) :], nxt]
                names = " >> ".join(ids[i] for i in cycle)
                raise DagDefinitionError(f"DAG {dag_id!r} has a cycle: {names}")
            elif color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iters.append(iter(children[nxt]))


class DAG:
    """A directed acyclic graph of tasks with an optional schedule.

    :param dag_id: unique name of the DAG.
    :param schedule: when runs are created; ``None`` runs only when triggered.
    :param start: first possible schedule point (tz-aware); default: when first served.
    :param catchup: run the points missed while nothing ran (oldest first), instead of
        recording them as skipped.
    :param max_active_runs: runs of this DAG that may be queued or running at once.
    :param params: default params, overridden by a trigger's params.
    :param max_catchup_runs: the most runs one scheduler start creates for points that
        passed (``catchup=True``, or unpausing from the last point), oldest first; the
        points that passed beyond it are recorded as skipped, with a warning, but the
        latest due one, which runs as scheduled. ``backfill`` runs skipped points on
        purpose. ``None``: no cap.
    :param run_timeout: a run still going this long after it started is cancelled
        (its note says so); ``None``: no limit.
    :param max_active_tasks: attempts of this DAG's tasks (all its runs together) that
        may be queued or running at once; ``None``: no limit but the scheduler's.
    """

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: Schedule | None = None,
        start: datetime | None = None,
        catchup: bool = False,
        max_active_runs: int = 16,
        tags: Iterable[str] = (),
        description: str = "",
        params: Mapping[str, Any] | None = None,
        max_catchup_runs: int | None = DEFAULT_MAX_CATCHUP_RUNS,
        run_timeout: timedelta | None = None,
        max_active_tasks: int | None = None,
    ) -> None:
        self.dag_id = _check_id("DAG", dag_id)
        if max_active_tasks is not None and (
            not isinstance(max_active_tasks, int)
            or isinstance(max_active_tasks, bool)
            or max_active_tasks < 1
        ):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: max_active_tasks must be a whole number >= 1 or None "
                f"(no limit), got {max_active_tasks!r}"
            )
        self.max_active_tasks = max_active_tasks
        self.run_timeout = (
            None
            if run_timeout is None
            else _check_duration(f"DAG {dag_id!r}: run_timeout", run_timeout, allow_zero=False)
        )
        if schedule is not None and not isinstance(schedule, Schedule):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: schedule must be a Schedule such as Interval(...) or "
                f"Cron(...), got {schedule!r}"
            )
        self.schedule = schedule
        if start is not None and (not isinstance(start, datetime) or not is_aware(start)):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: start must be a datetime with a time zone, got {start!r}; "
                "write e.g. datetime(2026, 1, 1, tzinfo=timezone.utc)"
            )
        self.start = start
        self.catchup = bool(catchup)
        if not isinstance(max_active_runs, int) or max_active_runs < 1:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: max_active_runs must be at least 1, got {max_active_runs!r}"
            )
        self.max_active_runs = max_active_runs
        if max_catchup_runs is not None and (
            not isinstance(max_catchup_runs, int)
            or isinstance(max_catchup_runs, bool)
            or max_catchup_runs < 0
        ):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: max_catchup_runs must be a whole number >= 0 or None "
                f"(no cap), got {max_catchup_runs!r}"
            )
        self.max_catchup_runs = max_catchup_runs
        if isinstance(tags, str):
            raise DagDefinitionError(f"DAG {dag_id!r}: tags must be a list of strings")
        self.tags = tuple(tags)
        self.description = description
        self.params = dict(params or {})
        problem = params_problem(self.params)
        if problem is not None:
            raise DagDefinitionError(f"DAG {dag_id!r}: {problem}")
        self._tasks: dict[str, Task] = {}
        self._edges: set[tuple[str, str]] = set()
        self._graph: Graph | None = None

    def add(self, *flows: Task | Flow | Iterable[Task | Flow]) -> DAG:
        """Add tasks and flows (``a >> b``, lists of either). Validates at once.

        :raises DagDefinitionError: a cycle, two different tasks with one id, or a bad id;
            the DAG is left unchanged.
        """
        tasks = dict(self._tasks)
        edges = set(self._edges)
        for item in flows:
            flow = Flow.of(item)
            for t in flow.tasks:
                if not isinstance(t, Task):
                    raise DagDefinitionError(f"DAG {self.dag_id!r}: {t!r} is not a Task")
                known = tasks.setdefault(t.id, t)
                if known is not t:
                    raise DagDefinitionError(
                        f"DAG {self.dag_id!r} has two different tasks with id {t.id!r}; "
                        f"give one of them another id, e.g. {t._other_id_example()}"
                    )
            edges.update((a.id, b.id) for a, b in flow.edges)
        graph = Graph.build(self.dag_id, tasks, edges)
        self._tasks, self._edges, self._graph = tasks, edges, graph
        return self

    @property
    def tasks(self) -> Mapping[str, Task]:
        return dict(self._tasks)

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = Graph.build(self.dag_id, {}, set())
        return self._graph

    def definition(self) -> dict[str, Any]:
        """A JSON description of the DAG; its hash identifies a version."""
        graph = self.graph
        found: dict[str, Any] = {
            "dag_id": self.dag_id,
            "schedule": None if self.schedule is None else self.schedule.describe(),
            "schedule_spec": None if self.schedule is None else self.schedule.spec(),
            "start": None if self.start is None else self.start.isoformat(),
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "tags": list(self.tags),
            "description": self.description,
            "params": self.params,
            "tasks": {
                task_id: {
                    "upstream": [graph.ids[p] for p in graph.parents[i]],
                    **graph.tasks[i].fingerprint(),
                }
                for i, task_id in enumerate(graph.ids)
            },
        }
        if self.run_timeout is not None:  # only when set: other DAGs keep their hash
            found["run_timeout"] = self.run_timeout.total_seconds()
        if self.max_active_tasks is not None:
            found["max_active_tasks"] = self.max_active_tasks
        return found

    def definition_hash(self, definition: dict[str, Any] | None = None) -> str:
        """The content hash of :meth:`definition` (pass it when already computed)."""
        if definition is None:
            definition = self.definition()
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id!r} with {len(self._tasks)} tasks>"
