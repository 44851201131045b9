"""Sensors: poked until their condition holds, holding no worker between pokes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from ppacer_async import (
    DAG,
    DagDefinitionError,
    DagRunStatus,
    FakeClock,
    Scheduler,
    TaskContext,
    TaskStatus,
    task,
)
from ppacer_async._task import Poking

from .conftest import StorageFactory
from .helpers import Recorder

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_pokes_are_due_on_a_schedule_fixed_by_the_first_poke() -> None:
    fixed = Poking(interval=MINUTE, timeout=timedelta(hours=1))
    assert fixed.next_poke(START, START) == START + MINUTE
    assert fixed.next_poke(START, START + 90 * timedelta(seconds=1)) == START + 2 * MINUTE
    doubling = Poking(
        interval=MINUTE, timeout=timedelta(hours=1), exponential_backoff=True, max_wait=4 * MINUTE
    )
    # waits of 1, 2, 4, 4, ... minutes
    expected = [START + k * MINUTE for k in (1, 3, 7, 11, 15)]
    after, found = START, []
    for _ in expected:
        after = doubling.next_poke(START, after)
        found.append(after)
    assert found == expected


@pytest.mark.anyio
async def test_a_sensor_is_poked_until_its_condition_holds_and_its_value_is_the_result(
    storage_factory: StorageFactory,
) -> None:
    clock = FakeClock(START)
    pokes = Recorder()
    ready_after = 3

    @task.sensor(poke_interval=MINUTE, timeout=timedelta(hours=1))
    async def arrived(ctx: TaskContext) -> str | None:
        pokes.add(clock.now())
        return "file.csv" if len(pokes.values) >= ready_after else None

    @task
    async def load(ctx: TaskContext) -> str:
        return f"loaded {ctx.upstream['arrived']}"

    dag = DAG("sensing").add(arrived >> load)
    waits = Recorder()
    handler = EventLines("waits for its next poke", waits)
    events = logging.getLogger("ppacer_async.events")
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        await _run_sensing(dag, clock, storage_factory, waits, pokes, ready_after)
    finally:
        events.removeHandler(handler)
        events.setLevel(logging.NOTSET)


async def _run_sensing(
    dag: DAG,
    clock: FakeClock,
    storage_factory: StorageFactory,
    waits: Recorder,
    pokes: Recorder,
    ready_after: int,
) -> None:
    async with Scheduler([dag], storage=storage_factory(), clock=clock) as scheduler:
        run = await scheduler.trigger("sensing")
        for k in range(1, ready_after):
            await waits.wait_for(k)  # recorded (and its timer armed) before time moves
            assert scheduler.statistics().running_tasks == 0
            clock.advance(MINUTE)
        done = await scheduler.wait_for_run(run.id, timeout=10)
        rows = {tr.task_id: tr for tr in await scheduler.task_runs(run.id)}
    assert done.status is DagRunStatus.success
    assert pokes.values == [START, START + MINUTE, START + 2 * MINUTE]
    sensed = rows["arrived"]
    assert (sensed.status, sensed.attempt, sensed.result) == (TaskStatus.success, 1, "file.csv")
    assert sensed.started_at == START  # the row spans the whole wait
    assert rows["load"].result == "loaded file.csv"


class EventLines(logging.Handler):
    """Records the event lines that contain ``text``."""

    def __init__(self, text: str, into: Recorder) -> None:
        super().__init__(logging.INFO)
        self.text = text
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.text in message:
            self.into.add(message)


def test_a_sensor_cannot_be_mapped() -> None:
    @task.sensor(poke_interval=MINUTE)
    async def s(ctx: TaskContext) -> bool:
        return True

    with pytest.raises(DagDefinitionError, match="a sensor cannot be mapped"):
        s.map("x")
