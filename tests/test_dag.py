from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from ppacer_async import DAG, DagDefinitionError, PpacerError, Task, TaskContext, task


@task
async def a(ctx: TaskContext) -> None: ...


@task
async def b(ctx: TaskContext) -> None: ...


@task
def c(ctx: TaskContext) -> None: ...


@task
async def d(ctx: TaskContext) -> None: ...


def edges(dag: DAG) -> set[tuple[str, str]]:
    g = dag.graph
    return {(g.ids[p], g.ids[i]) for i in range(len(g.ids)) for p in g.parents[i]}


def test_chain_fan_out_and_fan_in_compose_with_rshift() -> None:
    dag = DAG("d").add(a >> [b, c] >> d)
    assert edges(dag) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert [dag.graph.ids[i] for i in dag.graph.roots] == ["a"]


def test_list_on_the_left_fans_in() -> None:
    dag = DAG("d").add([a, b] >> c)
    assert edges(dag) == {("a", "c"), ("b", "c")}


def test_flows_inside_lists_keep_their_own_edges() -> None:
    dag = DAG("d").add(a >> [b >> c, d])
    assert edges(dag) == {("a", "b"), ("b", "c"), ("a", "d")}


def test_dag_may_have_several_roots_and_repeated_adds() -> None:
    dag = DAG("d").add(a >> b, c)
    dag.add(c >> d)
    assert sorted(dag.graph.ids[i] for i in dag.graph.roots) == ["a", "c"]
    assert edges(dag) == {("a", "b"), ("c", "d")}


def test_cycle_raises_naming_the_tasks_and_leaves_dag_unchanged() -> None:
    dag = DAG("d").add(a >> b >> c)
    with pytest.raises(DagDefinitionError, match=r"cycle: .*a >> b >> c >> a|cycle"):
        dag.add(c >> a)
    with pytest.raises(DagDefinitionError) as info:
        dag.add(c >> a)
    assert all(name in str(info.value) for name in ("a", "b", "c"))
    assert edges(dag) == {("a", "b"), ("b", "c")}


def test_self_loop_is_a_cycle() -> None:
    with pytest.raises(DagDefinitionError, match="cycle"):
        DAG("d").add(a >> a)


def test_two_different_tasks_with_one_id_raise() -> None:
    @task(id="a")
    async def other(ctx: TaskContext) -> None: ...

    with pytest.raises(DagDefinitionError, match="two different tasks with id 'a'"):
        DAG("d").add(a >> other)


def test_empty_ids_raise() -> None:
    with pytest.raises(DagDefinitionError, match="non-empty"):
        task(id="")(lambda ctx: None)
    with pytest.raises(DagDefinitionError, match="non-empty"):
        DAG("")


def test_errors_are_ppacer_errors_and_value_errors() -> None:
    with pytest.raises(PpacerError):
        DAG("d").add(a >> a)
    with pytest.raises(ValueError, match="cycle"):
        DAG("d").add(a >> a)


def test_naive_start_raises() -> None:
    with pytest.raises(DagDefinitionError, match="time zone"):
        DAG("d", start=datetime(2026, 1, 1))


@pytest.mark.parametrize("timeout", [timedelta(0), timedelta(seconds=-1)])
def test_zero_or_negative_timeout_raises(timeout: timedelta) -> None:
    with pytest.raises(DagDefinitionError, match="timeout must be positive"):
        task(id="x", timeout=timeout)(lambda ctx: None)


def test_bad_task_options_raise() -> None:
    with pytest.raises(DagDefinitionError, match="retries"):
        task(id="x", retries=-1)(lambda ctx: None)
    with pytest.raises(DagDefinitionError, match="retry_backoff"):
        task(id="x", retry_backoff=0.5)(lambda ctx: None)
    with pytest.raises(DagDefinitionError, match="max_active_runs"):
        DAG("d", max_active_runs=0)


@pytest.mark.parametrize("cap", [-1, 2.5, True, "10"])
def test_bad_max_catchup_runs_is_refused_naming_the_option(cap: object) -> None:
    with pytest.raises(DagDefinitionError, match="max_catchup_runs must be a whole number"):
        DAG("d", max_catchup_runs=cap)  # type: ignore[arg-type]
    assert DAG("d", max_catchup_runs=None).max_catchup_runs is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_params_are_refused_at_definition(value: float) -> None:
    with pytest.raises(DagDefinitionError) as info:
        DAG("d", params={"limits": {"low": value}})
    message = str(info.value)
    assert message.startswith(f"DAG 'd': params['limits']['low'] = {value!r} is not a finite")
    assert "use None or a string" in message


