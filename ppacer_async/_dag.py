"""DAGs and flows: composition with ``>>``, validation and content hashing (pure, sync)."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from . import _definition
from ._enums import TriggerRule
from ._exceptions import DagDefinitionError
from ._params import params_problem
from ._task import Task, _check_duration, _check_id
from ._time import is_aware
from .abc import Schedule

#: How many runs for passed points one scheduler start creates per DAG by default.
DEFAULT_MAX_CATCHUP_RUNS = 10_000


class Flow:
    """Tasks joined by ``>>``: ``heads`` are its first tasks, ``tails`` its last ones.

    A flow keeps what it was made of and the joins between its parts, not a list of
    every task and edge: ``a >> b >> ...`` stays linear in the number of tasks. ``tasks``
    and ``edges`` are worked out when read.
    """

    __slots__ = ("_joins", "_parts", "heads", "tails")

    def __init__(
        self,
        heads: tuple[Task, ...],
        tails: tuple[Task, ...],
        parts: tuple[Task | Flow, ...],
        joins: tuple[tuple[tuple[Task, ...], tuple[Task, ...]], ...] = (),
    ) -> None:
        self.heads = heads
        self.tails = tails
        self._parts = parts
        #: each ``(tails, heads)``: every one of ``tails`` runs before every one of ``heads``
        self._joins = joins

    @classmethod
    def of(cls, item: Task | Flow | Iterable[Task | Flow]) -> Flow:
        """Make a flow of a task, a flow, or a list of them (side by side)."""
        if isinstance(item, Flow):
            return item
        if isinstance(item, Task):
            one = (item,)
            return cls(one, one, one)
        if isinstance(item, str | bytes) or not isinstance(item, Iterable):
            raise DagDefinitionError(
                f"expected a task, a flow (a >> b) or a list of them, got {item!r}"
            )
        parts = tuple(part if isinstance(part, Task) else cls.of(part) for part in item)
        if all(isinstance(part, Task) for part in parts):
            return cls(parts, parts, parts)  # type: ignore[arg-type]
        heads = tuple(t for p in parts for t in ((p,) if isinstance(p, Task) else p.heads))
        tails = tuple(t for p in parts for t in ((p,) if isinstance(p, Task) else p.tails))
        return cls(heads, tails, parts)

    def __rshift__(self, other: Task | Flow | Iterable[Task | Flow]) -> Flow:
        right = Flow.of(other)
        return Flow(self.heads, right.tails, (self, right), ((self.tails, right.heads),))

    def __rrshift__(self, other: Task | Flow | Iterable[Task | Flow]) -> Flow:
        return Flow.of(other) >> self

    def walk(self) -> tuple[list[Task], list[tuple[tuple[Task, ...], tuple[Task, ...]]]]:
        """Every task in order of first appearance (repeats included) and every join."""
        tasks: list[Task] = []
        joins: list[tuple[tuple[Task, ...], tuple[Task, ...]]] = []
        stack: list[Task | Flow] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, Task):
                tasks.append(item)
                continue
            joins.extend(item._joins)
            parts = item._parts
            if parts is item.heads and parts is item.tails:  # tasks side by side
                tasks.extend(parts)  # type: ignore[arg-type]
            else:
                stack.extend(reversed(parts))
        return tasks, joins

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self.walk()[0])

    @property
    def edges(self) -> tuple[tuple[Task, Task], ...]:
        return tuple((a, b) for tails, heads in self.walk()[1] for a in tails for b in heads)

    def __repr__(self) -> str:
        return f"<Flow from {list(self.heads)} to {list(self.tails)}>"


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
    def build(
        cls, dag_id: str, tasks: Mapping[str, Task], edges: Iterable[tuple[str, str]]
    ) -> Graph:
        """The graph of ``tasks`` (in order) and ``edges`` (``(upstream, downstream)``
        task ids)."""
        index = {task_id: i for i, task_id in enumerate(tasks)}
        parents: list[list[int]] = [[] for _ in index]
        for a, b in edges:
            parents[index[b]].append(index[a])
        return cls.of_parents(dag_id, tuple(tasks.values()), index, parents)

    @classmethod
    def of_parents(
        cls,
        dag_id: str,
        tasks: tuple[Task, ...],
        index: dict[str, int],
        parents: list[list[int]],
    ) -> Graph:
        """The graph of ``tasks`` given, per task index, the indexes of its upstream
        tasks (in any order, repeats allowed); ``index`` maps ids to indexes."""
        ids = tuple(index)
        numbers = tuple(index.values())  # one int object per index, shared below
        # Equal index tuples are kept once: siblings share their upstream and downstream.
        shared: dict[tuple[int, ...], tuple[int, ...]] = {}
        children: list[list[int]] = [[] for _ in ids]
        upstream: list[tuple[int, ...]] = []
        for b, found in enumerate(parents):
            if len(found) > 1:
                found = sorted(set(found))
            key = tuple(found)
            upstream.append(shared.setdefault(key, key))
            b = numbers[b]
            for a in found:
                children[a].append(b)
        downstream = []
        for found in children:
            key = tuple(found)
            downstream.append(shared.setdefault(key, key))
        del shared, children
        order = _topological_order(numbers, downstream, upstream)
        if len(order) < len(ids):
            _check_acyclic(dag_id, ids, downstream)
        map_source = []
        plain, pooled = True, False
        for i, t in enumerate(tasks):
            if t.pool is not None:
                pooled = True
            if t.map_over is None:
                map_source.append(-1)
                if (
                    plain
                    and t.trigger_rule is TriggerRule.all_success
                    and not t.branch
                    and t.sensor is None
                ):
                    continue
                plain = False
                continue
            plain = False
            source = index.get(t.map_over)
            if source is None or source not in upstream[i]:
                direct = ", ".join(ids[p] for p in upstream[i]) or "none"
                raise DagDefinitionError(
                    f"DAG {dag_id!r}: task {t.id!r} maps over {t.map_over!r}, which is not "
                    f"directly upstream of it (upstream: {direct}); write "
                    f"{t.map_over} >> {t.id}.map({t.map_over!r})"
                )
            map_source.append(source)
        return cls(
            map_source=tuple(map_source),
            plain=plain,
            mapped=any(source >= 0 for source in map_source),
            pooled=pooled,
            order=order,
            ids=ids,
            tasks=tasks,
            index=index,
            children=tuple(downstream),
            parents=tuple(upstream),
            roots=tuple(numbers[i] for i, p in enumerate(upstream) if not p),
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


def _topological_order(
    numbers: tuple[int, ...],
    children: list[tuple[int, ...]],
    parents: list[tuple[int, ...]],
) -> tuple[int, ...]:
    """Task indexes, each after its parents; shorter than the graph when it has a cycle."""
    waiting = [len(p) for p in parents]
    ready = [numbers[i] for i, n in enumerate(waiting) if n == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return tuple(order)


def _check_acyclic(dag_id: str, ids: tuple[str, ...], children: Sequence[Sequence[int]]) -> None:
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
        self._graph: Graph | None = None

    def add(self, *flows: Task | Flow | Iterable[Task | Flow]) -> DAG:
        """Add tasks and flows (``a >> b``, lists of either). Validates at once.

        :raises DagDefinitionError: a cycle, two different tasks with one id, or a bad id;
            the DAG is left unchanged.
        """
        # Building a large DAG makes millions of objects, none of them garbage: the
        # collector's passes over them would cost more than the building itself.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._graph = self._grown(flows)
        finally:
            if collecting:
                gc.enable()
        return self

    def _grown(self, flows: tuple[Task | Flow | Iterable[Task | Flow], ...]) -> Graph:
        """The graph with ``flows`` added (this DAG's graph is left as it is)."""
        old = self.graph
        index = dict(old.index)
        tasks = list(old.tasks)
        parents = [list(p) for p in old.parents]
        for item in flows:
            found, joins = Flow.of(item).walk()
            for t in found:
                if not isinstance(t, Task):
                    raise DagDefinitionError(f"DAG {self.dag_id!r}: {t!r} is not a Task")
                i = index.setdefault(t.id, len(tasks))
                if i == len(tasks):
                    tasks.append(t)
                    parents.append([])
                elif tasks[i] is not t:
                    raise DagDefinitionError(
                        f"DAG {self.dag_id!r} has two different tasks with id {t.id!r}; "
                        f"give one of them another id, e.g. {t._other_id_example()}"
                    )
            for tails, heads in joins:
                upstream = [index[a.id] for a in tails]
                for b in heads:
                    parents[index[b.id]].extend(upstream)
        return Graph.of_parents(self.dag_id, tuple(tasks), index, parents)

    @property
    def tasks(self) -> Mapping[str, Task]:
        graph = self.graph
        return dict(zip(graph.ids, graph.tasks, strict=True))

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = Graph.build(self.dag_id, {}, ())
        return self._graph

    def _head(self) -> dict[str, Any]:
        """The definition but its tasks."""
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
        }
        if self.run_timeout is not None:  # only when set: other DAGs keep their hash
            found["run_timeout"] = self.run_timeout.total_seconds()
        if self.max_active_tasks is not None:
            found["max_active_tasks"] = self.max_active_tasks
        return found

    def definition(self) -> dict[str, Any]:
        """A JSON description of the DAG; its hash identifies a version."""
        graph = self.graph
        found = self._head()
        found["tasks"] = {
            task_id: {
                "upstream": [graph.ids[p] for p in graph.parents[i]],
                **graph.tasks[i].fingerprint(),
            }
            for i, task_id in enumerate(graph.ids)
        }
        return found

    def definition_hash(self, definition: dict[str, Any] | None = None) -> str:
        """The content hash of :meth:`definition` (pass it when already computed)."""
        if definition is None:
            return self.encoded_definition()[0]
        return _definition.definition_hash(definition)

    def encoded_definition(self) -> tuple[str, bytes]:
        """The hash of :meth:`definition` and its stored form (compressed JSON, see
        :func:`~ppacer_async.storage.decode_definition`), made a batch of tasks at a
        time: a DAG of a million tasks never exists as a million dicts or one text."""
        return _definition.stream_definition(self._head(), self.graph.ids, _TaskTexts(self.graph))

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id!r} with {len(self.graph.ids)} tasks>"


