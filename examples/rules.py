"""Trigger rules, skips and retries: a nightly load that cleans up whatever happened.

- ``check`` raises ``SkipTask`` when nothing was delivered: the run goes on, ``load``
  is skipped.
- ``load`` retries only connection errors (``retry_on``), spread by ``retry_jitter``;
  bad data raises ``NonRetryableError`` and fails at once.
- ``cleanup`` (``all_done``) runs whatever happened upstream; ``alert`` (``one_failed``)
  only when something failed; ``publish`` (``none_failed``) when nothing failed,
  even if ``load`` was skipped.

Serve it with ``ppacer-async serve examples/rules.py --storage memory://``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppacer_async import DAG, NonRetryableError, SkipTask, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def check(ctx: TaskContext) -> int:
    rows = int(ctx.params.get("rows", ctx.logical_time.minute % 4))
    if rows == 0:
        raise SkipTask("nothing was delivered")
    return rows


@task(
    retries=3,
    retry_delay=timedelta(seconds=1),
    retry_backoff=2,
    retry_jitter=0.2,
    retry_on=(ConnectionError, TimeoutError),
)
async def load(ctx: TaskContext) -> int:
    rows = ctx.upstream["check"]
    if rows < 0:
        raise NonRetryableError(f"the delivery says it has {rows} rows; fix the file")
    ctx.log.info("loaded %d rows", rows)
    return rows


@task(trigger_rule="all_done")
async def cleanup(ctx: TaskContext) -> None:
    ctx.log.info("removing temporary files, whatever happened")


@task(trigger_rule="one_failed")
async def alert(ctx: TaskContext) -> None:
    ctx.log.warning("something failed upstream: paging the on-call engineer")


@task(trigger_rule="none_failed")
async def publish(ctx: TaskContext) -> str:
    return "published" if ctx.upstream["load"] is not None else "nothing new to publish"


rules = DAG(
    "rules",
    schedule=Interval(timedelta(minutes=1)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    description="Cleanup and alerts by trigger rule; skips and selective retries.",
)
rules.add(check >> load >> [cleanup, alert, publish])

dags = [rules]
