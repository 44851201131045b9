"""One W6 measurement in a fresh process: ``python -m benchmarks.w6_child SIZE STORAGE``.

Runs the W1 fan-out with SIZE leaves on STORAGE (``memory``, ``sqlite``, ``postgres``;
PostgreSQL reads its DSN from ``PPACER_BENCH_POSTGRES_DSN``) and prints one JSON object:
the seconds taken, the resident memory after building the DAG and starting the
scheduler, and the peak resident memory of the process. A process per size keeps one
size's peak from hiding the next one's.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time

from ._common import (
    POSTGRES_DSN_ENV,
    fresh_storage,
    open_scheduler,
    quiet_logging,
    settle,
)
from .w1_fanout import build_fan_out


def _proc_status(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes, or ``None`` without /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss() -> int:
    """This process image's peak resident set size so far, in bytes.

    Linux's ``getrusage().ru_maxrss`` carries over the peak of the process that forked
    and exec'd this one (here the suite itself, holding every other workload's graphs),
    so the per-image high-water mark ``VmHWM`` is read where there is one.
    """
    found = _proc_status("VmHWM")
    if found is not None:
        return found
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss() -> int:
    """The resident set size now, in bytes (the peak where /proc is missing)."""
    found = _proc_status("VmRSS")
    return peak_rss() if found is None else found


async def measure(size: int, kind: str) -> dict[str, float]:
    dag = build_fan_out(size, dag_id="w6_scale")
    tasks = size + 2
    async with (
        fresh_storage(kind, os.environ.get(POSTGRES_DSN_ENV)) as storage,
        open_scheduler(dag, storage) as scheduler,
    ):
        settle()
        rss_start = current_rss()
        peak_start = peak_rss()
        start = time.perf_counter()
        run = await scheduler.trigger(dag.dag_id)
        done = await scheduler.wait_for_run(run.id)
        seconds = time.perf_counter() - start
        peak = peak_rss()
    if done.status.value != "success":
        raise RuntimeError(f"the run ended {done.status.value}, not success")
    return {
        "size": size,
        "tasks": tasks,
        "seconds": seconds,
        "rss_start": rss_start,
        "peak_rss_start": peak_start,
        "peak_rss": peak,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m benchmarks.w6_child SIZE STORAGE", file=sys.stderr)
        return 2
    quiet_logging()
    result = asyncio.run(measure(int(argv[0]), argv[1]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
