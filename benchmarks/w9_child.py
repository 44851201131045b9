"""One W9 measurement in a fresh process: ``python -m benchmarks.w9_child SIZE STORAGE
[--profile FILE]``.

Runs the W1 fan-out with SIZE leaves on STORAGE (``memory``, ``sqlite``, ``postgres``;
PostgreSQL reads its DSN from ``PPACER_BENCH_POSTGRES_DSN``) at one process and prints one
JSON object with the seconds of each phase:

- ``build``: building the DAG (a ``Task`` per leaf, the dependencies);
- ``start``: entering the scheduler: opening the storage, validating, hashing and
  storing the DAG definition;
- ``run``: from ``trigger`` to ``wait_for_run`` returning;
- ``stop``: leaving the scheduler (not part of the wall time);

the CPU seconds the process used up to the end of the run (its share of a busy machine),
and the resident memory before building, after starting, and the peak. With
``--profile FILE`` the whole of it runs under cProfile and the statistics go to FILE
(``python -m pstats FILE``), so that where the time goes can be read phase by phase.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import resource
import sys
import time

from ._common import POSTGRES_DSN_ENV, fresh_storage, open_scheduler, quiet_logging, settle
from .w1_fanout import build_fan_out
from .w6_child import current_rss, peak_rss

DAG_ID = "w9_million"


def cpu_seconds() -> float:
    """CPU time this process has used so far (user and system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def progress(phase: str, since: float, cpu_since: float) -> None:
    """One line on stderr per phase, so that a child stopped by the timeout still says
    how far it got and how much CPU it was given (on a busy machine, little)."""
    print(
        f"{phase}: {time.perf_counter() - since:.1f} s, "
        f"{cpu_seconds() - cpu_since:.1f} s of CPU, RSS {current_rss() / 2**20:.0f} MB",
        file=sys.stderr,
        flush=True,
    )


async def measure(size: int, kind: str, profiler: cProfile.Profile | None) -> dict[str, float]:
    settle()
    rss_before = current_rss()
    if profiler is not None:
        profiler.enable()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    dag = build_fan_out(size, dag_id=DAG_ID)
    t1 = time.perf_counter()
    progress("built the DAG", t0, cpu0)
    async with fresh_storage(kind, os.environ.get(POSTGRES_DSN_ENV)) as storage:
        t2 = time.perf_counter()
        scheduler = open_scheduler(dag, storage)
        async with scheduler:
            t3 = time.perf_counter()
            progress("started the scheduler", t0, cpu0)
            rss_start = current_rss()
            run = await scheduler.trigger(dag.dag_id)
            done = await scheduler.wait_for_run(run.id)
            t4 = time.perf_counter()
            cpu4 = cpu_seconds()
            progress("ran", t0, cpu0)
        t5 = time.perf_counter()
    if profiler is not None:
        profiler.disable()
    if done.status.value != "success":
        raise RuntimeError(f"the run ended {done.status.value}, not success")
    return {
        "size": size,
        "tasks": size + 2,
        "build": t1 - t0,
        "start": t3 - t2,
        "run": t4 - t3,
        "stop": t5 - t4,
        "wall": (t1 - t0) + (t3 - t2) + (t4 - t3),
        "cpu": cpu4 - cpu0,
        "rss_before": rss_before,
        "rss_start": rss_start,
        "peak_rss": peak_rss(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w9_child")
    parser.add_argument("size", type=int)
    parser.add_argument("storage")
    parser.add_argument("--profile", default=None, help="write cProfile statistics here")
    args = parser.parse_args(argv)
    quiet_logging()
    profiler = cProfile.Profile() if args.profile else None
    result = asyncio.run(measure(args.size, args.storage, profiler))
    if profiler is not None:
        profiler.dump_stats(args.profile)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
