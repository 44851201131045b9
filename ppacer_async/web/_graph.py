"""A layered drawing of a DAG for the web pages: pure geometry, no I/O.

Tasks flow left to right. Each task goes in the layer after its deepest parent (longest
path), edges that skip layers pass through invisible waypoints so they bend around the
tasks between, and a few barycentre sweeps order each layer to keep edges from crossing.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Mapping, Sequence

import attrs

#: Drawing more tasks than this is refused: the picture would be unreadable anyway.
MAX_GRAPH_TASKS = 400

NODE_HEIGHT = 32
LAYER_GAP = 56
ROW_GAP = 14
MARGIN = 8
#: Average advance of one character of the node label at the stylesheet's 13 px.
CHAR_WIDTH = 7.8
MIN_NODE_WIDTH = 72
MAX_LABEL_CHARS = 28
SWEEPS = 8

#: A task id, or a waypoint ``(source, target, layer)`` of an edge that skips layers.
Vertex = str | tuple[str, str, int]


@attrs.frozen(kw_only=True)
class Node:
    """A task's box: ``x``/``y`` are its top-left corner."""

    task_id: str
    label: str
    status: str | None
    #: one instance per element of an upstream result (``process.map("split")``)
    mapped: bool
    x: float
    y: float
    width: float
    height: float


@attrs.frozen(kw_only=True)
class Edge:
    """An arrow from ``source`` to ``target``; ``path`` is an SVG path ``d`` attribute."""

    source: str
    target: str
    path: str


@attrs.frozen(kw_only=True)
class GraphLayout:
    width: float
    height: float
    nodes: list[Node]
    edges: list[Edge]