#: Fingerprint values whose type and value alone decide their JSON text.
_SCALARS = frozenset({str, int, float, bool, type(None)})


class _TaskTexts:
    """Each task's entry in the definition as sorted-keys JSON text, by task index.

    Tasks alike (made in a loop) have equal fingerprints: each distinct one is encoded
    once, and each distinct upstream list once.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        known: dict[Any, str] = {}
        #: per task, its fingerprint's text without the closing brace, when "upstream"
        #: sorts after all its keys; else the fingerprint itself
        self.fingerprints: list[str | dict[str, Any]] = []
        add = self.fingerprints.append
        for t in graph.tasks:
            fingerprint = t.fingerprint()
            if not fingerprint or max(fingerprint) >= "upstream":
                add(fingerprint)
                continue
            key: Any = None
            types = tuple(map(type, fingerprint.values()))
            if _SCALARS.issuperset(types):  # hashable, and equal keys mean equal texts
                key = (tuple(fingerprint.items()), types)
                text = known.get(key)
                if text is not None:
                    add(text)
                    continue
            text = _definition.hash_text(fingerprint)[:-1]
            add(text if key is None else known.setdefault(key, text))
        self.upstream: dict[tuple[int, ...], str] = {}

    def __call__(self, i: int) -> str:
        parents = self.graph.parents[i]
        upstream = self.upstream.get(parents)
        if upstream is None:
            ids = self.graph.ids
            upstream = self.upstream[parents] = _definition.hash_text([ids[p] for p in parents])
        fingerprint = self.fingerprints[i]
        if isinstance(fingerprint, str):
            return fingerprint + ',"upstream":' + upstream + "}"
        names = [self.graph.ids[p] for p in parents]
        return _definition.hash_text({"upstream": names, **fingerprint})
