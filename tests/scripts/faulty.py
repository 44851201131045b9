"""A DAG for the fault tests (test_faults.py): ``ppacer-async serve
tests/scripts/faulty.py:chains``.

2,000 tasks in 40 chains of 50 steps, each taking 50-150 ms, so that a run lasts long
enough to be killed many times. Each attempt appends ``run_id task_id attempt pid
succeeded`` to ``$FAULTY_FILE`` when it starts, so a test can tell which attempts
really ran; ``succeeded`` is 1 when the storage already held a success of the task
(read from ``$FAULTY_SQLITE``, or the ``ppacer`` schema at ``$FAULTY_DSN``), which
must never happen.
"""

from __future__ import annotations

import os
import random
import sqlite3
from typing import Any

import anyio

from ppacer_async import DAG, Flow, TaskContext, task

CHAINS = 40
STEPS = 50


SUCCEEDED = (
    "SELECT count(*) FROM task_runs WHERE run_id = {} AND task_id = {} AND status = 'success'"
)

_pool: Any = None


def note_start(ctx: TaskContext, succeeded: int) -> None:
    with open(os.environ["FAULTY_FILE"], "a") as f:
        f.write(f"{ctx.run_id} {ctx.task_id} {ctx.attempt} {os.getpid()} {succeeded}\n")


async def succeeded_before(ctx: TaskContext) -> int:
    """Whether storage holds a success of this task already (-1: could not tell, the
    database server is restarting)."""
    if "FAULTY_SQLITE" in os.environ:
        uri = f"file:{os.environ['FAULTY_SQLITE']}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as conn:
            (found,) = conn.execute(
                SUCCEEDED.format("?", "?"), (ctx.run_id, ctx.task_id)
            ).fetchone()
        return int(found)
    global _pool
    try:
        if _pool is None:
            import asyncpg

            _pool = await asyncpg.create_pool(
                os.environ["FAULTY_DSN"],
                min_size=1,
                max_size=2,
                server_settings={"search_path": "ppacer"},
            )
        return int(await _pool.fetchval(SUCCEEDED.format("$1", "$2"), ctx.run_id, ctx.task_id))
    except Exception:
        return -1


async def step(ctx: TaskContext) -> int:
    note_start(ctx, await succeeded_before(ctx))  # one short line: not worth a thread
    await anyio.sleep(random.uniform(0.05, 0.15))
    return ctx.attempt


def _chain(c: int) -> Flow:
    first, second, *rest = [task(step, id=f"c{c:02d}_s{s:02d}") for s in range(STEPS)]
    flow = first >> second
    for t in rest:
        flow = flow >> t
    return flow


chains = DAG("chains").add(*[_chain(c) for c in range(CHAINS)])
