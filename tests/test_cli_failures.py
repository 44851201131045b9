"""Why a task failed, as the command line shows it: ``show``, ``show RUN TASK``,
``show --json`` and ``trigger --wait`` print errors in whole."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import DAG, Scheduler, TaskContext, task
from ppacer_async.cli import main

ADVICE = (
    "the input file data/2026-01-01.csv has no column 'amount'; add it to the export "
    "or set params.column to the name the file uses"
)


@task
async def extract(ctx: TaskContext) -> None:
    raise KeyError(ADVICE)


@task(retries=1, retry_delay=timedelta(0))
async def flaky(ctx: TaskContext) -> str:
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return "fine"


@pytest.fixture
def failed_runs(tmp_path: Path) -> tuple[str, int, int]:
    """A SQLite file with a failed run (of ``extract``) and a run whose ``flaky`` task
    failed once, then succeeded."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def make() -> tuple[int, int]:
        broken = DAG("broken").add(extract)
        retried = DAG("retried").add(flaky)
        async with Scheduler([broken, retried], storage=url) as scheduler:
            first = await scheduler.trigger("broken")
            second = await scheduler.trigger("retried")
            await scheduler.wait_for_run(first.id, timeout=10)
            await scheduler.wait_for_run(second.id, timeout=10)
        return first.id, second.id

    first, second = anyio.run(make)
    return url, first, second


def test_show_prints_the_whole_error_of_a_failed_task(
    failed_runs: tuple[str, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, run_id, _ = failed_runs
    assert main(["show", str(run_id), "--storage", url]) == 0
    shown = capsys.readouterr().out
    joined = " ".join(line.strip() for line in shown.splitlines())
    assert ADVICE in joined  # wrapped, never cut
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert f"ppacer-async show {run_id} TASK_ID" in shown


def test_show_run_task_prints_every_attempt_with_its_traceback(
    failed_runs: tuple[str, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, run_id = failed_runs
    assert main(["show", str(run_id), "flaky", "--storage", url]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[0] == f"task flaky of run {run_id} (retried): success"
    assert re.search(r"^attempt 1: up_for_retry$", shown, re.M)
    assert re.search(r"^attempt 2: success \(retry\)$", shown, re.M)
    assert "Traceback (most recent call last)" in shown
    assert "test_cli_failures.py" in shown and "in flaky" in shown
    assert "RuntimeError: the first attempt fails" in shown
    assert "_scheduler" not in shown  # the task's frames, not the engine's


def test_show_run_task_names_the_tasks_of_the_run_when_the_task_is_unknown(
    failed_runs: tuple[str, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, run_id, _ = failed_runs
    assert main(["show", str(run_id), "nope", "--storage", url]) == 2
    assert "has no task 'nope' (tasks: extract)" in capsys.readouterr().err


def test_show_json_gives_a_task_that_succeeded_in_the_end_no_error(
    failed_runs: tuple[str, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, failed_id, retried_id = failed_runs
    assert main(["show", str(retried_id), "--json", "--storage", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    (task_row,) = shown["tasks"]
    assert (task_row["status"], task_row["error"]) == ("success", None)
    first, second = shown["attempts"]
    assert "RuntimeError: the first attempt fails" in first["error"]
    assert second["error"] is None

    assert main(["show", str(failed_id), "--json", "--storage", url]) == 0
    (task_row,) = json.loads(capsys.readouterr().out)["tasks"]
    assert ADVICE in task_row["error"]


@pytest.mark.anyio
async def test_trigger_wait_prints_the_whole_error_of_a_failed_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    async with Scheduler([DAG("broken").add(extract)], storage=url):
        code = await anyio.to_thread.run_sync(
            main, ["trigger", "broken", "--wait", "--storage", url]
        )
    shown = capsys.readouterr().out
    assert code == 1
    assert all(len(line) <= 80 for line in shown.splitlines())
    joined = " ".join(line.strip() for line in shown.splitlines())
    assert f"extract (attempt 1): KeyError: {ADVICE!r}" in joined
    assert "see the traceback with ppacer-async show 1 extract" in joined
