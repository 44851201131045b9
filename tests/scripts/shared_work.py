"""DAGs that several ``ppacer-async serve`` processes share, for test_postgres_workers.py.

Serve one of them with ``ppacer-async serve tests/scripts/shared_work.py:NAME``. Tasks
leave a trace outside ppacer-async's own tables, so a test can tell how often each
attempt really ran, and in which process:

- with ``SHARED_WORK_DSN`` and ``SHARED_WORK_SCHEMA`` set, they insert
  ``(run_id, task_id, attempt, pid)`` into the ``executions`` table of that schema
  (the test creates it); its primary key makes a second execution of one attempt fail
  with a unique violation.
- with ``SHARED_WORK_FILE`` set, they append ``task attempt pid`` lines to that file
  (for a test that restarts the database server under them).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval

FANOUT_LEAVES = 2000
SLOW_LEAVES = 12
#: How long each task of ``slow`` runs: long enough to be caught by a kill -9.
SLOW_SECONDS = 1.5
FILED_LEAVES = 200
TICK = timedelta(milliseconds=200)

CREATE_EXECUTIONS = """
CREATE TABLE executions (
    run_id  bigint  NOT NULL,
    task_id text    NOT NULL,
    attempt integer NOT NULL,
    pid     integer NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt)
)
"""

_pool: Any = None
_pool_lock = anyio.Lock()


async def _executions() -> Any:
    """This process's small pool on the test's schema, made on first use."""
    global _pool
    async with _pool_lock:
        if _pool is None:
            import asyncpg

            _pool = await asyncpg.create_pool(
                os.environ["SHARED_WORK_DSN"],
                min_size=1,
                max_size=2,
                server_settings={"search_path": os.environ["SHARED_WORK_SCHEMA"]},
            )
    return _pool


async def record(ctx: TaskContext) -> None:
    pool = await _executions()
    await pool.execute(
        "INSERT INTO executions (run_id, task_id, attempt, pid) VALUES ($1, $2, $3, $4)",
        ctx.run_id,
        ctx.task_id,
        ctx.attempt,
        os.getpid(),
    )


# -- fanout: a root and 2,000 short leaves ------------------------------------------------


async def quick(ctx: TaskContext) -> None:
    await anyio.sleep(0.01)
    await record(ctx)


fanout = DAG("fanout").add(
    task(quick, id="root") >> [task(quick, id=f"leaf_{i:04d}") for i in range(FANOUT_LEAVES)]
)


# -- slow: tasks that record their start, then work for a while -----------------------------


async def long(ctx: TaskContext) -> None:
    await record(ctx)
    await anyio.sleep(SLOW_SECONDS)


slow = DAG("slow").add(
    task(long, id="root") >> [task(long, id=f"leaf_{i:02d}") for i in range(SLOW_LEAVES)]
)


# -- filed: short tasks that write to a file, not to the database ---------------------------


async def filed_task(ctx: TaskContext) -> None:
    await anyio.sleep(0.05)
    async with await anyio.open_file(os.environ["SHARED_WORK_FILE"], "a") as f:
        await f.write(f"{ctx.task_id} {ctx.attempt} {os.getpid()}\n")


filed = DAG("filed").add(
    task(filed_task, id="root")
    >> [task(filed_task, id=f"leaf_{i:03d}") for i in range(FILED_LEAVES)]
)


# -- chain: a few steps, each needing a wake-up ---------------------------------------------


async def step(ctx: TaskContext) -> int:
    return sum(ctx.upstream.values()) + 1


chain = DAG("chain").add(task(step, id="one") >> task(step, id="two") >> task(step, id="three"))


# -- ticking: a short interval schedule; a manual run may hold its task for a while ---------


async def tick(ctx: TaskContext) -> None:
    # The length of a manual run is the window in which a test looks for scheduled runs.
    await anyio.sleep(float(ctx.params.get("hold", 0)))


ticking = DAG(
    "ticking", schedule=Interval(TICK, min_every=TICK), start=datetime(2026, 1, 1, tzinfo=UTC)
).add(task(tick))


# -- mapped: one task mapped over 200 elements ------------------------------------------------

MAPPED_ELEMENTS = 200


async def elements(ctx: TaskContext) -> list[int]:
    return list(range(MAPPED_ELEMENTS))


async def instance(ctx: TaskContext) -> int:
    await anyio.sleep(0.01)
    pool = await _executions()
    await pool.execute(
        "INSERT INTO executions (run_id, task_id, attempt, pid) VALUES ($1, $2, $3, $4)",
        ctx.run_id,
        f"{ctx.task_id}[{ctx.map_index}]",
        ctx.attempt,
        os.getpid(),
    )
    return int(ctx.item) * 2


async def total(ctx: TaskContext) -> int:
    results = ctx.upstream["double"]
    assert results == [k * 2 for k in range(MAPPED_ELEMENTS)], results
    return sum(results)


mapped = DAG("mapped").add(
    task(elements, id="elements")
    >> task(instance, id="double").map("elements")
    >> task(total, id="total")
)


# -- hanging: a task that runs until cancelled, and records when it was -----------------------


async def hang(ctx: TaskContext) -> None:
    await record(ctx)
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            pool = await _executions()
            await pool.execute(
                "INSERT INTO executions (run_id, task_id, attempt, pid) VALUES ($1, $2, $3, $4)",
                ctx.run_id,
                "cancelled",
                ctx.attempt,
                os.getpid(),
            )


hanging = DAG("hanging").add(task(hang, id="hang") >> task(step, id="never"))


# -- pooled: two DAGs of 25 tasks sharing a pool of 4 (serve with --pool warehouse=4) ------

POOLED_TASKS = 25
POOL_SLOTS = 4


async def pooled_task(ctx: TaskContext) -> None:
    await record(ctx)
    await anyio.sleep(float(ctx.params.get("hold", 0.05)))


pooled = [
    DAG(name).add(
        *[task(pooled_task, id=f"load_{i:02d}", pool="warehouse") for i in range(POOLED_TASKS)]
    )
    for name in ("pooled_north", "pooled_south")
]
