"""A dry run: ``scheduler.run_once`` in Python and ``ppacer-async test`` on the command
line run one run now, in this process, without the DAG's schedule."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import (
    DAG,
    DagNotFound,
    DagRunStatus,
    FakeClock,
    RunTrigger,
    Scheduler,
    TaskContext,
    task,
)
from ppacer_async.schedules import Interval

from .conftest import StorageFactory
from .helpers import T0, command_env


@task
async def double(ctx: TaskContext) -> int:
    if ctx.params.get("fail"):
        raise ValueError("asked to fail")
    return int(ctx.params["n"]) * 2


def _hourly() -> DAG:
    # Due every hour since long ago, with catch-up: serving would start many runs.
    return DAG(
        "hourly",
        schedule=Interval(timedelta(hours=1)),
        start=T0 - timedelta(days=10),
        catchup=True,
        params={"n": 1},
    ).add(double)


@pytest.mark.anyio
async def test_run_once_runs_one_run_and_returns_it_finished_without_the_schedule(
    storage_factory: StorageFactory,
) -> None:
    scheduler = Scheduler([_hourly()], storage=storage_factory(), clock=FakeClock(T0))
    run = await scheduler.run_once("hourly", params={"n": 21})
    assert (run.status, run.trigger, run.params) == (
        DagRunStatus.success,
        RunTrigger.manual,
        {"n": 21},
    )
    async with scheduler.storage as storage:
        (attempt,) = await storage.task_runs(run.id)
        assert attempt.result == 42
        assert [r.id for r in await storage.list_runs()] == [run.id]  # no scheduled run


@pytest.mark.anyio
async def test_run_once_returns_a_failed_run_and_can_run_again() -> None:
    scheduler = Scheduler([_hourly()], storage="memory://")
    failed = await scheduler.run_once("hourly", params={"fail": True})
    assert failed.status is DagRunStatus.failed
    again = await scheduler.run_once("hourly")
    assert again.status is DagRunStatus.success


@pytest.mark.anyio
async def test_run_once_on_a_serving_scheduler_triggers_and_waits() -> None:
    async with Scheduler([DAG("plain", params={"n": 2}).add(double)], storage="memory://") as s:
        run = await s.run_once("plain")
        assert run.status is DagRunStatus.success
        with pytest.raises(DagNotFound):
            await s.run_once("nope")


DAG_FILE = """\
import logging
from ppacer_async import DAG, TaskContext, task


@task
async def extract(ctx: TaskContext) -> int:
    print("extracting", ctx.params.get("day"))
    return 3


@task
def transform(ctx: TaskContext) -> int:
    if ctx.params.get("fail"):
        raise ValueError(
            "column 'amount' is missing from the export; add it, or name the column "
            "with --param column=NAME"
        )
    return ctx.upstream["extract"] * 2


etl = DAG("etl").add(extract >> transform)
other = DAG("other").add(extract)
"""


def _test_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mydags.py").write_text(DAG_FILE)
    return subprocess.run(
        [sys.executable, "-m", "ppacer_async", "test", "mydags.py", *args],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_test_command_prints_tasks_as_they_end_and_exits_0(tmp_path: Path) -> None:
    done = _test_command(tmp_path, "etl", "--param", "day=2026-01-31")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "testing etl: run 1 on memory://"
    assert "extracting 2026-01-31" in lines
    ended = [line.split()[:2] for line in lines if line.startswith("  ")]
    assert ended == [["extract", "success"], ["transform", "success"]]
    assert lines[-1].startswith("run 1 of etl: success in ")
    assert not list(tmp_path.glob("*.db"))  # nothing left behind


def test_the_test_command_prints_a_failure_in_full_and_exits_1(tmp_path: Path) -> None:
    done = _test_command(tmp_path, "etl", "--param", "fail=true")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "run 1 of etl: failed in " in out
    assert "transform failed (attempt 1):" in out
    assert 'File "' in out and "mydags.py" in out and "in transform" in out
    assert "with --param column=NAME" in out  # the whole message, never cut
    assert "Traceback" not in done.stderr


def test_the_test_command_asks_which_dag_when_a_file_has_several(tmp_path: Path) -> None:
    done = _test_command(tmp_path)
    assert done.returncode == 2
    assert "mydags.py has 2 DAGs (etl, other); name the one to run" in done.stderr


@pytest.mark.anyio
async def test_run_once_gives_up_after_its_timeout_with_timeout_error() -> None:
    @task
    async def slow(ctx: TaskContext) -> None:
        await anyio.sleep(30)

    scheduler = Scheduler([DAG("slow").add(slow)], storage="memory://")
    with pytest.raises(TimeoutError):
        await scheduler.run_once("slow", timeout=0.05)
