"""Hello world: a DAG of two tasks every 10 seconds.

Serve it with ``ppacer-async serve examples/hello.py --storage memory://``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def greet(ctx: TaskContext) -> str:
    name = ctx.params.get("name", "world")
    ctx.log.info("hello, %s! (logical time %s)", name, ctx.logical_time.isoformat())
    return name


@task
async def wave(ctx: TaskContext) -> None:
    ctx.log.info("%s was greeted; waving goodbye", ctx.upstream["greet"])


hello = DAG(
    "hello",
    schedule=Interval(timedelta(seconds=10)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    description="Greets someone every 10 seconds.",
    params={"name": "world"},
)
hello.add(greet >> wave)

dags = [hello]
