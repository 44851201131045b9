"""W3 many runs: 1,000 runs of a three-task DAG (``a >> b >> c``), triggered back to back.

Measures runs per second from the first ``trigger`` until every run has finished: the
per-run overhead (creating the run, its task rows, finishing it) rather than per task.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio

from ppacer_async import DAG, Scheduler, task
from ppacer_async.abc import Storage

from . import baseline
from ._common import Metric, Workload, check_success, noop, open_scheduler, profiled, settle

DAG_ID = "w3_many_runs"
RUNS = 1_000


def build_small(max_active_runs: int) -> DAG:
    """``a >> b >> c``, no-op coroutines, with room for every run to be active at once."""
    a, b, c = (task(noop, id=name) for name in "abc")
    dag = DAG(DAG_ID, max_active_runs=max_active_runs)
    dag.add(a >> b >> c)
    return dag


async def _wait(scheduler: Scheduler, run_id: int) -> None:
    run = await scheduler.wait_for_run(run_id)
    check_success(run.status, f"run {run_id} of {DAG_ID}")


class ManyRuns(Workload):
    key = "W3"
    title = "many runs"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runs = RUNS
        self.dag = build_small(max_active_runs=self.runs)

    def metrics(self) -> Sequence[Metric]:
        return [
            Metric(
                key="runs_per_s",
                label="throughput",
                unit="runs/s",
                higher_is_better=True,
                baseline=True,
            )
        ]

    async def baseline(self) -> dict[str, float]:
        return {"runs_per_s": self.runs / await baseline.run_many_chains(self.runs, 3)}

    async def measure(self, storage: Storage) -> dict[str, float]:
        async with open_scheduler(self.dag, storage) as scheduler:
            settle()
            with profiled():
                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(self.runs):
                        run = await scheduler.trigger(DAG_ID)
                        tg.start_soon(_wait, scheduler, run.id)
                elapsed = time.perf_counter() - start
        return {"runs_per_s": self.runs / elapsed}

    def describe(self) -> dict[str, Any]:
        return {"runs": self.runs, "tasks_per_run": 3}
