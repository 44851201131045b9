"""W8 mapped fan-out: one task mapped over the 10,000 elements its upstream returns.

``split >> process.map("split") >> combine``: ``split`` returns ``list(range(10000))``,
each instance of ``process`` returns its element, and ``combine`` gets the 10,000
results in index order. Measures tasks per second (instances + 2) from ``trigger`` to
``wait_for_run``: the cost of expanding a task at run time, running and persisting
each instance as its own attempt, and gathering the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ppacer_async import DAG, TaskContext, task
from ppacer_async.abc import Storage

from . import baseline
from ._common import TASK_THROUGHPUT, Metric, Workload, open_scheduler, timed_run

DAG_ID = "w8_map"
ELEMENTS = 10_000


def build_mapped(elements: int, dag_id: str = DAG_ID) -> DAG:
    @task(id="split")
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(elements))

    @task(id="process", max_map_length=max(elements, 1))
    async def process(ctx: TaskContext) -> Any:
        return ctx.item

    @task(id="combine")
    async def combine(ctx: TaskContext) -> int:
        results = ctx.upstream["process"]
        if len(results) != elements or results[-1] != elements - 1:
            raise RuntimeError("the mapped results are not all there, in order")
        return len(results)

    return DAG(dag_id, max_active_runs=1).add(split >> process.map("split") >> combine)


async def run_mapped(dag: DAG, storage: Storage) -> float:
    async with open_scheduler(dag, storage) as scheduler:
        return await timed_run(scheduler, dag.dag_id)


class MappedFanOut(Workload):
    key = "W8"
    title = "mapped fan-out"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.elements = ELEMENTS
        self.dag = build_mapped(self.elements)

    @property
    def tasks(self) -> int:
        return self.elements + 2

    def metrics(self) -> Sequence[Metric]:
        return [TASK_THROUGHPUT]

    async def baseline(self) -> dict[str, float]:
        return {"tasks_per_s": self.tasks / await baseline.run_mapped(self.elements)}

    async def measure(self, storage: Storage) -> dict[str, float]:
        return {"tasks_per_s": self.tasks / await run_mapped(self.dag, storage)}

    def describe(self) -> dict[str, Any]:
        return {"elements": self.elements, "tasks": self.tasks}
