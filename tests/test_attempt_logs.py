"""An attempt's stored log tells its whole story: what it printed, what it logged with
standard ``logging``, and the traceback of its failure, each attributed to the right
attempt however many run at once."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from ppacer_async import DAG, FakeClock, Scheduler, TaskContext, TaskStatus, task

from .conftest import StorageFactory
from .helpers import T0

TASKS = 100


def _fails(task_id: str) -> bool:
    return int(task_id[1:]) % 2 == 0


def _report(ctx: TaskContext) -> None:
    """What every task says, each line naming the task."""
    print(f"printed by {ctx.task_id}")
    print(f"complained by {ctx.task_id}", file=sys.stderr)
    logging.getLogger("user.code").warning("logged by %s", ctx.task_id)
    ctx.log.info("ctx.log by %s", ctx.task_id)


def _raise_for(task_id: str) -> None:
    raise ValueError(f"bad input in {task_id}")


def _async_dag() -> tuple[DAG, anyio.Event]:
    arrived = 0
    all_in = anyio.Event()

    async def work(ctx: TaskContext) -> str:
        nonlocal arrived
        _report(ctx)
        arrived += 1
        if arrived == TASKS:
            all_in.set()
        await all_in.wait()  # every attempt is running when each one ends
        print(f"after the wait, {ctx.task_id}")
        if _fails(ctx.task_id):
            _raise_for(ctx.task_id)
        return ctx.task_id

    dag = DAG("many_async")
    dag.add(*(task(work, id=f"t{i}") for i in range(TASKS)))
    return dag, all_in


def _thread_dag() -> DAG:
    barrier = threading.Barrier(TASKS, timeout=20)

    def work(ctx: TaskContext) -> str:
        _report(ctx)
        barrier.wait()  # every attempt is running when each one ends
        print(f"after the wait, {ctx.task_id}")
        if _fails(ctx.task_id):
            _raise_for(ctx.task_id)
        return ctx.task_id

    dag = DAG("many_threads")
    dag.add(*(task(work, id=f"t{i}") for i in range(TASKS)))
    return dag


def _check_logs(records: list[Any], task_id: str, error: str | None) -> None:
    lines = [(record.level, record.message) for record in records]
    assert all(record.task_id == task_id and record.attempt == 1 for record in records)
    text = "\n".join(message for _, message in lines)
    others = [word for word in text.split() if word.startswith("t") and word[1:].isdigit()]
    assert set(others) == {task_id}, lines  # nothing from any other attempt
    assert ("STDOUT", f"printed by {task_id}") in lines
    assert ("STDOUT", f"after the wait, {task_id}") in lines
    assert ("STDERR", f"complained by {task_id}") in lines
    assert ("WARNING", f"user.code: logged by {task_id}") in lines
    assert ("INFO", f"ctx.log by {task_id}") in lines  # stored once, not twice
    assert sum(1 for _, message in lines if f"ctx.log by {task_id}" in message) == 1
    failures = [message for level, message in lines if level == "ERROR"]
    if error is None:
        assert failures == []
    else:
        (failure,) = failures
        assert error in failure
        assert f"ValueError: bad input in {task_id}" in failure
        assert "in _raise_for" in failure and "test_attempt_logs.py" in failure


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["async", "thread"])
async def test_each_of_many_concurrent_attempts_keeps_its_own_prints_logs_and_traceback(
    storage_factory: StorageFactory, kind: str
) -> None:
    dag = _async_dag()[0] if kind == "async" else _thread_dag()
    scheduler = Scheduler(
        [dag],
        storage=storage_factory(),
        clock=FakeClock(T0),
        max_concurrent_tasks=TASKS,
        max_threads=TASKS,
    )
    async with scheduler:
        run = await scheduler.trigger(dag.dag_id)
        await scheduler.wait_for_run(run.id, timeout=60)
        attempts = {tr.task_id: tr for tr in await scheduler.task_runs(run.id)}
        records = await scheduler.logs(run.id)
    assert len(attempts) == TASKS
    by_task: dict[str, list[Any]] = {}
    for record in records:
        by_task.setdefault(record.task_id, []).append(record)
    for task_id, tr in attempts.items():
        assert (tr.status is TaskStatus.failed) == _fails(task_id)
        if tr.error is not None:
            # the user's frames, not the engine's that called them
            assert "Traceback (most recent call last)" in tr.error
            assert "_scheduler" not in tr.error and "_task.py" not in tr.error
        _check_logs(by_task[task_id], task_id, tr.error)


@task
async def quiet(ctx: TaskContext) -> None:
    print("no newline at the end", end="")


@pytest.mark.anyio
async def test_output_without_a_final_newline_is_kept() -> None:
    dag = DAG("quiet")
    dag.add(quiet)
    async with Scheduler([dag], storage="memory://") as scheduler:
        run = await scheduler.trigger("quiet")
        await scheduler.wait_for_run(run.id, timeout=10)
        records = await scheduler.logs(run.id)
    assert [(r.level, r.message) for r in records] == [("STDOUT", "no newline at the end")]


def test_stdout_and_stderr_are_given_back_after_serving() -> None:
    before = sys.stdout, sys.stderr

    async def serve_briefly() -> None:
        async with Scheduler([], storage="memory://"):
            assert sys.stdout is not before[0]

    anyio.run(serve_briefly)
    assert (sys.stdout, sys.stderr) == before


SCRIPT = """\
import logging

import anyio

from ppacer_async import DAG, Scheduler, TaskContext, task


@task
async def speak(ctx: TaskContext) -> None:
    print("printed by the task")
    logging.getLogger("user.code").warning("warned by the task")


async def main() -> None:
    async with Scheduler([DAG("speak").add(speak)], storage="memory://") as scheduler:
        run = await scheduler.trigger("speak")
        await scheduler.wait_for_run(run.id, timeout=10)
        logging.getLogger("user.code").warning("warned outside")
        for record in await scheduler.logs(run.id):
            print("stored", record.level, record.message)


anyio.run(main)
"""


def test_what_a_task_says_still_reaches_the_console_as_it_did(tmp_path: Path) -> None:
    script = tmp_path / "speak.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # logging is not configured: Python's last-resort handler still prints warnings
    assert done.stderr.splitlines() == ["warned by the task", "warned outside"]
    assert done.stdout.splitlines() == [
        "printed by the task",
        "stored STDOUT printed by the task",
        "stored WARNING user.code: warned by the task",
    ]
