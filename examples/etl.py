"""An ETL-like DAG: fan-out and fan-in, async and blocking tasks, a retried task.

``extract`` fans out to two cleaning tasks; ``merge`` joins them; ``load`` writes the
result. ``clean_b`` fails on its first attempt and succeeds when retried a second later.
Serve it with ``ppacer-async serve examples/etl.py --storage memory://``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def extract(ctx: TaskContext) -> list[dict[str, Any]]:
    await anyio.sleep(0.1)  # stands in for an HTTP call or a query
    rows = [{"id": i, "amount": i * 10, "region": "eu" if i % 2 else "us"} for i in range(6)]
    ctx.log.info("extracted %d rows", len(rows))
    return rows


@task
def clean_a(ctx: TaskContext) -> list[dict[str, Any]]:
    """A blocking (def) task: it runs in a worker thread, so time.sleep is fine here."""
    time.sleep(0.05)
    rows = [r for r in ctx.upstream["extract"] if r["region"] == "eu"]
    ctx.log.info("kept %d EU rows", len(rows))
    return rows


@task(retries=2, retry_delay=timedelta(seconds=1))
async def clean_b(ctx: TaskContext) -> list[dict[str, Any]]:
    if ctx.attempt == 1:
        ctx.log.warning("the source is flaky: failing attempt %d on purpose", ctx.attempt)
        raise ConnectionError("source temporarily unavailable")
    rows = [r for r in ctx.upstream["extract"] if r["region"] == "us"]
    ctx.log.info("kept %d US rows on attempt %d", len(rows), ctx.attempt)
    return rows


@task
async def merge(ctx: TaskContext) -> dict[str, int]:
    totals = {
        "eu": sum(r["amount"] for r in ctx.upstream["clean_a"]),
        "us": sum(r["amount"] for r in ctx.upstream["clean_b"]),
    }
    ctx.log.info("totals: %s", totals)
    return totals


@task
def load(ctx: TaskContext) -> None:
    totals = ctx.upstream["merge"]
    ctx.log.info("loaded %d totals for %s", len(totals), ctx.logical_time.isoformat())


etl = DAG(
    "etl",
    schedule=Interval(timedelta(seconds=30)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    description="Extract, clean in parallel, merge, load; one flaky step.",
)
etl.add(extract >> [clean_a, clean_b] >> merge >> load)

dags = [etl]
