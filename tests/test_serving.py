"""Which process serves which DAG: recorded on every storage while a scheduler serves,
shown by ``dags``, and ``trigger`` says when nothing serves the DAG."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from ppacer_async import DAG, Scheduler, TaskContext, operations, task
from ppacer_async.cli import main

from .conftest import StorageFactory


@task
async def hello(ctx: TaskContext) -> str:
    return "hello"


def _dags() -> list[DAG]:
    return [DAG("served").add(hello), DAG("other").add(hello)]


@pytest.mark.anyio
async def test_a_serving_scheduler_is_recorded_with_its_dags_until_it_stops(
    storage_factory: StorageFactory,
) -> None:
    scheduler = Scheduler(_dags()[:1], storage=storage_factory())
    async with scheduler:
        listed = {
            dag.dag_id: dag
            for dag in await operations.list_dags(scheduler.storage, datetime.now(UTC))
        }
        (worker,) = listed["served"].served_by
        assert worker.id == scheduler.worker_id
        assert worker.dag_ids == ("served",)
        assert listed["served"].served
        assert [w.id for w in await operations.serving(scheduler.storage, "served")] == [
            scheduler.worker_id
        ]
        assert await operations.serving(scheduler.storage, "other") == []
    storage = storage_factory()
    async with storage:
        (summary,) = await operations.list_dags(storage, datetime.now(UTC))
        assert not summary.served  # it stopped, and said so
        assert await storage.workers() == []


def _cli(*args: str) -> int:
    return main(list(args))


@pytest.mark.anyio
async def test_dags_shows_which_dags_a_live_scheduler_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    async with Scheduler(_dags(), storage=url):
        pass  # both DAGs are recorded
    async with Scheduler(_dags()[:1], storage=url):
        code = await anyio.to_thread.run_sync(_cli, "dags", "--storage", url)
        assert code == 0
        shown = capsys.readouterr()
        rows = {line.split()[0]: line.split() for line in shown.out.splitlines()[1:]}
        assert rows["served"][3] == "yes"  # DAG SCHEDULE PAUSED SERVED ...
        assert rows["other"][3] == "no"
        assert "no live scheduler serves other" in shown.err

        await anyio.to_thread.run_sync(_cli, "dags", "--json", "--storage", url)
        listed = {dag["dag_id"]: dag for dag in json.loads(capsys.readouterr().out)}
        assert [w["dag_ids"] for w in listed["served"]["served_by"]] == [["served"]]
        assert listed["other"]["served_by"] == []

        await anyio.to_thread.run_sync(_cli, "db", "info", "--storage", url)
        info = capsys.readouterr().out.splitlines()
        assert "workers          1" in info
        header = info.index(next(line for line in info if line.startswith("WORKER")))
        assert info[header].split() == ["WORKER", "ROLE", "RENEWED", "DAGS"]
        assert info[header + 1].split()[-1] == "served"


def _recorded(url: str) -> None:
    async def record() -> None:
        async with Scheduler(_dags(), storage=url):
            pass

    anyio.run(record)


def test_trigger_warns_when_no_live_scheduler_serves_the_dag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    _recorded(url)
    assert main(["trigger", "served", "--storage", url]) == 0
    shown = capsys.readouterr()
    assert shown.out.startswith("queued run 1 of served")
    assert "warning: no live scheduler serves DAG 'served'" in shown.err
    assert "ppacer-async serve FILE" in shown.err


def test_trigger_wait_fails_at_once_when_no_live_scheduler_serves_the_dag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    _recorded(url)
    assert main(["trigger", "served", "--wait", "--storage", url]) == 2
    shown = capsys.readouterr()
    assert "no live scheduler serves DAG 'served'" in shown.err
    assert "without --wait" in shown.err
    assert main(["runs", "--json", "--storage", url]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing was queued


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_process_that_stopped_renewing_its_record_is_not_live(
    tmp_path: Path, kind: str
) -> None:
    from ppacer_async.storage import MemoryStorage
    from ppacer_async.storage.sqlite import SQLiteStorage

    class Expiring(MemoryStorage if kind == "memory" else SQLiteStorage):  # type: ignore[misc]
        lease = timedelta(seconds=-1)  # every record has expired by the time it is read

    fresh = MemoryStorage() if kind == "memory" else SQLiteStorage(path=str(tmp_path / "f.db"))
    expiring = Expiring() if kind == "memory" else Expiring(path=str(tmp_path / "e.db"))
    now = datetime.now(UTC)
    async with fresh, expiring:
        await fresh.register_worker("w1", "all", now, ["a", "b"])
        await expiring.register_worker("w1", "all", now, ["a", "b"])
        (worker,) = await fresh.workers()
        assert (worker.id, worker.dag_ids, worker.role) == ("w1", ("a", "b"), "all")
        assert await expiring.workers() == []
        await fresh.unregister_worker("w1")
        assert await fresh.workers() == []


@pytest.mark.anyio
async def test_the_web_api_says_which_dags_a_live_process_serves(tmp_path: Path) -> None:
    from ppacer_async.web import create_app

    from .web_helpers import client

    url = f"sqlite:///{tmp_path / 'web.db'}"
    async with Scheduler(_dags(), storage=url):
        pass  # both DAGs are recorded
    app = create_app(storage=url)
    serving = Scheduler(_dags()[:1], storage=url)
    async with serving as scheduler, app.router.lifespan_context(app), client(app) as http:
        listed = (await http.get("/api/v1/dags")).json()["dags"]
        health = (await http.get("/api/v1/health")).json()
    served = {dag["dag_id"]: dag["served"] for dag in listed}
    assert served == {"served": True, "other": False}
    (process,) = health["processes"]
    assert (process["id"], process["dag_ids"]) == (scheduler.worker_id, ["served"])
