"""Dynamic fan-out: ``resize.map("list_images")`` makes one instance of ``resize`` per
element of ``list_images``'s result, decided at run time (``resize[0]``, ...). Each
instance retries on its own; ``summarise`` gets every result in index order.

Serve it with ``ppacer-async serve examples/fanout.py --storage memory://``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def list_images(ctx: TaskContext) -> list[str]:
    count = int(ctx.params.get("count", 8))
    return [f"photo_{k:03d}.jpg" for k in range(count)]


@task(retries=2, retry_delay=timedelta(milliseconds=200), max_map_length=1000)
async def resize(ctx: TaskContext) -> dict[str, object]:
    await anyio.sleep(0.05)  # the work
    return {"image": ctx.item, "index": ctx.map_index, "bytes": 1000 + 10 * len(ctx.item)}


@task
async def summarise(ctx: TaskContext) -> int:
    resized = ctx.upstream["resize"]
    total = sum(int(r["bytes"]) for r in resized)
    ctx.log.info("%d images, %d bytes, first %s", len(resized), total, resized[0]["image"])
    return total


fanout = DAG(
    "fanout",
    schedule=Interval(timedelta(minutes=1)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    description="Resizes every image a listing finds, one task instance per image.",
    params={"count": 8},
)
fanout.add(list_images >> resize.map("list_images") >> summarise)

dags = [fanout]
