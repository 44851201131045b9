"""Schedule decisions are visible: serving logs each DAG's next due time and the points
it skipped or caught up; ``operations.schedule_events`` and ``ppacer-async events`` list
the decisions."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import (
    DAG,
    FakeClock,
    ScheduleEventKind,
    Scheduler,
    TaskContext,
    operations,
    task,
)
from ppacer_async.cli import main
from ppacer_async.schedules import Interval

from .helpers import T0, Recorder

HOUR = timedelta(hours=1)


def _dag(recorder: Recorder, catchup: bool, start: datetime) -> DAG:
    @task
    async def tick(ctx: TaskContext) -> None:
        recorder.add(ctx.logical_time)

    return DAG("hourly", schedule=Interval(HOUR), start=start, catchup=catchup).add(tick)


def _manual() -> DAG:
    return DAG("manual").add(task(lambda ctx: None, id="noop"))


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ppacer_async.scheduler"]


async def _skipping_scenario(url: str, recorder: Recorder) -> None:
    """Serve at 00:30, run the 01:00 point, stop; serve again at 05:30 (catchup=False)."""
    clock = FakeClock(T0 + HOUR / 2)
    dag = _dag(recorder, catchup=False, start=T0 - 10 * HOUR)
    async with Scheduler([dag, _manual()], storage=url, clock=clock):
        clock.set(T0 + HOUR)
        await recorder.wait_for(1)
    clock.set(T0 + 5 * HOUR + HOUR / 2)
    async with Scheduler([dag, _manual()], storage=url, clock=clock):
        pass


@pytest.mark.anyio
async def test_serving_logs_next_due_times_and_the_points_it_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ppacer_async.scheduler")
    url = f"sqlite:///{tmp_path / 'skips.db'}"
    await _skipping_scenario(url, Recorder())
    messages = _messages(caplog)
    assert "DAG 'hourly' next due 2026-01-01 01:00:00+00:00" in messages
    assert "DAG 'manual' has no schedule: it runs when triggered" in messages
    assert (
        "DAG 'hourly': skipped 4 schedule points that passed while nothing ran, from "
        "2026-01-01 02:00:00+00:00 to 2026-01-01 05:00:00+00:00 (catchup=False)"
    ) in messages
    assert "DAG 'hourly' next due 2026-01-01 06:00:00+00:00" in messages

    async with Scheduler([], storage=url) as s:
        events = await operations.schedule_events(s.storage, "hourly", limit=10)
    assert [(e.logical_time - T0, e.kind) for e in events] == [
        (5 * HOUR, ScheduleEventKind.skipped),
        (4 * HOUR, ScheduleEventKind.skipped),
        (3 * HOUR, ScheduleEventKind.skipped),
        (2 * HOUR, ScheduleEventKind.skipped),
        (HOUR, ScheduleEventKind.regular),
    ]


@pytest.mark.anyio
async def test_serving_logs_the_points_it_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ppacer_async.scheduler")
    url = f"sqlite:///{tmp_path / 'late.db'}"
    recorder = Recorder()
    clock = FakeClock(T0 + HOUR / 2)
    dag = _dag(recorder, catchup=True, start=T0)
    async with Scheduler([dag], storage=url, clock=clock):
        await recorder.wait_for(1)
    clock.set(T0 + 3 * HOUR + HOUR / 2)
    async with Scheduler([dag], storage=url, clock=clock):
        await recorder.wait_for(4)
    assert (
        "DAG 'hourly': catching up 2 missed schedule points, from 2026-01-01 01:00:00+00:00 "
        "to 2026-01-01 02:00:00+00:00"
    ) in _messages(caplog)


def test_events_command_lists_decisions_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    anyio.run(_skipping_scenario, url, Recorder())
    assert main(["events", "hourly", "--storage", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["POINT", "DAG", "DECISION", "RUN", "MEANING"]
    assert [line.split()[3] for line in lines[1:]] == ["skipped"] * 4 + ["regular"]
    assert lines[-1].split()[4] == "1"  # the run of the regular point

    assert main(["events", "--json", "--limit", "2", "--storage", url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["dag_id"], e["kind"]) for e in listed] == [
        ("hourly", "skipped"),
        ("hourly", "skipped"),
    ]
    assert main(["events", "nope", "--storage", url]) == 2
