"""A DAG's definition: its content hash stays what earlier versions recorded, its stored
form (compressed JSON) reads back as the definition, and large DAGs build and store
task by task."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from ppacer_async import DAG, Flow, Task, TaskContext, TriggerRule, task
from ppacer_async._task import Poking
from ppacer_async.schedules import Cron
from ppacer_async.storage import decode_definition, encode_definition
from ppacer_async.tasks import HttpTask, ShellTask


async def fetch(ctx: TaskContext) -> list[int]:
    return [1, 2]


async def work(ctx: TaskContext) -> int:
    """Doubles an item."""
    return int(ctx.item) * 2


def combine(ctx: TaskContext) -> int:
    return 0


def rich_dag() -> DAG:
    """A DAG using every option that the definition records."""
    first = task(fetch, id="fetch", retries=2, retry_delay=timedelta(seconds=3))
    mapped = task(work, id="work", retry_on=(ValueError,), pool="db", pool_slots=2).map("fetch")
    done = task(combine, id="combine", trigger_rule=TriggerRule.all_done, retry_jitter=0.5)
    pick = task.branch(lambda ctx: "combine", id="pick")
    wait = task.sensor(fetch, id="wait", poke_interval=timedelta(seconds=5))
    shell = ShellTask("shell", ["echo", "hi"], env={"A": "secret"})
    http = HttpTask("http", "GET", "https://example.com/x")
    dag = DAG(
        "rich",
        schedule=Cron("0 3 * * *"),
        start=datetime(2026, 1, 1, tzinfo=UTC),
        tags=("a", "b"),
        params={"n": 1, "names": ["x"]},
        run_timeout=timedelta(hours=1),
        max_active_tasks=4,
    )
    dag.add(wait >> first >> mapped >> done, first >> pick >> done, [shell, http] >> done)
    return dag


def fan_out(leaves: int) -> DAG:
    root = task(fetch, id="root")
    join = task(combine, id="join")
    return DAG("fan").add(root >> [task(work, id=f"leaf_{i}") for i in range(leaves)] >> join)


def earlier_hash(definition: dict[str, object]) -> str:
    """How earlier versions hashed a definition: its whole sorted-keys JSON text."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("make", [rich_dag, lambda: fan_out(5000), lambda: DAG("empty")])
def test_the_hash_is_the_one_earlier_versions_recorded(make: object) -> None:
    dag = make()  # type: ignore[operator]
    definition = dag.definition()

    found, _ = dag.encoded_definition()

    assert found == earlier_hash(definition) == dag.definition_hash()
    assert dag.definition_hash(definition) == found


def test_an_unchanged_dag_keeps_the_hash_the_previous_release_recorded() -> None:
    # Recorded by the release before the definition was streamed, for this very DAG.
    assert rich_dag().definition_hash() == (
        "5f61be9dca649ec1b274a6da8839fd8285ad5ec0031055e9ee50dfca4ac10954"
    )


def test_a_changed_task_changes_the_hash() -> None:
    dag = fan_out(3)
    changed = fan_out(3)
    changed.graph.tasks[2].retries = 1

    assert dag.definition_hash() != changed.definition_hash()


def test_the_stored_form_reads_back_as_the_definition_in_task_order() -> None:
    for dag in (rich_dag(), fan_out(5000)):
        definition = dag.definition()
        _, stored = dag.encoded_definition()

        found = decode_definition(stored)

        assert found == definition
        assert list(found["tasks"]) == list(definition["tasks"])  # definition order
    # compressed: tasks alike take a few bytes each, far less than their JSON
    assert len(stored) * 20 < len(json.dumps(definition))


def test_earlier_stored_forms_still_read() -> None:
    definition = rich_dag().definition()
    text = json.dumps(definition)

    assert decode_definition(text) == definition  # SQLite's TEXT
    assert decode_definition(text.encode()) == definition  # PostgreSQL's jsonb as bytea
    assert decode_definition(definition) == definition  # an object
    assert decode_definition(encode_definition(definition)) == definition
    assert (
        zlib.decompress(encode_definition(definition))
        == json.dumps(definition, separators=(",", ":")).encode()
    )