def test_task_decorator_keeps_options_and_detects_async() -> None:
    @task(retries=2, retry_delay=timedelta(milliseconds=250), priority=5)
    def blocking(ctx: TaskContext) -> int:
        return 1

    assert blocking.id == "blocking"
    assert blocking.retries == 2
    assert blocking.retry_delay == timedelta(milliseconds=250)
    assert blocking.priority == 5
    assert not blocking.is_async
    assert a.is_async


def test_retry_delay_grows_with_backoff_up_to_the_cap() -> None:
    t = task(
        id="t",
        retry_delay=timedelta(seconds=1),
        retry_backoff=3,
        max_retry_delay=timedelta(seconds=5),
    )(lambda ctx: None)
    assert [t.retry_delay_for(n) for n in (1, 2, 3)] == [
        timedelta(seconds=1),
        timedelta(seconds=3),
        timedelta(seconds=5),
    ]


def test_class_based_task() -> None:
    class Extract(Task):
        async def execute(self, ctx: TaskContext) -> int:
            return 1

    class Load(Task):
        def execute(self, ctx: TaskContext) -> None:
            return None

    e, ld = Extract(), Load(id="load", retries=1)
    assert (e.id, e.is_async, ld.id, ld.is_async) == ("Extract", True, "load", False)
    assert edges(DAG("d").add(e >> ld)) == {("Extract", "load")}


def test_definition_hash_changes_with_the_graph_only() -> None:
    first = DAG("d").add(a >> b).definition_hash()
    assert DAG("d").add(a >> b).definition_hash() == first
    assert DAG("d").add(a >> [b, c]).definition_hash() != first
    assert DAG("d", max_active_runs=3).add(a >> b).definition_hash() != first


def test_start_must_be_aware_but_any_zone_is_fine() -> None:
    dag = DAG("d", start=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))))
    assert dag.start is not None


def test_editing_a_tasks_code_makes_a_new_definition() -> None:
    @task(id="same")
    async def one(ctx: TaskContext) -> int:
        return 1

    @task(id="same")
    async def two(ctx: TaskContext) -> int:
        return 2

    assert DAG("d").add(one).definition_hash() != DAG("d").add(two).definition_hash()
    assert DAG("d").add(one).definition_hash() == DAG("d").add(one).definition_hash()


def test_mapping_over_a_task_that_is_not_directly_upstream_is_refused() -> None:
    @task
    async def split(ctx: TaskContext) -> list[int]:
        return [1, 2]

    @task
    async def process(ctx: TaskContext) -> None: ...

    @task
    async def other(ctx: TaskContext) -> None: ...

    with pytest.raises(DagDefinitionError, match="maps over 'split', which is not directly"):
        DAG("m").add(other >> process.map("split"), split)


def test_a_mapped_task_is_one_task_wherever_it_is_used() -> None:
    @task
    async def split(ctx: TaskContext) -> list[int]:
        return [1, 2]

    @task
    async def process(ctx: TaskContext) -> None: ...

    @task
    async def combine(ctx: TaskContext) -> None: ...

    dag = DAG("m").add(split >> process.map("split"), process.map("split") >> combine)
    assert dag.tasks["process"].map_over == "split"
    assert dag.graph.map_source[dag.graph.index["process"]] == dag.graph.index["split"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trigger_rule": "sometimes"}, "unknown trigger_rule 'sometimes'; use one of all_success"),
        ({"retry_jitter": 1.5}, "retry_jitter must be a fraction from 0 to 1"),
        ({"retry_on": "ValueError"}, "retry_on must be an exception class or a tuple"),
        ({"max_map_length": -1}, "max_map_length must be a whole number >= 0"),
    ],
)
def test_bad_task_options_say_what_to_write(options: dict[str, object], message: str) -> None:
    with pytest.raises(DagDefinitionError, match=re.escape(message)):
        task(id="t", **options)(lambda ctx: None)  # type: ignore[call-overload]


def test_run_timeout_must_be_positive() -> None:
    with pytest.raises(DagDefinitionError, match="run_timeout must be positive"):
        DAG("d", run_timeout=timedelta(0))


def test_new_options_left_at_their_defaults_keep_the_definition_hash() -> None:
    @task
    async def a(ctx: TaskContext) -> None: ...

    found = a.fingerprint()
    assert not {"trigger_rule", "retry_jitter", "retry_on", "branch", "map_over"} & set(found)
