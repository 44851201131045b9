"""Profile one workload's timed part: ``python -m benchmarks.profile W1 sqlite [--top N]
[--sort tottime|cumulative] [--max-concurrent-tasks N] [--out FILE]``.

Runs one repetition of the workload (W1-W4, W8) on a fresh storage with cProfile enabled
from ``trigger`` until the last run has finished, as the suite times it, and prints the
top entries. cProfile sees the event loop's thread only: work that aiosqlite, asyncpg's
server or the worker threads do elsewhere shows up as time the loop waits (in
``select``/``epoll``), not under its own name; use ``py-spy record`` for those.
``--out FILE`` keeps the statistics for ``python -m pstats FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
from collections.abc import Sequence

from . import _common
from ._common import POSTGRES_DSN_ENV, SCHEDULER_OPTIONS, Settings, quiet_logging
from .runner import WORKLOADS

PROFILED = ("W1", "W2", "W3", "W4", "W8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("workload", choices=PROFILED)
    parser.add_argument("storage", choices=_common.STORAGE_KINDS)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the statistics here too")
    args = parser.parse_args(argv)
    dsn = os.environ.get(POSTGRES_DSN_ENV) or None
    if args.storage == "postgres" and not dsn:
        parser.error(f"postgres needs ${POSTGRES_DSN_ENV}")
    if args.max_concurrent_tasks is not None:
        SCHEDULER_OPTIONS["max_concurrent_tasks"] = args.max_concurrent_tasks
    quiet_logging()
    workload = WORKLOADS[args.workload](Settings(quick=True, repeat=1, postgres_dsn=dsn))
    profiler = cProfile.Profile()
    _common.PROFILER = profiler
    try:
        found = asyncio.run(workload.repetition(args.storage))
    finally:
        _common.PROFILER = None
    print(f"{args.workload} on {args.storage}: {found}")
    if args.out:
        profiler.dump_stats(args.out)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
