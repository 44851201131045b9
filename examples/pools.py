"""Pools: at most two loads touch the warehouse at once, however many are ready.

Twelve loads share the pool ``warehouse`` of two slots (this module's ``pools``, which
``ppacer-async serve`` reads; ``--pool warehouse=2`` says the same). The big load holds
both slots, and the urgent one, with a higher priority, gets the first slot freed.
``max_active_tasks`` caps the DAG's own attempts across its runs. Watch the slots with
``scheduler.statistics().pools``.

Serve it with ``ppacer-async serve examples/pools.py --storage memory://``.
"""

from __future__ import annotations

import anyio

from ppacer_async import DAG, TaskContext, task

pools = {"warehouse": 2}


async def load_table(ctx: TaskContext) -> str:
    ctx.log.info("loading %s", ctx.task_id)
    await anyio.sleep(float(ctx.params.get("seconds", 0.05)))
    return ctx.task_id


@task(pool="warehouse")
async def start(ctx: TaskContext) -> None:
    ctx.log.info("loads start")


loads = [task(load_table, id=f"load_{k:02d}", pool="warehouse") for k in range(10)]
big = task(load_table, id="load_big", pool="warehouse", pool_slots=2)
urgent = task(load_table, id="load_urgent", pool="warehouse", priority=10)

warehouse = DAG(
    "warehouse",
    max_active_tasks=4,
    description="Twelve loads, at most two at once in the warehouse pool.",
)
warehouse.add(start >> [*loads, big, urgent])

dags = [warehouse]
