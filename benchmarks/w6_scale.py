"""W6 scale: the W1 fan-out at 1,000, 10,000 and 100,000 leaves (100,000 only in full).

Measures, per size, the cost per task (µs) and the memory: RSS after building the DAG
and starting the scheduler, peak RSS, and RSS growth per task, ``(peak RSS - RSS after
building and starting) / tasks``. Each size runs in a fresh process
(``benchmarks.w6_child``) so each peak is its own. When starting the scheduler peaks
higher than the run itself, the growth figure is an upper bound of what the run added.
The cost per task should stay flat as the graph grows: the target compares 100,000 to
10,000 leaves.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ppacer_async.abc import Storage

from ._common import POSTGRES_DSN_ENV, Metric, Workload

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)

#: Where ``python -m benchmarks.w6_child`` resolves.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cost_key(size: int) -> str:
    return f"cost_us@{size}"


def start_key(size: int) -> str:
    return f"rss_start_mb@{size}"


def peak_key(size: int) -> str:
    return f"peak_rss_mb@{size}"


def growth_key(size: int) -> str:
    return f"rss_growth_b_per_task@{size}"


#: The derived metric compared with the 1.25x target: cost at the largest size over 10,000.
COST_GROWTH_KEY = "cost_growth"


class Scale(Workload):
    key = "W6"
    title = "scale"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes = QUICK_SIZES if self.settings.quick else SIZES

    def metrics(self) -> Sequence[Metric]:
        found = []
        for size in self.sizes:
            found += [
                Metric(
                    key=cost_key(size),
                    label=f"cost/task @{size:,}",
                    unit="µs",
                    higher_is_better=False,
                ),
                Metric(
                    key=start_key(size),
                    label=f"RSS before run @{size:,}",
                    unit="MB",
                    higher_is_better=False,
                ),
                Metric(
                    key=peak_key(size),
                    label=f"peak RSS @{size:,}",
                    unit="MB",
                    higher_is_better=False,
                ),
                Metric(
                    key=growth_key(size),
                    label=f"RSS growth @{size:,}",
                    unit="B/task",
                    higher_is_better=False,
                ),
            ]
        if self._compares_growth():
            found.append(
                Metric(
                    key=COST_GROWTH_KEY,
                    label=f"cost/task {self.sizes[-1]:,} vs 10,000",
                    unit="x",
                    higher_is_better=False,
                )
            )
        return found

    def _compares_growth(self) -> bool:
        return 10_000 in self.sizes and self.sizes[-1] > 10_000

    async def repetition(self, kind: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for size in self.sizes:
            child = await self._child(size, kind)
            tasks = child["tasks"]
            found[cost_key(size)] = child["seconds"] / tasks * 1e6
            found[start_key(size)] = child["rss_start"] / 2**20
            found[peak_key(size)] = child["peak_rss"] / 2**20
            found[growth_key(size)] = (child["peak_rss"] - child["rss_start"]) / tasks
        if self._compares_growth():
            found[COST_GROWTH_KEY] = found[cost_key(self.sizes[-1])] / found[cost_key(10_000)]
        return found

    async def measure(self, storage: Storage) -> dict[str, float]:
        raise NotImplementedError("W6 measures in child processes; see repetition()")

    async def _child(self, size: int, kind: str) -> dict[str, float]:
        env = dict(os.environ)
        if self.settings.postgres_dsn:
            env[POSTGRES_DSN_ENV] = self.settings.postgres_dsn
        done = await anyio.run_process(
            [sys.executable, "-m", "benchmarks.w6_child", str(size), kind],
            cwd=PROJECT_ROOT,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(
                f"w6_child {size} {kind} exited {done.returncode}: " + " | ".join(tail)
            )
        result: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    def describe(self) -> dict[str, Any]:
        return {"leaves": list(self.sizes)}
