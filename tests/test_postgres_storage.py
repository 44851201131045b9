"""PostgresStorage behaviour beyond the shared storage contract.

Tests that need a server skip with the reason when none answers (and fail under CI).
"""

from __future__ import annotations

import re
import traceback
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from ppacer_async import SchemaVersionError, StorageError
from ppacer_async._enums import AttemptReason, RunTrigger, ScheduleEventKind, TaskStatus
from ppacer_async._structures import Changes, LogRecord, TaskRun
from ppacer_async.storage import from_url
from ppacer_async.storage.postgres import PostgresStorage, schema_version
from tests.conftest import POSTGRES_DSN

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "hunter2-secret"


async def tables(admin: Any, schema: str) -> list[str]:
    rows = await admin.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
    )
    return [row["tablename"] for row in rows]


async def versions(admin: Any, schema: str) -> list[int]:
    rows = await admin.fetch(f'SELECT version FROM "{schema}".schema_version ORDER BY version')
    return [row["version"] for row in rows]


# -- passwords ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://ppacer:{SECRET}@127.0.0.1:1/test",
        f"postgresql://ppacer@127.0.0.1:1/test?password={SECRET}",
    ],
)
def test_repr_hides_the_password(dsn: str) -> None:
    storage = PostgresStorage(dsn=dsn)

    assert SECRET not in repr(storage)
    assert "***" in repr(storage)
    assert "127.0.0.1:1" in repr(storage)


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://ppacer:{SECRET}@127.0.0.1:1/test",
        f"postgresql://ppacer@127.0.0.1:1/test?password={SECRET}",
    ],
)
async def test_connection_failure_names_the_server_but_not_the_password(dsn: str) -> None:
    storage = PostgresStorage(dsn=dsn, connect_timeout=timedelta(seconds=5))

    with pytest.raises(StorageError) as caught:
        await storage.open()

    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "***" in message
    assert "server is running" in message  # the hint
    assert SECRET not in "".join(traceback.format_exception(caught.value))
    await storage.close()


def test_from_url_builds_a_postgres_storage() -> None:
    url = f"postgresql://ppacer:{SECRET}@db.example:5433/ppacer"

    storage = from_url(url)

    assert isinstance(storage, PostgresStorage)
    assert storage.dsn == url
    assert storage.schema == "public"
    assert SECRET not in repr(storage)
    assert isinstance(from_url("postgres://ppacer@localhost/ppacer"), PostgresStorage)


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_pool_size": 0}, "max_pool_size must be at least 1, got 0"),
        ({"min_pool_size": 11}, "min_pool_size must be between 0 and max_pool_size (10)"),
        ({"statement_timeout": timedelta(seconds=-1)}, "statement_timeout must be positive"),
        ({"connect_timeout": timedelta(0)}, "connect_timeout must be positive"),
        ({"schema": ""}, "schema must be a non-empty name"),
    ],
)
def test_invalid_settings_are_refused_with_a_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        PostgresStorage(dsn=POSTGRES_DSN, **options)


async def test_using_a_storage_before_open_says_how_to_open_it() -> None:
    storage = PostgresStorage(dsn=POSTGRES_DSN)

    with pytest.raises(StorageError, match=re.escape("call await storage.open()")):
        await storage.get_run(1)


@pytest.mark.postgres
async def test_statement_timeout_is_set_on_every_connection(schema: str) -> None:
    storage = PostgresStorage(
        dsn=POSTGRES_DSN,
        schema=schema,
        min_pool_size=2,
        statement_timeout=timedelta(milliseconds=1500),
    )
    async with storage:
        pool = storage._pool
        async with pool.acquire() as first, pool.acquire() as second:
            assert await first.fetchval("SHOW statement_timeout") == "1500ms"
            assert await second.fetchval("SHOW statement_timeout") == "1500ms"


@pytest.mark.postgres
async def test_no_statement_timeout_keeps_the_server_setting(admin: Any, schema: str) -> None:
    server_default = await admin.fetchval("SHOW statement_timeout")
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema, statement_timeout=None) as s:
        assert isinstance(s, PostgresStorage)
        assert await s._pool.fetchval("SHOW statement_timeout") == server_default


# -- migrations --------------------------------------------------------------------------


@pytest.mark.postgres
async def test_opening_creates_the_tables_in_the_given_schema(admin: Any, schema: str) -> None:
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        counts = await storage.counts()

    assert counts.schema_version == schema_version()
    assert await tables(admin, schema) == [
        "dag_runs",
        "dag_versions",
        "dags",
        "pools",
        "schedule_events",
        "schema_version",
        "task_logs",
        "task_runs",
        "workers",
    ]
    assert await versions(admin, schema) == list(range(1, schema_version() + 1))


@pytest.mark.postgres
async def test_a_missing_schema_is_created(admin: Any) -> None:
    name = f"Test {uuid.uuid4().hex[:8]}"  # needs quoting: a space and a capital
    try:
        async with PostgresStorage(dsn=POSTGRES_DSN, schema=name) as storage:
            assert (await storage.counts()).schema_version == schema_version()
        assert "task_runs" in await tables(admin, name)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.mark.postgres
