"""A database written by the previous release upgrades in place: its runs stay intact
and go on with the new statuses (restart after the upgrade)."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, TaskStatus, task
from ppacer_async.storage import sqlite as sqlite_module
from ppacer_async.storage.postgres import PostgresStorage
from ppacer_async.storage.sqlite import MIGRATIONS, SQLiteStorage, apply_migrations

from .conftest import POSTGRES_DSN

#: where PostgreSQL's migrations are listed
pg_migrations = importlib.import_module("ppacer_async.storage.postgres.schema")

pytestmark = pytest.mark.anyio

T = "2026-01-01T00:00:00.000000+00:00"

#: A failed run of the previous release: ``a`` succeeded, ``b`` failed, ``c`` was
#: upstream_failed.
OLD_RUN = [
    "INSERT INTO dag_runs (id, dag_id, logical_time, status, trigger, scheduled, params, "
    "dag_version, created_at, started_at, finished_at) "
    "VALUES (1, 'old', {t}, 'failed', 'manual', {false}, '{{}}', 1, {t}, {t}, {t})",
    "INSERT INTO task_runs (run_id, task_id, attempt, status, reason, scheduled_at, "
    "started_at, finished_at, error, result) VALUES "
    "(1, 'a', 1, 'success', 'initial', {t}, {t}, {t}, NULL, '5'), "
    "(1, 'b', 1, 'failed', 'initial', {t}, {t}, {t}, 'boom', NULL), "
    "(1, 'c', 1, 'upstream_failed', 'initial', {t}, NULL, {t}, 'upstream task ''b'' failed', "
    "NULL)",
]


def old_dag(calls: list[str]) -> DAG:
    @task
    async def a(ctx: TaskContext) -> int:
        calls.append("a")
        return 5

    @task
    async def b(ctx: TaskContext) -> int:
        calls.append("b")
        return ctx.upstream["a"] + 1

    @task
    async def c(ctx: TaskContext) -> int:
        calls.append("c")
        return ctx.upstream["b"] + 1

    return DAG("old").add(a >> b >> c)


async def upgrade_and_restart(storage: Any) -> None:
    calls: list[str] = []
    async with Scheduler([old_dag(calls)], storage=storage) as scheduler:
        run = await scheduler.get_run(1)
        assert (run.status, run.note) == (DagRunStatus.failed, None)
        rows = await scheduler.task_runs(1)
        assert [(tr.task_id, tr.attempt, tr.status) for tr in rows] == [
            ("a", 1, TaskStatus.success),
            ("b", 1, TaskStatus.failed),
            ("c", 1, TaskStatus.upstream_failed),
        ]
        await scheduler.restart_run(1)
        done = await scheduler.wait_for_run(1, timeout=10)
        rows = await scheduler.task_runs(1)
    assert done.status is DagRunStatus.success
    assert calls == ["b", "c"]  # what succeeded before the upgrade does not run again
    assert {tr.task_id: tr.result for tr in rows if tr.status is TaskStatus.success} == {
        "a": 5,
        "b": 6,
        "c": 7,
    }


async def test_a_sqlite_database_of_the_previous_release_upgrades_with_its_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        apply_migrations(conn, MIGRATIONS[:-1])
        for statement in OLD_RUN:
            conn.execute(statement.format(t=f"'{T}'", false=0))
    finally:
        conn.close()
    await upgrade_and_restart(SQLiteStorage(path=str(path)))
    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    finally:
        conn.close()
    assert version == len(sqlite_module.MIGRATIONS)


@pytest.mark.postgres
async def test_a_postgres_database_of_the_previous_release_upgrades_with_its_runs(
    schema: str, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = pg_migrations.migrations()
    monkeypatch.setattr(pg_migrations, "migrations", lambda: every[:-1])
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        assert (await storage.counts()).schema_version == len(every) - 1
    for statement in OLD_RUN:
        await admin.execute(
            f'SET search_path TO "{schema}"; '
            + statement.format(t=f"'{T}'::timestamptz", false="false")
        )
    await admin.execute("SET search_path TO public")
    monkeypatch.setattr(pg_migrations, "migrations", lambda: every)
    await upgrade_and_restart(PostgresStorage(dsn=POSTGRES_DSN, schema=schema))
    version = await admin.fetchval(f'SELECT max(version) FROM "{schema}".schema_version')
    assert version == len(every)
