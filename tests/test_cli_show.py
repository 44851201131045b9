"""`show`: tasks that have no attempt row yet (readiness is not written), and stored
values printed as JSON."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import attrs
import pytest

from ppacer_async import (
    DAG,
    DagRun,
    DagRunStatus,
    RunTrigger,
    Scheduler,
    TaskContext,
    TaskRun,
    TaskStatus,
    task,
)
from ppacer_async._structures import Changes, DagInfo
from ppacer_async.cli.runs import _not_started
from ppacer_async.storage.sqlite import SQLiteStorage

from .helpers import command_env

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INFO = DagInfo(
    dag_id="d",
    version=1,
    definition_hash="x",
    definition={"tasks": {"a": {"upstream": []}, "b": {"upstream": ["a"]}}},
    paused=False,
    created_at=T0,
)


def run(status: DagRunStatus) -> DagRun:
    return DagRun(
        id=1,
        dag_id="d",
        logical_time=T0,
        status=status,
        trigger=RunTrigger.manual,
        created_at=T0,
    )


def row(task_id: str, status: TaskStatus) -> TaskRun:
    return TaskRun(run_id=1, task_id=task_id, attempt=1, status=status)


def test_task_whose_upstream_succeeded_is_shown_scheduled() -> None:
    latest = {"a": row("a", TaskStatus.success)}
    assert _not_started("b", INFO, latest, run(DagRunStatus.running)) == "scheduled"


def test_task_waiting_for_upstream_is_shown_pending() -> None:
    latest = {"a": row("a", TaskStatus.running)}
    assert _not_started("b", INFO, latest, run(DagRunStatus.running)) == "pending"
    assert _not_started("a", INFO, {}, run(DagRunStatus.queued)) == "pending"


def test_finished_runs_show_no_status_for_tasks_that_never_ran() -> None:
    assert _not_started("b", INFO, {}, run(DagRunStatus.failed)) == "-"


@pytest.mark.slow
@pytest.mark.anyio
async def test_show_json_prints_stored_lone_surrogates_as_json_escapes(tmp_path: Path) -> None:
    odd = "report-\udcff.csv"  # as os.listdir gives for a name that is not UTF-8

    @task
    async def listing(ctx: TaskContext) -> dict[str, str]:
        return {"name": "report.csv"}

    url = f"sqlite:///{tmp_path / 'odd.db'}"
    async with Scheduler([DAG("odd").add(listing)], storage=url) as scheduler:
        run = await scheduler.trigger("odd")
        assert (await scheduler.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success
        (stored,) = await scheduler.task_runs(run.id)
    # Results are made storable now (U+FFFD); a database written by an earlier version
    # may still hold lone surrogates, as written here directly.
    async with SQLiteStorage(path=str(tmp_path / "odd.db")) as storage:
        await storage.commit(Changes(task_runs=[attrs.evolve(stored, result={odd: odd})]))
    command = [sys.executable, "-m", "ppacer_async", "show", str(run.id), "--json"]
    done = await anyio.run_process(
        [*command, "--storage", url], env=command_env(PYTHONIOENCODING="utf-8"), check=False
    )
    stdout = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "\\udcff" in stdout
    [attempt] = json.loads(stdout)["attempts"]
    assert attempt["result"] == {odd: odd}
