"""Sensors: poked until their condition holds, holding no worker between pokes."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagDefinitionError,
    DagRunStatus,
    FakeClock,
    Scheduler,
    TaskContext,
    TaskRun,
    TaskStatus,
    task,
)
from ppacer_async._task import Poking
from ppacer_async.sensors import FileSensor, RunSensor, TimeSensor
from ppacer_async.storage.sqlite import SQLiteStorage

from .conftest import StorageFactory
from .helpers import Recorder, Subprocess
from .scripts import crashy_sensors

ROOT = Path(__file__).parent.parent

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


# -- many sensors, one scheduler ------------------------------------------------------------


@pytest.mark.anyio
async def test_a_thousand_waiting_sensors_do_not_stop_a_hundred_ordinary_tasks(
    tmp_path: Path,
) -> None:
    pokes = Recorder()

    async def not_yet(ctx: TaskContext) -> bool:
        pokes.add(ctx.task_id)
        return False

    sensors = DAG("sensors").add(
        *[
            task.sensor(not_yet, id=f"s{k:04d}", poke_interval=timedelta(hours=1))
            for k in range(1000)
        ]
    )

    async def work(ctx: TaskContext) -> int:
        await anyio.sleep(0.001)  # suspends: it holds its worker meanwhile
        return 1

    ordinary = DAG("ordinary").add(*[task(work, id=f"t{k:03d}") for k in range(100)])
    async with Scheduler(
        [sensors, ordinary], storage=f"sqlite:///{tmp_path / 'db.sqlite'}", max_concurrent_tasks=10
    ) as scheduler:
        waiting = await scheduler.trigger("sensors")
        await pokes.wait_for(1000, timeout=60)
        run = await scheduler.trigger("ordinary")
        done = await scheduler.wait_for_run(run.id, timeout=60)
        assert done.status is DagRunStatus.success
        assert len(pokes.values) == 1000  # each poked once, then waits for an hour
        rows = await scheduler.task_runs(waiting.id)
        assert scheduler.statistics().running_tasks == 0
        await scheduler.cancel_run(waiting.id)
    assert sum(tr.status is TaskStatus.success for tr in await _rows(tmp_path, run.id)) == 100
    assert len(rows) == 1000
    assert {tr.status for tr in rows} == {TaskStatus.up_for_reschedule}


async def _rows(tmp_path: Path, run_id: int) -> list[TaskRun]:
    async with SQLiteStorage(path=str(tmp_path / "db.sqlite")) as storage:
        return await storage.task_runs(run_id)


# -- a restart resumes the waits --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_kill_9_and_restart_resume_every_wait_with_its_first_poke_and_deadline(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sensors.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(ROOT / "tests" / "scripts" / "crashy_sensors.py"), str(db)]
    doomed = Subprocess([*argv, str(tmp_path)], env=env)
    try:
        for _ in range(2 * crashy_sensors.SENSORS):  # every sensor poked at least twice
            doomed.wait_for_next("waits for its next poke", timeout=30)
        doomed.kill()
    finally:
        doomed.close()
    before = {tr.task_id: tr for tr in await _all_rows(db)}
    assert len(before) == crashy_sensors.SENSORS
    assert all(tr.attempt == 1 and tr.started_at is not None for tr in before.values())

    survivor = Subprocess([*argv, str(tmp_path)], env=env)
    try:
        for _ in range(crashy_sensors.SENSORS):
            survivor.wait_for_next("waits for its next poke", timeout=30)
        (tmp_path / "ready").write_text("")
        survivor.wait_for_next(re.escape("FINISHED success"), timeout=30)
    finally:
        survivor.close()
    after = {tr.task_id: tr for tr in await _all_rows(db)}
    assert after.keys() == before.keys()
    for task_id, tr in after.items():
        assert (tr.status, tr.attempt) == (TaskStatus.success, 1), tr
        assert tr.started_at == before[task_id].started_at  # the wait went on, not over
        assert tr.result == str(tmp_path / "ready")


async def _all_rows(db: Path) -> list[TaskRun]:
    async with SQLiteStorage(path=str(db)) as storage:
        (run,) = await storage.list_runs()
        return await storage.task_runs(run.id)


# -- stock sensors --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_sensor_waits_for_the_other_dags_run_of_the_same_logical_time() -> None:
    gate = anyio.Event()
    clock = FakeClock(START)

    @task
    async def extract(ctx: TaskContext) -> None:
        await gate.wait()

    upstream = DAG("extract").add(extract)
    waits = Recorder()
    handler = EventLines("waits for its next poke", waits)
    events = logging.getLogger("ppacer_async.events")
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        sensor = RunSensor("extract", poke_interval=MINUTE)
        downstream = DAG("report").add(sensor)
        async with Scheduler([upstream, downstream], storage="memory://", clock=clock) as sch:
            other = await sch.trigger("extract")
            run = await sch.trigger("report")
            assert run.logical_time == other.logical_time
            await waits.wait_for(1)
            gate.set()
            assert (await sch.wait_for_run(other.id, timeout=10)).status is DagRunStatus.success
            clock.advance(MINUTE)
            done = await sch.wait_for_run(run.id, timeout=10)
            (row,) = await sch.task_runs(run.id)
    finally:
        events.removeHandler(handler)
        events.setLevel(logging.NOTSET)
    assert done.status is DagRunStatus.success
    assert row.result == other.id


def test_time_sensor_waits_for_a_time_of_day_on_the_logical_date_or_a_delay() -> None:
    logical = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert TimeSensor(time(18, 0)).target(logical) == datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
    later = TimeSensor(at=timedelta(hours=2)).target(logical)
    assert later == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    with pytest.raises(DagDefinitionError, match=r"at must be a datetime\.time"):
        TimeSensor("18:00")  # type: ignore[arg-type]


def test_stock_sensors_take_what_they_wait_for_and_derive_their_ids_from_it() -> None:
    assert FileSensor("/srv/in/data.csv").id == "wait_for_data.csv"
    assert FileSensor(Path("/srv/in/{logical_date}.csv")).id == "wait_for_logical_date.csv"
    assert FileSensor("/srv/in/todays files/").id == "wait_for_todays_files"
    assert RunSensor("extract").id == "wait_for_extract"
    assert TimeSensor(at=time(18, 0)).id == "wait_until_18.00"
    assert TimeSensor(time(6, 5, 30)).id == "wait_until_06.05.30"
    assert TimeSensor(at=timedelta(hours=1, minutes=30)).id == "wait_until_1h30m_after"
    assert TimeSensor(at=-timedelta(seconds=1.5)).id == "wait_until_1s500ms_before"
    named = FileSensor("/srv/in/data.csv", id="arrived", poke_interval=MINUTE)
    assert (named.id, named.path) == ("arrived", "/srv/in/data.csv")
    assert RunSensor("extract", delta=-timedelta(days=1), id="yesterday").id == "yesterday"
    with pytest.raises(DagDefinitionError, match=r"cannot make a task id .* id='wait_for_it'"):
        FileSensor("/")
    with pytest.raises(DagDefinitionError, match="task id 'bad id' may only contain"):
        FileSensor("/srv/in/data.csv", id="bad id")
    with pytest.raises(DagDefinitionError, match=r"path must be a str or a path, got int"):
        FileSensor(3)  # type: ignore[arg-type]


def test_the_old_calling_form_with_the_id_first_is_refused_naming_the_new_one() -> None:
    with pytest.raises(
        DagDefinitionError,
        match=re.escape(
            "FileSensor('arrived', '/srv/in/data.csv'): FileSensor takes the path first and "
            "the id as a keyword; write FileSensor('/srv/in/data.csv', id='arrived')"
        ),
    ):
        FileSensor("arrived", "/srv/in/data.csv")
    with pytest.raises(DagDefinitionError, match=re.escape("write RunSensor('extract', id='up')")):
        RunSensor("up", "extract")
    with pytest.raises(
        DagDefinitionError, match=re.escape("write TimeSensor(datetime.time(18, 0), id='evening')")
    ):
        TimeSensor("evening", time(18, 0))  # type: ignore[arg-type]


def test_two_sensors_with_one_derived_id_are_refused_naming_the_fix() -> None:
    with pytest.raises(
        DagDefinitionError,
        match=re.escape(
            "two different tasks with id 'wait_for_data.csv'; give one of them another id, "
            "e.g. FileSensor(..., id='other_name')"
        ),
    ):
        DAG("two_files").add(FileSensor("/a/data.csv"), FileSensor("/b/data.csv"))


@pytest.mark.anyio
async def test_time_sensor_takes_now_from_the_schedulers_clock() -> None:
    clock = FakeClock(START)  # 12:00, long before the real now
    evening = TimeSensor(at=time(12, 30), poke_interval=10 * MINUTE)

    @task
    async def report(ctx: TaskContext) -> str:
        return str(ctx.upstream["wait_until_12.30"])

    dag = DAG("evening").add(evening >> report)
    with _poke_waits() as waits:
        async with Scheduler([dag], storage="memory://", clock=clock) as scheduler:
            run = await scheduler.trigger("evening")
            for k in range(1, 4):  # pokes at 12:00, 12:10 and 12:20 find it too early
                await waits.wait_for(k)
                clock.advance(10 * MINUTE)
            done = await scheduler.wait_for_run(run.id, timeout=10)
            rows = {tr.task_id: tr for tr in await scheduler.task_runs(run.id)}
    assert done.status is DagRunStatus.success
    sensed = rows["wait_until_12.30"]
    assert (sensed.attempt, sensed.started_at) == (1, START)
    assert sensed.finished_at == START + 30 * MINUTE
    assert rows["report"].result == "2026-03-01T12:30:00+00:00"
    assert len(waits.values) == 3


@pytest.mark.anyio
async def test_file_sensor_is_poked_on_the_schedulers_clock(tmp_path: Path) -> None:
    clock = FakeClock(START)
    arrived = FileSensor(tmp_path / "{logical_date}.csv", poke_interval=timedelta(hours=1))
    dag = DAG("files").add(arrived)
    with _poke_waits() as waits:
        async with Scheduler([dag], storage="memory://", clock=clock) as scheduler:
            run = await scheduler.trigger("files")
            await waits.wait_for(1)
            (tmp_path / "2026-03-01.csv").write_text("")
            clock.advance(timedelta(hours=1))  # the next poke is due: no real waiting
            done = await scheduler.wait_for_run(run.id, timeout=10)
            (row,) = await scheduler.task_runs(run.id)
    assert done.status is DagRunStatus.success
    assert (row.task_id, row.result) == (
        "wait_for_logical_date.csv",
        str(tmp_path / "2026-03-01.csv"),
    )
    assert (row.started_at, row.finished_at) == (START, START + timedelta(hours=1))


@contextlib.contextmanager
def _poke_waits() -> Iterator[Recorder]:
    """Records the engine's "waits for its next poke" event lines."""
    waits = Recorder()
    handler = EventLines("waits for its next poke", waits)
    events = logging.getLogger("ppacer_async.events")
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        yield waits
    finally:
        events.removeHandler(handler)
        events.setLevel(logging.NOTSET)