def layers_of(upstream: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each task's layer: 0 for roots, else one more than its deepest parent.

    :raises ValueError: an upstream id is not a task, or the graph has a cycle.
    """
    for task_id, parents in upstream.items():
        for parent in parents:
            if parent not in upstream:
                raise ValueError(f"task {task_id!r} names an unknown upstream task {parent!r}")
    children: dict[str, list[str]] = {task_id: [] for task_id in upstream}
    waiting = {task_id: len(set(parents)) for task_id, parents in upstream.items()}
    for task_id, parents in upstream.items():
        for parent in set(parents):
            children[parent].append(task_id)
    layer = {task_id: 0 for task_id in upstream}
    ready = [task_id for task_id, count in waiting.items() if count == 0]
    seen = 0
    while ready:
        task_id = ready.pop()
        seen += 1
        for child in children[task_id]:
            layer[child] = max(layer[child], layer[task_id] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if seen != len(upstream):
        cyclic = sorted(task_id for task_id, count in waiting.items() if count)
        raise ValueError(f"the graph has a cycle through {', '.join(map(repr, cyclic))}")
    return layer


def short_label(task_id: str) -> str:
    if len(task_id) <= MAX_LABEL_CHARS:
        return task_id
    return task_id[: MAX_LABEL_CHARS - 1] + "…"


def layout_graph(
    upstream: Mapping[str, Sequence[str]],
    statuses: Mapping[str, str] | None = None,
    mapped: Collection[str] = (),
) -> GraphLayout:
    """Place the tasks of a DAG given each task's upstream ids (in definition order).

    ``statuses`` maps a task id to the status its box is coloured by (the latest run's);
    tasks missing from it are drawn without a status. ``mapped`` tasks are drawn as a
    stack.
    :raises ValueError: more than :data:`MAX_GRAPH_TASKS` tasks, an unknown upstream id
        or a cycle.
    """
    if len(upstream) > MAX_GRAPH_TASKS:
        raise ValueError(
            f"the DAG has {len(upstream)} tasks; graphs of more than {MAX_GRAPH_TASKS} "
            "are not drawn"
        )
    statuses = statuses or {}
    layer = layers_of(upstream)
    order = list(upstream)

    rows: list[list[Vertex]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    ups: dict[Vertex, list[Vertex]] = {}
    downs: dict[Vertex, list[Vertex]] = {}
    for task_id in order:
        rows[layer[task_id]].append(task_id)
        ups.setdefault(task_id, [])
        downs.setdefault(task_id, [])
    chains: list[tuple[str, str, list[Vertex]]] = []
    for task_id in order:
        for parent in dict.fromkeys(upstream[task_id]):
            chain: list[Vertex] = [parent]
            for between in range(layer[parent] + 1, layer[task_id]):
                waypoint = (parent, task_id, between)
                rows[between].append(waypoint)
                chain.append(waypoint)
            chain.append(task_id)
            for a, b in itertools.pairwise(chain):
                downs.setdefault(a, []).append(b)
                ups.setdefault(b, []).append(a)
            chains.append((parent, task_id, chain))

    _order_rows(rows, ups, downs)

    widths = [
        max(
            (_node_width(v) for v in row if isinstance(v, str)),
            default=MIN_NODE_WIDTH,
        )
        for row in rows
    ]
    height_of_row = [len(row) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP for row in rows]
    tallest = max(height_of_row, default=0)
    where: dict[Vertex, tuple[float, float, float]] = {}  # vertex -> x, centre y, width
    x = float(MARGIN)
    for index, row in enumerate(rows):
        top = MARGIN + (tallest - height_of_row[index]) / 2
        for slot, vertex in enumerate(row):
            where[vertex] = (
                x,
                top + slot * (NODE_HEIGHT + ROW_GAP) + NODE_HEIGHT / 2,
                widths[index],
            )
        x += widths[index] + LAYER_GAP

    nodes = [
        Node(
            task_id=task_id,
            label=short_label(task_id),
            status=statuses.get(task_id),
            mapped=task_id in mapped,
            x=where[task_id][0] + (where[task_id][2] - _node_width(task_id)) / 2,
            y=where[task_id][1] - NODE_HEIGHT / 2,
            width=_node_width(task_id),
            height=NODE_HEIGHT,
        )
        for task_id in order
    ]
    edges = [
        Edge(source=source, target=target, path=_edge_path(chain, where))
        for source, target, chain in chains
    ]
    width = x - LAYER_GAP + MARGIN if rows else 2 * MARGIN
    return GraphLayout(width=round(width, 1), height=tallest + 2 * MARGIN, nodes=nodes, edges=edges)


def _node_width(task_id: str) -> float:
    return max(MIN_NODE_WIDTH, round(len(short_label(task_id)) * CHAR_WIDTH + 28))


def _order_rows(
    rows: list[list[Vertex]],
    ups: Mapping[Vertex, list[Vertex]],
    downs: Mapping[Vertex, list[Vertex]],
) -> None:
    """Reorder each row by the mean position of its neighbours, sweeping down and up,
    and keep the order with the fewest crossings seen."""
    best = [list(row) for row in rows]
    best_crossings = _crossings(rows, downs)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        indices = range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)
        for i in indices:
            neighbours = ups if downward else downs
            fixed = rows[i - 1] if downward else rows[i + 1]
            position = {vertex: slot for slot, vertex in enumerate(fixed)}
            rows[i] = _by_barycentre(rows[i], neighbours, position)
        crossings = _crossings(rows, downs)
        if crossings < best_crossings:
            best, best_crossings = [list(row) for row in rows], crossings
        if best_crossings == 0:
            break
    rows[:] = best


def _by_barycentre(
    row: list[Vertex],
    neighbours: Mapping[Vertex, list[Vertex]],
    position: Mapping[Vertex, int],
) -> list[Vertex]:
    """Sort a row by the mean position of each vertex's neighbours in the fixed row;
    a vertex without any keeps its place."""
    keys = {}
    for slot, vertex in enumerate(row):
        linked = [position[n] for n in neighbours.get(vertex, ()) if n in position]
        keys[vertex] = (sum(linked) / len(linked) if linked else float(slot), slot)
    return sorted(row, key=keys.__getitem__)


def _crossings(
    rows: Sequence[Sequence[Vertex]],
    downs: Mapping[Vertex, list[Vertex]],
) -> int:
    total = 0
    for upper, lower in itertools.pairwise(rows):
        slot = {vertex: i for i, vertex in enumerate(lower)}
        pairs = sorted(
            (i, slot[child])
            for i, vertex in enumerate(upper)
            for child in downs.get(vertex, ())
            if child in slot
        )
        # Each inversion of the lower ends is one crossing.
        seen: list[int] = []
        for _, end in pairs:
            total += len(seen) - bisect.bisect_right(seen, end)
            bisect.insort(seen, end)
    return total


def _edge_path(
    chain: Sequence[Vertex],
    where: Mapping[Vertex, tuple[float, float, float]],
) -> str:
    """A smooth path from the right side of the first box to the left side of the last,
    through the centre line of every waypoint."""
    points: list[tuple[float, float]] = []
    for i, vertex in enumerate(chain):
        x, y, width = where[vertex]
        box = _node_width(vertex) if isinstance(vertex, str) else 0.0
        left = x + (width - box) / 2
        if i == 0:
            points.append((left + box, y))
        elif i == len(chain) - 1:
            points.append((left, y))
        else:
            points.append((x, y))
            points.append((x + width, y))
    d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y0 == y1:
            d.append(f"L{x1:.1f},{y1:.1f}")
        else:
            bend = (x1 - x0) / 2
            d.append(f"C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(d)
