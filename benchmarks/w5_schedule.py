"""W5 schedule precision: a DAG on ``Interval(100 ms)`` served for 10 s (3 s quick).

Measures lateness, ``run.started_at - run.logical_time``, over every run but the first
(which also pays for the scheduler starting): how close to its schedule point a run
really starts when nothing else is going on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import anyio

from ppacer_async import DAG, task
from ppacer_async.abc import Storage
from ppacer_async.schedules import Interval

from ._common import Metric, Workload, noop, open_scheduler, percentile, settle

DAG_ID = "w5_schedule"
EVERY = timedelta(milliseconds=100)
SERVE_SECONDS = 10.0
QUICK_SERVE_SECONDS = 3.0


def build_interval(every: timedelta) -> DAG:
    """One no-op task on a fixed interval, never catching up."""
    dag = DAG(DAG_ID, schedule=Interval(every, min_every=every), catchup=False)
    dag.add(task(noop, id="tick"))
    return dag


class SchedulePrecision(Workload):
    key = "W5"
    title = "schedule precision"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = QUICK_SERVE_SECONDS if self.settings.quick else SERVE_SECONDS
        self.dag = build_interval(EVERY)

    def metrics(self) -> Sequence[Metric]:
        return [
            Metric(key="lateness_p50_ms", label="p50 lateness", unit="ms", higher_is_better=False),
            Metric(key="lateness_p99_ms", label="p99 lateness", unit="ms", higher_is_better=False),
            Metric(key="runs", label="runs measured", unit="", higher_is_better=True),
        ]

    async def measure(self, storage: Storage) -> dict[str, float]:
        async with open_scheduler(self.dag, storage) as scheduler:
            settle()
            await anyio.sleep(self.seconds)
            runs = await scheduler.list_runs(DAG_ID, limit=1_000_000)
        started = sorted(
            (run for run in runs if run.started_at is not None), key=lambda run: run.logical_time
        )[1:]
        if len(started) < 2:
            raise RuntimeError(f"only {len(started) + 1} scheduled runs started; expected dozens")
        lateness = [
            (run.started_at - run.logical_time).total_seconds()
            for run in started
            if run.started_at is not None
        ]
        return {
            "lateness_p50_ms": percentile(lateness, 50) * 1e3,
            "lateness_p99_ms": percentile(lateness, 99) * 1e3,
            "runs": float(len(lateness)),
        }

    def describe(self) -> dict[str, Any]:
        return {"every_ms": EVERY.total_seconds() * 1e3, "serve_seconds": self.seconds}