def test_a_long_chain_builds_without_recursion_and_keeps_its_order() -> None:
    tasks = [task(combine, id=f"t{i}") for i in range(20_000)]
    flow: Task | Flow = tasks[0]
    for t in tasks[1:]:
        flow = flow >> t

    dag = DAG("chain").add(flow)

    graph = dag.graph
    assert graph.ids[:3] == ("t0", "t1", "t2") and len(graph.ids) == 20_000
    assert graph.parents[graph.index["t19999"]] == (graph.index["t19998"],)
    assert [graph.ids[i] for i in graph.order[:3]] == ["t0", "t1", "t2"]
    assert dag.definition()["tasks"]["t5"]["upstream"] == ["t4"]


def test_a_flow_still_lists_its_tasks_and_edges() -> None:
    a, b, c, d = (task(combine, id=name) for name in "abcd")

    flow = a >> [b, c] >> d

    assert flow.tasks == (a, b, c, d)
    assert set(flow.edges) == {(a, b), (a, c), (b, d), (c, d)}
    assert (flow.heads, flow.tails) == ((a,), (d,))


def test_repeated_edges_count_once_and_upstream_lists_follow_task_order() -> None:
    a, b, c = (task(combine, id=name) for name in "abc")

    dag = DAG("d").add(b >> c, a >> c, b >> c, [a, b] >> c)

    assert dag.definition()["tasks"]["c"]["upstream"] == ["b", "a"]  # first seen first
    assert dag.graph.children[dag.graph.index["b"]] == (dag.graph.index["c"],)


def test_a_failed_add_leaves_the_dag_as_it_was() -> None:
    a, b = task(combine, id="a"), task(combine, id="b")
    dag = DAG("d").add(a >> b)
    before = dag.definition_hash()

    with pytest.raises(ValueError, match="cycle"):
        dag.add(b >> a)
    with pytest.raises(ValueError, match="two different tasks with id 'a'"):
        dag.add(task(fetch, id="a") >> task(fetch, id="c"))

    assert dag.definition_hash() == before and list(dag.tasks) == ["a", "b"]


def test_a_task_made_from_a_function_keeps_its_docstring_and_takes_attributes() -> None:
    made = task(work)

    assert made.__doc__ == "Doubles an item."
    assert type(made).__doc__ == "A task made from a function by the ``task`` decorator."
    made.note = "mine"  # type: ignore[attr-defined]
    assert made.note == "mine"  # type: ignore[attr-defined]

    class Counting(Task):
        async def execute(self, ctx: TaskContext) -> int:
            return self.count

        def __init__(self) -> None:
            super().__init__(id="counting")
            self.count = 3

    assert Counting().count == 3 and Counting().is_async


def test_a_bad_function_is_refused_each_time_it_is_used() -> None:
    def no_context() -> None:
        pass

    for name in ("one", "two"):
        with pytest.raises(ValueError, match="must take the task context"):
            task(no_context, id=name)  # type: ignore[arg-type]
    assert not task(combine, id="a").is_async and task(work, id="b").is_async


def test_a_sensor_keeps_its_poking_in_the_definition() -> None:
    spec = rich_dag().definition()["tasks"]["wait"]

    assert (
        spec["sensor"]
        == Poking(interval=timedelta(seconds=5), timeout=timedelta(days=7)).describe()
    )


def test_ids_that_need_escaping_are_encoded_as_json() -> None:
    from ppacer_async._definition import stream_definition

    ids = ('a"b', "c\u00e9")
    definition: dict[str, object] = {"dag_id": "d", "tasks": {n: {"upstream": []} for n in ids}}

    found, stored = stream_definition({"dag_id": "d"}, ids, lambda i: '{"upstream":[]}')

    assert found == earlier_hash(definition)
    assert decode_definition(stored) == definition
