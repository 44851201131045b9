"""W2 chain: 1,000 no-op tasks in a line.

Measures the hand-off latency: the delay from a parent's end to its child's start,
read from the stored task runs (``child.started_at - parent.finished_at``) once the run
is over. Each hop includes committing the parent's outcome and scheduling the child.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ppacer_async import DAG, TaskRun, TaskStatus, task
from ppacer_async.abc import Storage

from . import baseline
from ._common import (
    Metric,
    Workload,
    check_success,
    noop,
    open_scheduler,
    percentile,
    profiled,
    settle,
)

DAG_ID = "w2_chain"
LENGTH = 1_000


def build_chain(length: int) -> DAG:
    """``t_0 >> t_1 >> ... >> t_n-1``, every task a no-op coroutine."""
    tasks = [task(noop, id=f"t_{i}") for i in range(length)]
    flow = tasks[0] >> tasks[1]
    for nxt in tasks[2:]:
        flow = flow >> nxt
    dag = DAG(DAG_ID, max_active_runs=1)
    dag.add(flow)
    return dag


def hand_off_delays(task_runs: Sequence[TaskRun], length: int) -> list[float]:
    """Seconds from each ``t_i``'s end to ``t_i+1``'s start, from the stored attempts.

    :raises RuntimeError: a task did not succeed in exactly one attempt.
    """
    by_id = {tr.task_id: tr for tr in task_runs if tr.status is TaskStatus.success}
    delays = []
    for i in range(1, length):
        parent, child = by_id.get(f"t_{i - 1}"), by_id.get(f"t_{i}")
        if parent is None or child is None:
            raise RuntimeError(f"t_{i - 1} or t_{i} has no successful attempt")
        if parent.finished_at is None or child.started_at is None:
            raise RuntimeError(f"t_{i - 1} or t_{i} has no start or end time stored")
        delays.append((child.started_at - parent.finished_at).total_seconds())
    return delays


def _summary(delays: Sequence[float]) -> dict[str, float]:
    return {
        "delay_p50_us": percentile(delays, 50) * 1e6,
        "delay_p99_us": percentile(delays, 99) * 1e6,
    }


class Chain(Workload):
    key = "W2"
    title = "chain"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.length = LENGTH
        self.dag = build_chain(self.length)

    def metrics(self) -> Sequence[Metric]:
        return [
            Metric(
                key="delay_p50_us",
                label="p50 hand-off",
                unit="µs",
                higher_is_better=False,
                baseline=True,
            ),
            Metric(
                key="delay_p99_us",
                label="p99 hand-off",
                unit="µs",
                higher_is_better=False,
                baseline=True,
            ),
        ]

    async def baseline(self) -> dict[str, float]:
        return _summary(await baseline.run_chain(self.length))

    async def measure(self, storage: Storage) -> dict[str, float]:
        async with open_scheduler(self.dag, storage) as scheduler:
            settle()
            with profiled():
                run = await scheduler.trigger(DAG_ID)
                done = await scheduler.wait_for_run(run.id)
            check_success(done.status, f"run {run.id} of {DAG_ID}")
            task_runs = await scheduler.task_runs(run.id)
        return _summary(hand_off_delays(task_runs, self.length))

    def describe(self) -> dict[str, Any]:
        return {"length": self.length}
