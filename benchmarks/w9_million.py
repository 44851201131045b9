"""W9 a million leaves: one run of the W1 fan-out with 1,000,000 leaves (full run only).

Each storage runs, at one process, fresh children (``benchmarks.w9_child``) with 10,000
leaves (``REFERENCE_RUNS`` of them: one takes under a second, so one alone moves with
whatever else the machine does; their median is the reference) and then one with
1,000,000. Wall time is building the DAG, starting the scheduler
(which validates, hashes and stores the definition) and the run itself: building and
storing a million-task DAG is part of what must scale. Reported: the wall time and each
phase at 1,000,000, the peak RSS per task (the whole process's peak over the tasks, DAG
included), and the wall time per task at 1,000,000 over the same at 10,000.

A child that has not finished after ``PPACER_BENCH_W9_TIMEOUT`` seconds (default 600)
is stopped and its storage marked as an error: not finishing is the finding then.
W9 runs once per storage whatever ``--repeat`` says: one repetition takes minutes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from ppacer_async.abc import Storage

from ._common import POSTGRES_DSN_ENV, Metric, Workload
from .w6_scale import PROJECT_ROOT

SIZE = 1_000_000
REFERENCE_SIZE = 10_000
#: children run at ``REFERENCE_SIZE``; their median cost per task is the reference
REFERENCE_RUNS = 5
TIMEOUT_ENV = "PPACER_BENCH_W9_TIMEOUT"
DEFAULT_TIMEOUT = 600.0

#: The keys compared with targets.
PEAK_PER_TASK_KEY = "peak_rss_b_per_task"
COST_GROWTH_KEY = "cost_growth"
#: The same ratio in CPU seconds: steadier than wall time on a machine shared with other
#: work, since the two children may run under different loads (no target).
CPU_GROWTH_KEY = "cpu_growth"


def _metric(key: str, label: str, unit: str) -> Metric:
    return Metric(key=key, label=label, unit=unit, higher_is_better=False)


class Million(Workload):
    key = "W9"
    title = "a million leaves"
    full_only = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.size = SIZE
        self.timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)

    def repetitions(self) -> int:
        return 1

    def metrics(self) -> Sequence[Metric]:
        return [
            _metric("wall_s", f"wall time @{self.size:,}", "s"),
            _metric("build_s", "  building the DAG", "s"),
            _metric("start_s", "  starting (storing the DAG)", "s"),
            _metric("run_s", "  the run", "s"),
            _metric("cpu_s", "CPU time (process)", "s"),
            _metric("peak_rss_mb", "peak RSS", "MB"),
            _metric(PEAK_PER_TASK_KEY, "peak RSS per task", "B/task"),
            _metric(f"cost_us@{REFERENCE_SIZE}", f"wall/task @{REFERENCE_SIZE:,}", "µs"),
            _metric(f"cost_us@{self.size}", f"wall/task @{self.size:,}", "µs"),
            _metric(COST_GROWTH_KEY, f"wall/task {self.size:,} vs {REFERENCE_SIZE:,}", "x"),
            _metric(CPU_GROWTH_KEY, f"CPU/task {self.size:,} vs {REFERENCE_SIZE:,}", "x"),
        ]

    async def repetition(self, kind: str) -> dict[str, float]:
        smalls = [await self._child(REFERENCE_SIZE, kind) for _ in range(REFERENCE_RUNS)]
        large = await self._child(self.size, kind)
        small_cost = statistics.median(s["wall"] / s["tasks"] for s in smalls) * 1e6
        small_cpu = statistics.median(s["cpu"] / s["tasks"] for s in smalls)
        large_cost = large["wall"] / large["tasks"] * 1e6
        return {
            "wall_s": large["wall"],
            "build_s": large["build"],
            "start_s": large["start"],
            "run_s": large["run"],
            "cpu_s": large["cpu"],
            "peak_rss_mb": large["peak_rss"] / 2**20,
            PEAK_PER_TASK_KEY: large["peak_rss"] / large["tasks"],
            f"cost_us@{REFERENCE_SIZE}": small_cost,
            f"cost_us@{self.size}": large_cost,
            COST_GROWTH_KEY: large_cost / small_cost,
            CPU_GROWTH_KEY: (large["cpu"] / large["tasks"]) / small_cpu,
        }

    async def measure(self, storage: Storage) -> dict[str, float]:
        raise NotImplementedError("W9 measures in child processes; see repetition()")

    async def _child(self, size: int, kind: str) -> dict[str, float]:
        env = dict(os.environ)
        if self.settings.postgres_dsn:
            env[POSTGRES_DSN_ENV] = self.settings.postgres_dsn
        command = [sys.executable, "-m", "benchmarks.w9_child", str(size), kind]
        return await anyio.to_thread.run_sync(run_child, command, env, self.timeout)

    def describe(self) -> dict[str, Any]:
        return {"leaves": self.size, "reference_leaves": REFERENCE_SIZE, "timeout_s": self.timeout}


def run_child(command: list[str], env: dict[str, str], timeout: float) -> dict[str, float]:
    """Run one child; its last line of output is its JSON result.

    :raises RuntimeError: it failed, or did not finish within ``timeout`` seconds.
    """
    try:
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"{' '.join(command[2:])} did not finish within {timeout:.0f} s "
            f"(set {TIMEOUT_ENV} to wait longer); it got as far as: "
            + (" | ".join(said) or "building the DAG")
        ) from None
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[2:])} exited {done.returncode}: {_last_error(done.stderr)}"
        )
    result: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def _last_error(stderr: bytes) -> str:
    """The child's last exception line (a traceback's last frames are noise here), or
    its last lines of output when there is none."""
    lines = [line.strip(" |+-") for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "Error: " in line or "Exception: " in line]
    return errors[-1] if errors else " | ".join(lines[-5:])
