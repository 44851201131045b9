"""W4 threads: 2,000 independent no-op ``def`` tasks, each run in a worker thread.

Measures tasks per second: the cost of handing a blocking task to a thread and its
outcome back to the event loop. The baseline is plain ``asyncio.to_thread`` under a
semaphore as wide as the scheduler's ``max_threads``.
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
    noop_sync,
    open_scheduler,
    timed_run,
)

DAG_ID = "w4_threads"
TASKS = 2_000


def build_roots(count: int) -> DAG:
    """``count`` independent roots, each a no-op plain function."""
    dag = DAG(DAG_ID, max_active_runs=1)
    dag.add([task(noop_sync, id=f"sync_{i}") for i in range(count)])
    return dag


class Threads(Workload):
    key = "W4"
    title = "threads"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = TASKS
        self.dag = build_roots(self.count)

    def metrics(self) -> Sequence[Metric]:
        return [TASK_THROUGHPUT]

    async def baseline(self) -> dict[str, float]:
        seconds = await baseline.run_threads(self.count, SCHEDULER_OPTIONS["max_threads"])
        return {"tasks_per_s": self.count / seconds}

    async def measure(self, storage: Storage) -> dict[str, float]:
        async with open_scheduler(self.dag, storage) as scheduler:
            return {"tasks_per_s": self.count / await timed_run(scheduler, DAG_ID)}

    def describe(self) -> dict[str, Any]:
        return {"tasks": self.count}
