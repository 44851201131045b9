from __future__ import annotations

import re

import pytest

from ppacer_async.web._graph import MAX_GRAPH_TASKS, GraphLayout, layout_graph


def _box(layout: GraphLayout, task_id: str):
    return next(n for n in layout.nodes if n.task_id == task_id)


def _points(path: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path)]


def _inside(point, node) -> bool:
    x, y = point
    return node.x < x < node.x + node.width and node.y < y < node.y + node.height


def test_every_edge_runs_left_to_right_from_parent_to_child():
    upstream = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["a", "d"]}
    layout = layout_graph(upstream)
    for edge in layout.edges:
        source, target = _box(layout, edge.source), _box(layout, edge.target)
        assert target.x >= source.x + source.width
        start, *_, end = _points(edge.path)
        assert start == (source.x + source.width, source.y + source.height / 2)
        assert end == (target.x, target.y + target.height / 2)
    assert {(e.source, e.target) for e in layout.edges} == {
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
        ("a", "e"),
        ("d", "e"),
    }


def test_a_task_sits_one_layer_after_its_deepest_parent():
    layout = layout_graph({"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"]})
    xs = [_box(layout, task_id).x for task_id in "abcd"]
    assert xs == sorted(xs)
    assert len(set(xs)) == 4


def test_boxes_never_overlap_and_fit_the_drawing():
    upstream = {f"t{i}": [f"t{i // 3}"] if i else [] for i in range(40)}
    layout = layout_graph(upstream)
    for i, one in enumerate(layout.nodes):
        assert one.x >= 0 and one.y >= 0
        assert one.x + one.width <= layout.width and one.y + one.height <= layout.height
        for other in layout.nodes[i + 1 :]:
            apart = (
                one.x + one.width <= other.x
                or other.x + other.width <= one.x
                or one.y + one.height <= other.y
                or other.y + other.height <= one.y
            )
            assert apart, (one, other)


def test_an_edge_that_skips_a_layer_bends_around_the_task_between():
    layout = layout_graph({"a": [], "b": ["a"], "c": ["a", "b"]})
    skipping = next(e for e in layout.edges if (e.source, e.target) == ("a", "c"))
    assert not any(_inside(point, _box(layout, "b")) for point in _points(skipping.path))


def test_rows_are_ordered_so_that_edges_do_not_cross():
    # In definition order the second layer is [c, d], and a->d, b->c would cross.
    upstream = {"a": [], "b": [], "c": ["b"], "d": ["a"]}
    layout = layout_graph(upstream)
    a, b, c, d = (_box(layout, t) for t in "abcd")
    assert (a.y < b.y) == (d.y < c.y)


def test_tasks_carry_the_status_they_are_coloured_by_and_whether_they_are_mapped():
    layout = layout_graph({"a": [], "b": ["a"]}, {"a": "success"}, mapped={"b"})
    assert (_box(layout, "a").status, _box(layout, "a").mapped) == ("success", False)
    assert (_box(layout, "b").status, _box(layout, "b").mapped) == (None, True)


def test_long_task_ids_are_shortened_in_the_box_but_kept_whole_as_the_id():
    long_id = "extract_all_the_customer_records_from_the_warehouse"
    node = layout_graph({long_id: []}).nodes[0]
    assert node.task_id == long_id
    assert node.label.endswith("…") and len(node.label) < len(long_id)


def test_an_empty_dag_draws_an_empty_picture():
    layout = layout_graph({})
    assert layout.nodes == [] and layout.edges == []


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        ({"a": ["b"], "b": ["a"]}, "cycle through 'a', 'b'"),
        ({"a": ["missing"]}, "unknown upstream task 'missing'"),
        ({f"t{i}": [] for i in range(MAX_GRAPH_TASKS + 1)}, "are not drawn"),
    ],
)
def test_graphs_that_cannot_be_drawn_are_refused_with_the_reason(upstream, message):
    with pytest.raises(ValueError, match=message):
        layout_graph(upstream)
