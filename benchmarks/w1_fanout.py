"""W1 fan-out: one root, 10,000 no-op async leaves, one join.

Measures tasks per second (leaves + 2) from ``trigger`` to ``wait_for_run`` returning:
the cost of scheduling, running and persisting one tiny task when thousands are ready
at once. Each repetition also runs the same graph with ``max_concurrent_tasks=1000``
and reports its throughput as a fraction of the default's, measured in the same
repetition: more workers must not make a run of tiny tasks slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ppacer_async import DAG, task
from ppacer_async.abc import Storage

from . import baseline
from ._common import (
    SCHEDULER_OPTIONS,
    TASK_THROUGHPUT,
    Metric,
    Workload,
    fresh_storage,
    noop,
    open_scheduler,
    timed_run,
)

DAG_ID = "w1_fanout"
LEAVES = 10_000
#: The second, wider worker pool each repetition also measures.
MANY_WORKERS = 1000
MANY_WORKERS_KEY = f"tasks_per_s@{MANY_WORKERS}w"
MANY_WORKERS_SHARE_KEY = f"share@{MANY_WORKERS}w"


def build_fan_out(leaves: int, dag_id: str = DAG_ID) -> DAG:
    """``root >> [leaf_0 .. leaf_n-1] >> join``, every task a no-op coroutine."""
    root = task(noop, id="root")
    join = task(noop, id="join")
    middle = [task(noop, id=f"leaf_{i}") for i in range(leaves)]
    dag = DAG(dag_id, max_active_runs=1)
    dag.add(root >> middle >> join)
    return dag


async def run_fan_out(
    dag: DAG, storage: Storage, *, max_concurrent_tasks: int | None = None
) -> float:
    """Start a scheduler on ``storage``, then time one run of ``dag`` (seconds)."""
    workers = max_concurrent_tasks or SCHEDULER_OPTIONS["max_concurrent_tasks"]
    async with open_scheduler(dag, storage, max_concurrent_tasks=workers) as scheduler:
        return await timed_run(scheduler, dag.dag_id)


class FanOut(Workload):
    key = "W1"
    title = "fan-out"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leaves = LEAVES
        self.dag = build_fan_out(self.leaves)
        self.parents = baseline.fan_out_parents(self.leaves)

    @property
    def tasks(self) -> int:
        return self.leaves + 2

    def metrics(self) -> Sequence[Metric]:
        return [
            TASK_THROUGHPUT,
            Metric(
                key=MANY_WORKERS_KEY,
                label=f"throughput, {MANY_WORKERS:,} workers",
                unit="tasks/s",
                higher_is_better=True,
            ),
            Metric(
                key=MANY_WORKERS_SHARE_KEY,
                label=f"{MANY_WORKERS:,} workers vs default",
                unit="x",
                higher_is_better=True,
            ),
        ]

    async def baseline(self) -> dict[str, float]:
        return {"tasks_per_s": self.tasks / await baseline.run_graph(self.parents)}

    async def repetition(self, kind: str) -> dict[str, float]:
        async with fresh_storage(kind, self.settings.postgres_dsn) as storage:
            default = self.tasks / await run_fan_out(self.dag, storage)
        async with fresh_storage(kind, self.settings.postgres_dsn) as storage:
            wide = self.tasks / await run_fan_out(
                self.dag, storage, max_concurrent_tasks=MANY_WORKERS
            )
        return {
            "tasks_per_s": default,
            MANY_WORKERS_KEY: wide,
            MANY_WORKERS_SHARE_KEY: wide / default,
        }

    async def measure(self, storage: Storage) -> dict[str, float]:
        return {"tasks_per_s": self.tasks / await run_fan_out(self.dag, storage)}

    def describe(self) -> dict[str, Any]:
        return {"leaves": self.leaves, "tasks": self.tasks}
