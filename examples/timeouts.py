"""Run timeouts and cancel: a run still going after ``run_timeout`` is cancelled (its
running attempts are cancelled, the rest never start) and its note says why. Cancel a
run by hand with ``ppacer-async cancel RUN_ID`` or ``await scheduler.cancel_run(id)``;
restart a cancelled run with ``ppacer-async restart RUN_ID``.

Serve it with ``ppacer-async serve examples/timeouts.py --storage memory://``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def crawl(ctx: TaskContext) -> int:
    seconds = float(ctx.params.get("seconds", 30))
    ctx.log.info("crawling for %.0f s (the run may take 10 s)", seconds)
    await anyio.sleep(seconds)
    return 42


@task
async def index(ctx: TaskContext) -> None:
    ctx.log.info("indexing %d pages", ctx.upstream["crawl"])


timeouts = DAG(
    "timeouts",
    schedule=Interval(timedelta(minutes=2)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    run_timeout=timedelta(seconds=10),
    description="A crawl that outlasts its run_timeout, so each run ends cancelled.",
)
timeouts.add(crawl >> index)

dags = [timeouts]
