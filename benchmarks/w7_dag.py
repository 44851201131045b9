"""The W7 DAG, in a file of its own so that ``ppacer-async serve benchmarks/w7_dag.py``
can load it by path: one root, 2,000 leaves that each sleep 10 ms, one join.

Self-contained (nothing from the rest of the suite), so it loads the same way whatever
the serving process's working directory.
"""

from __future__ import annotations

import logging

import anyio

from ppacer_async import DAG, TaskContext, task

DAG_ID = "w7_scale_out"
LEAVES = 2_000
LEAF_SECONDS = 0.01

# As in the rest of the suite (``_common.quiet_logging``): no log line per task, which
# would cost the scheduling process more than some tasks do. `serve` configures logging
# before it loads this file, so the level set here holds.
logging.getLogger("ppacer_async.events").setLevel(logging.WARNING)


async def noop(ctx: TaskContext) -> None:
    """The root and the join: nothing but the scheduling around them."""


async def nap(ctx: TaskContext) -> None:
    """A leaf: waits 10 ms without using the CPU, like a short call to another service."""
    await anyio.sleep(LEAF_SECONDS)


def build_scale_out(leaves: int = LEAVES) -> DAG:
    """``root >> [leaf_0 .. leaf_n-1] >> join``."""
    root = task(noop, id="root")
    join = task(noop, id="join")
    middle = [task(nap, id=f"leaf_{i}") for i in range(leaves)]
    dag = DAG(DAG_ID, max_active_runs=1)
    dag.add(root >> middle >> join)
    return dag


dags = [build_scale_out()]