@pytest.mark.anyio
async def test_a_sensor_past_its_timeout_fails_without_retry_and_a_cancel_ends_its_wait() -> None:
    clock = FakeClock(START)
    waits = Recorder()
    handler = EventLines("waits for its next poke", waits)
    events = logging.getLogger("ppacer_async.events")
    events.addHandler(handler)
    events.setLevel(logging.INFO)

    @task.sensor(poke_interval=MINUTE, timeout=3 * MINUTE, retries=2)
    async def never(ctx: TaskContext) -> bool:
        return False

    @task.sensor(poke_interval=timedelta(hours=1))
    async def patient(ctx: TaskContext) -> bool:
        return False

    timing_out, cancelled = DAG("timing_out").add(never), DAG("cancelled").add(patient)
    try:
        async with Scheduler([timing_out, cancelled], storage="memory://", clock=clock) as s:
            run = await s.trigger("timing_out")
            for k in range(1, 4):  # pokes at 0, 1 and 2 minutes
                await waits.wait_for(k)
                clock.advance(MINUTE)
            done = await s.wait_for_run(run.id, timeout=10)
            (row,) = await s.task_runs(run.id)
            other = await s.trigger("cancelled")
            await waits.wait_for(4)
            await s.cancel_run(other.id)
            stopped = await s.wait_for_run(other.id, timeout=10)
            (waited,) = await s.task_runs(other.id)
    finally:
        events.removeHandler(handler)
        events.setLevel(logging.NOTSET)
    assert done.status is DagRunStatus.failed
    assert (row.status, row.attempt, row.started_at) == (TaskStatus.failed, 1, START)
    assert "SensorTimeout" in (row.error or "") and "0:03:00" in (row.error or "")
    assert stopped.status is DagRunStatus.cancelled
    assert (waited.status, waited.attempt) == (TaskStatus.cancelled, 1)


