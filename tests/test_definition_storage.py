"""Storages keep a DAG's definition in its stored form (compressed JSON) and read it back;
a database of the previous release keeps its DAGs' versions across the upgrade."""

from __future__ import annotations

import importlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from ppacer_async import DAG, Scheduler, TaskContext, task
from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage
from ppacer_async.storage.postgres import PostgresStorage
from ppacer_async.storage.sqlite import SQLiteStorage

from .conftest import POSTGRES_DSN

pg_migrations = importlib.import_module("ppacer_async.storage.postgres.schema")

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def step(ctx: TaskContext) -> int:
    return 1


def fan_out(leaves: int) -> DAG:
    root, join = task(step, id="root"), task(step, id="join")
    return DAG("fan").add(root >> [task(step, id=f"leaf_{i}") for i in range(leaves)] >> join)


async def test_a_stored_definition_reads_back_as_the_definition(storage: Storage) -> None:
    dag = fan_out(2000)
    definition_hash, stored = dag.encoded_definition()

    assert await storage.sync_dag("fan", definition_hash, stored, NOW) == 1
    assert await storage.sync_dag("fan", definition_hash, stored, NOW) == 1  # unchanged

    info = await storage.get_dag("fan")
    assert info is not None and info.definition_hash == definition_hash
    assert info.definition == dag.definition()
    assert list(info.definition["tasks"])[:2] == ["root", "leaf_0"]
    [listed] = await storage.list_dags()
    assert listed.definition == dag.definition()


@pytest.mark.postgres
async def test_postgres_keeps_the_definition_compressed_in_bytea(schema: str, admin: Any) -> None:
    # jsonb refused a value over 256 MB (a DAG of about a million tasks); bytea takes
    # up to 1 GB, and the compressed form of a million tasks alike is a few MB.
    dag = fan_out(20_000)
    definition_hash, stored = dag.encoded_definition()
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        await storage.sync_dag("fan", definition_hash, stored, NOW)
        info = await storage.get_dag("fan")
    assert info is not None and info.definition == dag.definition()
    kind = await admin.fetchval(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'dag_versions' AND column_name = 'definition'",
        schema,
    )
    size = await admin.fetchval(f'SELECT octet_length(definition) FROM "{schema}".dag_versions')
    assert kind == "bytea"
    assert size == len(stored) and size * 20 < len(json.dumps(dag.definition()))


def old_dag() -> DAG:
    a, b = task(step, id="a"), task(step, id="b")
    return DAG("old", tags=("x",)).add(a >> b)


async def version_after_restart(storage: Storage) -> tuple[int, Any]:
    """Start a scheduler with the unchanged DAG on ``storage``: the version it serves
    and the definition read back."""
    async with Scheduler([old_dag()], storage=storage) as scheduler:
        run = await scheduler.trigger("old")
        await scheduler.wait_for_run(run.id, timeout=10)
        info = await scheduler.storage.get_dag("old")
    assert info is not None
    return info.version, info.definition


@pytest.mark.postgres
async def test_a_postgres_dag_version_of_the_previous_release_is_kept(
    schema: str, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = pg_migrations.migrations()
    monkeypatch.setattr(pg_migrations, "migrations", lambda: every[:-1])
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema):
        pass
    definition = old_dag().definition()
    await admin.execute(
        f'INSERT INTO "{schema}".dags (dag_id, created_at) VALUES ($1, $2)', "old", NOW
    )
    await admin.execute(
        f'INSERT INTO "{schema}".dag_versions '
        "(dag_id, version, definition_hash, definition, created_at) "
        "VALUES ($1, 1, $2, $3::jsonb, $4)",
        "old",
        old_dag().definition_hash(),
        json.dumps(definition),
        NOW,
    )
    monkeypatch.setattr(pg_migrations, "migrations", lambda: every)

    version, found = await version_after_restart(PostgresStorage(dsn=POSTGRES_DSN, schema=schema))

    assert (version, found) == (1, definition)  # converted in place, no new version
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".dag_versions') == 1


async def test_a_sqlite_dag_version_of_the_previous_release_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with SQLiteStorage(path=str(path)):
        pass
    definition = old_dag().definition()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO dags (dag_id, created_at) VALUES ('old', '2026')")
        conn.execute(
            "INSERT INTO dag_versions (dag_id, version, definition_hash, definition, "
            "created_at) VALUES ('old', 1, ?, ?, '2026-01-01T00:00:00.000000+00:00')",
            (old_dag().definition_hash(), json.dumps(definition)),
        )
    finally:
        conn.close()

    version, found = await version_after_restart(SQLiteStorage(path=str(path)))

    assert (version, found) == (1, definition)


async def test_memory_storage_keeps_the_stored_form_not_a_copy_of_objects() -> None:
    storage = MemoryStorage()
    params = {"n": [1]}
    dag = DAG("p", params=params).add(task(step, id="a"))
    definition = dag.definition()
    await storage.sync_dag("p", dag.definition_hash(), definition, NOW)

    definition["params"]["n"].append(2)  # the caller's object changes afterwards

    info = await storage.get_dag("p")
    assert info is not None and info.definition["params"] == {"n": [1]}


@pytest.mark.postgres
async def test_a_postgres_commit_of_many_task_runs_is_one_transaction_of_chunks(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ppacer_async import DagRunStatus, RunTrigger, TaskStatus
    from ppacer_async._structures import Changes, TaskRun
    from ppacer_async.storage.postgres import storage as pg_storage

    monkeypatch.setattr(pg_storage, "COMMIT_CHUNK", 2)  # 5 rows: three statements
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        run = await storage.create_run(
            dag_id="fan",
            logical_time=NOW,
            trigger=RunTrigger.manual,
            params={},
            dag_version=1,
            created_at=NOW,
        )
        assert run is not None
        rows = [
            TaskRun(run_id=run.id, task_id=f"t{i}", attempt=1, status=TaskStatus.scheduled)
            for i in range(5)
        ]
        running = attrs.evolve(run, status=DagRunStatus.running, started_at=NOW)
        await storage.commit(Changes(dag_runs=[running], task_runs=rows))
        assert [tr.task_id for tr in await storage.task_runs(run.id)] == [f"t{i}" for i in range(5)]
        assert (await storage.get_run(run.id)).status is DagRunStatus.running  # type: ignore[union-attr]

        # A missing run: nothing of any chunk is written.
        ghost = attrs.evolve(running, id=run.id + 1000)
        more = [attrs.evolve(tr, task_id=f"u{tr.task_id}") for tr in rows]
        with pytest.raises(Exception, match="do not exist"):
            await storage.commit(Changes(dag_runs=[ghost], task_runs=more))
        assert len(await storage.task_runs(run.id)) == 5