async def test_concurrent_opens_migrate_once(admin: Any, schema: str) -> None:
    storages = [PostgresStorage(dsn=POSTGRES_DSN, schema=schema) for _ in range(4)]
    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for storage in storages:
                    tg.start_soon(storage.open)
        for storage in storages:
            assert (await storage.counts()).schema_version == schema_version()
    finally:
        for storage in storages:
            await storage.close()

    assert await versions(admin, schema) == list(range(1, schema_version() + 1))


@pytest.mark.postgres
async def test_reopening_keeps_the_data(schema: str) -> None:
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        await storage.sync_dag("etl", "h1", {"tasks": ["a"]}, T0)
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        info = await storage.get_dag("etl")

    assert info is not None
    assert info.definition == {"tasks": ["a"]}


@pytest.mark.postgres
async def test_a_newer_schema_is_refused(admin: Any, schema: str) -> None:
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema):
        pass
    newer = schema_version() + 1
    await admin.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES ($1)', newer)

    storage = PostgresStorage(dsn=POSTGRES_DSN, schema=schema)
    with pytest.raises(SchemaVersionError, match=f"version {newer}, newer than"):
        await storage.open()
    await storage.close()


@pytest.mark.postgres
async def test_a_schema_of_other_tables_is_refused_and_left_untouched(
    admin: Any, schema: str
) -> None:
    await admin.execute(f'CREATE TABLE "{schema}".customers (id integer PRIMARY KEY)')
    await admin.execute(f'INSERT INTO "{schema}".customers VALUES (1)')

    storage = PostgresStorage(dsn=POSTGRES_DSN, schema=schema)
    with pytest.raises(StorageError, match=re.escape("not ppacer-async's (customers)")) as caught:
        await storage.open()
    await storage.close()

    assert not isinstance(caught.value, SchemaVersionError)
    assert await tables(admin, schema) == ["customers"]
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".customers') == 1


@pytest.mark.postgres
async def test_a_schema_version_table_of_another_tool_is_refused(admin: Any, schema: str) -> None:
    # Older Flyway releases keep their history in a table of this name.
    await admin.execute(f'CREATE TABLE "{schema}".schema_version (version varchar(50))')
    await admin.execute(f"INSERT INTO \"{schema}\".schema_version VALUES ('1.2')")

    storage = PostgresStorage(dsn=POSTGRES_DSN, schema=schema)
    with pytest.raises(StorageError, match="did not write"):
        await storage.open()
    await storage.close()

    assert await tables(admin, schema) == ["schema_version"]


# -- data --------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_concurrent_schedulers_create_a_scheduled_run_once(schema: str) -> None:
    storages = [PostgresStorage(dsn=POSTGRES_DSN, schema=schema) for _ in range(3)]
    created: list[int | None] = []

    async def create(storage: PostgresStorage) -> None:
        run = await storage.create_run(
            dag_id="etl",
            logical_time=T0,
            trigger=RunTrigger.schedule,
            params={},
            dag_version=1,
            created_at=T0,
            event=ScheduleEventKind.regular,
        )
        created.append(None if run is None else run.id)

    try:
        for storage in storages:
            await storage.open()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for storage in storages * 3:
                    tg.start_soon(create, storage)
        events = await storages[0].schedule_events("etl")
    finally:
        for storage in storages:
            await storage.close()

    assert len([run_id for run_id in created if run_id is not None]) == 1
    assert len(events) == 1


@pytest.mark.postgres
async def test_nul_characters_are_stored_as_replacement_characters(schema: str) -> None:
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        run = await storage.create_run(
            dag_id="etl",
            logical_time=T0,
            trigger=RunTrigger.manual,
            params={"p\x00": "v\x00"},
            dag_version=1,
            created_at=T0,
        )
        assert run is not None
        await storage.commit(
            Changes(
                task_runs=[
                    TaskRun(
                        run_id=run.id,
                        task_id="extract",
                        attempt=1,
                        status=TaskStatus.failed,
                        reason=AttemptReason.initial,
                        error="bad byte \x00",
                        result={"raw": ["a\x00b"], "escaped": "\\u0000"},
                    )
                ],
                logs=[
                    LogRecord(
                        run_id=run.id,
                        task_id="extract",
                        attempt=1,
                        time=T0,
                        level="INFO",
                        message="read \x00\x00",
                    )
                ],
            )
        )
        [task_run] = await storage.task_runs(run.id)
        [record] = await storage.logs(run.id)
        stored_run = await storage.get_run(run.id)

    assert stored_run is not None
    assert stored_run.params == {"p\ufffd": "v\ufffd"}
    assert task_run.error == "bad byte \ufffd"
    assert task_run.result == {"raw": ["a\ufffdb"], "escaped": "\\u0000"}
    assert record.message == "read \ufffd\ufffd"


@pytest.mark.postgres
async def test_times_come_back_in_utc(schema: str) -> None:
    warsaw = timezone(timedelta(hours=1))
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        run = await storage.create_run(
            dag_id="etl",
            logical_time=datetime(2026, 1, 1, 1, tzinfo=warsaw),
            trigger=RunTrigger.manual,
            params={},
            dag_version=1,
            created_at=T0,
        )
        assert run is not None
        stored = await storage.get_run(run.id)

    assert stored is not None
    assert stored.logical_time == T0
    assert stored.logical_time.tzinfo == UTC