@pytest.mark.parametrize("status", [TaskStatus.scheduled, TaskStatus.running])
def test_a_new_leader_keeps_a_sensors_first_poke_from_its_shared_row(status: TaskStatus) -> None:
    from ppacer_async import DagRun, RunTrigger
    from ppacer_async._enums import AttemptReason
    from ppacer_async._scheduler import recovery
    from ppacer_async._scheduler.state import Effects

    @task.sensor(poke_interval=MINUTE, timeout=timedelta(hours=1))
    async def waiting(ctx: TaskContext) -> bool:
        return False

    dag = DAG("shared_sensing").add(waiting)
    run = DagRun(
        id=1,
        dag_id=dag.dag_id,
        logical_time=START,
        status=DagRunStatus.running,
        trigger=RunTrigger.manual,
        created_at=START,
        started_at=START,
    )
    row = TaskRun(
        run_id=1,
        task_id="waiting",
        attempt=1,
        status=status,
        reason=AttemptReason.initial,
        scheduled_at=START + 10 * MINUTE,
        started_at=START,  # the first poke, kept across pokes
    )
    fx = Effects(record_scheduled=True)
    state = recovery.restore(run, dag, [row], START + 10 * MINUTE, fx, restart=False, shared=True)
    assert state.sensing == {0: (START, AttemptReason.initial)}
