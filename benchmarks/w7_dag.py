"""The W7 DAGs, in a file of their own so that ``ppacer-async serve
benchmarks/w7_dag.py`` can load them by path: one root, 2,000 leaves that each sleep
10 ms, one join; and the same with 60 leaves, run untimed first so that every process
has connected and prepared its statements before the clock starts, as a long-serving
process has.

Self-contained (nothing from the rest of the suite), so it loads the same way whatever
the serving process's working directory.
"""

from __future__ import annotations

import logging

import anyio

from ppacer_async import DAG, TaskContext, task

DAG_ID = "w7_scale_out"
LEAVES = 2_000
WARM_UP_ID = "w7_warm_up"
WARM_UP_LEAVES = 60
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


def build_scale_out(leaves: int = LEAVES, dag_id: str = DAG_ID) -> DAG:
    """``root >> [leaf_0 .. leaf_n-1] >> join``."""
    root = task(noop, id="root")
    join = task(noop, id="join")
    middle = [task(nap, id=f"leaf_{i}") for i in range(leaves)]
    dag = DAG(dag_id, max_active_runs=1)
    dag.add(root >> middle >> join)
    return dag


dags = [build_scale_out(), build_scale_out(WARM_UP_LEAVES, WARM_UP_ID)]
