"""Branching: ``@task.branch`` returns the id of the task to follow; the other
direct downstream tasks are skipped, and ``report`` (``none_failed_min_one_success``)
runs after whichever branch ran.

Serve it with ``ppacer-async serve examples/branching.py --storage memory://``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def measure(ctx: TaskContext) -> int:
    return int(ctx.params.get("rows", ctx.logical_time.minute * 1000))


@task.branch
async def choose(ctx: TaskContext) -> str:
    rows = ctx.upstream["measure"]
    return "small_batch" if rows < 10_000 else "big_batch"


@task
async def small_batch(ctx: TaskContext) -> str:
    return "loaded in one transaction"


@task
async def big_batch(ctx: TaskContext) -> str:
    return "loaded in chunks"


@task(trigger_rule="none_failed_min_one_success")
async def report(ctx: TaskContext) -> str:
    done = [result for result in ctx.upstream.values() if result is not None]
    ctx.log.info("report: %s", done[0])
    return str(done[0])


branching = DAG(
    "branching",
    schedule=Interval(timedelta(minutes=1)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    description="Chooses a small or a big batch load at run time.",
)
branching.add(measure >> choose >> [small_batch, big_batch] >> report)

dags = [branching]
