"""What only the SQLite back end promises: file safety, WAL, the scheduler lock, migrations."""

from __future__ import annotations

import hashlib
import inspect
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import attrs
import pytest

from ppacer_async._enums import DagRunStatus, RunTrigger, ScheduleEventKind, TaskStatus
from ppacer_async._exceptions import (
    ResultNotStorable,
    SchemaVersionError,
    StorageError,
    StorageLockedError,
)
from ppacer_async._structures import Changes, DagRun, LogRecord, TaskRun
from ppacer_async.storage import from_url
from ppacer_async.storage import sqlite as sqlite_module
from ppacer_async.storage._codec import ts, ts_by_second
from ppacer_async.storage.sqlite import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    SQLiteStorage,
    apply_migrations,
    list_migrations,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIDECARS = ("-wal", "-shm", "-journal", ".lock")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ppacer.db"


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, content: bytes) -> None:
    path.write_bytes(content)


def digest(path: Path) -> str:
    return hashlib.sha256(read(path)).hexdigest()


def sidecars(path: Path) -> list[str]:
    return [suffix for suffix in SIDECARS if Path(f"{path}{suffix}").exists()]


def schema_of(path: Path) -> list[tuple[str, str, str, str | None]]:
    with closing_connection(path) as conn:
        rows: list[tuple[str, str, str, str | None]] = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    return rows


class closing_connection:
    """A plain sqlite3 connection in autocommit mode, closed on exit."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


async def new_run(storage: SQLiteStorage, minute: int = 0) -> DagRun:
    run = await storage.create_run(
        dag_id="etl",
        logical_time=T0 + timedelta(minutes=minute),
        trigger=RunTrigger.schedule,
        params={},
        dag_version=1,
        created_at=T0,
        event=ScheduleEventKind.regular,
    )
    assert run is not None
    return run


# -- the connection ------------------------------------------------------------------------


def test_aiosqlite_still_offers_running_a_function_in_its_thread() -> None:
    # SQLiteStorage runs each method as one function in aiosqlite's thread through this
    # private method; an aiosqlite release without it must fail here first.
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property)


async def test_the_database_is_in_wal_mode_with_the_expected_settings(db_path: Path) -> None:
    async with SQLiteStorage(path=str(db_path)) as storage:
        assert isinstance(storage, SQLiteStorage)
        with closing_connection(db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        settings = await storage._call(
            "read settings",
            lambda conn: [
                conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("synchronous", "foreign_keys", "busy_timeout")
            ],
        )
    assert settings == [1, 1, 5000]  # synchronous=NORMAL


async def test_times_are_stored_as_fixed_width_utc_text(db_path: Path) -> None:
    async with SQLiteStorage(path=str(db_path)) as storage:
        await storage.create_run(
            dag_id="etl",
            logical_time=datetime(2026, 7, 1, 2, 0, tzinfo=UTC) + timedelta(hours=-3),
            trigger=RunTrigger.manual,
            params={},
            dag_version=1,
            created_at=datetime(2026, 7, 1, 2, 0, 0, 5, tzinfo=UTC),
        )
    with closing_connection(db_path) as conn:
        row = conn.execute("SELECT logical_time, created_at FROM dag_runs").fetchone()
    assert row == ("2026-06-30T23:00:00.000000+00:00", "2026-07-01T02:00:00.000005+00:00")


def test_times_formatted_by_the_second_equal_the_plain_text() -> None:
    """A commit's attempt times are formatted with the text up to the second remembered;
    every one must be what ``ts`` writes, or text order would not be time order."""
    seconds: dict[Any, str] = {}
    east = timezone(timedelta(hours=5, minutes=30))
    moments = [
        datetime(2026, 7, 1, 2, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 2, 0, 0, 5, tzinfo=UTC),
        datetime(2026, 7, 1, 2, 0, 0, 999_999, tzinfo=UTC),
        datetime(2026, 7, 1, 2, 0, 1, 5, tzinfo=UTC),  # the next second, same micros
        datetime(2026, 7, 2, 2, 0, 0, 5, tzinfo=UTC),  # the next day, same time of day
        datetime(2027, 7, 1, 2, 0, 0, 5, tzinfo=UTC),  # the next year
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 7, 1, 2, 0, 0, 5, tzinfo=east),  # not UTC: converted first
    ]
    for moment in moments * 2:  # the second time round, from the memo
        assert ts_by_second(moment, seconds) == ts(moment)
    assert ts(moments[-1]) == "2026-06-30T20:30:00.000005+00:00"


async def test_repr_is_short_and_from_url_builds_sqlite_storage(tmp_path: Path) -> None:
    relative = from_url("sqlite:///ppacer.db")
    absolute = from_url(f"sqlite:///{tmp_path}/a b.db")

    assert isinstance(relative, SQLiteStorage)
    assert relative.path == "ppacer.db"
    assert isinstance(absolute, SQLiteStorage)
    assert absolute.path == f"{tmp_path}/a b.db"
    assert repr(relative) == "SQLiteStorage(path='ppacer.db')"
    async with absolute:
        assert (await absolute.counts()).schema_version == SCHEMA_VERSION


async def test_a_storage_that_is_not_open_says_so(db_path: Path) -> None:
    storage = SQLiteStorage(path=str(db_path))

    with pytest.raises(StorageError, match="not open"):
        await storage.list_runs()
    await storage.close()


def test_an_empty_path_is_refused() -> None:
    with pytest.raises(ValueError, match="path"):
        SQLiteStorage(path="")


async def test_a_file_in_a_missing_directory_gives_a_storage_error(tmp_path: Path) -> None:
    storage = SQLiteStorage(path=str(tmp_path / "missing" / "ppacer.db"))

    with pytest.raises(StorageError, match=r"cannot open .* the directory .*missing does not"):
        await storage.open()


# -- refusing files that are not ours -----------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a text file\n" * 100,
        b"x",
        b"SQLite format 2\x00" + bytes(4096),
        os.urandom(8192),
    ],
    ids=["text", "one-byte", "almost-sqlite", "random"],
)
async def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(
    db_path: Path, content: bytes
) -> None:
    write(db_path, content)
    before = digest(db_path)
    storage = SQLiteStorage(path=str(db_path))

    with pytest.raises(StorageError, match="is not a SQLite database; point --storage"):
        await storage.open()

    assert digest(db_path) == before
    assert sidecars(db_path) == []
    with pytest.raises(StorageError, match="not open"):
        await storage.counts()


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
async def test_a_foreign_sqlite_database_is_refused_and_left_untouched(
    db_path: Path, journal_mode: str
) -> None:
    with closing_connection(db_path) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ala')")
    assert sidecars(db_path) == []
    before = digest(db_path)

    with pytest.raises(StorageError, match=r"not a ppacer-async one.*users"):
        await SQLiteStorage(path=str(db_path)).open()

    assert digest(db_path) == before
    assert sidecars(db_path) == []


async def test_an_empty_file_becomes_a_database(db_path: Path) -> None:
    write(db_path, b"")

    async with SQLiteStorage(path=str(db_path)) as storage:
        assert (await storage.counts()).schema_version == SCHEMA_VERSION


async def test_a_sqlite_database_without_tables_is_adopted(db_path: Path) -> None:
    with closing_connection(db_path) as conn:
        conn.execute("CREATE TABLE scratch (x)")
        conn.execute("DROP TABLE scratch")
    assert read(db_path).startswith(b"SQLite format 3\x00")

    async with SQLiteStorage(path=str(db_path)) as storage:
        assert (await storage.counts()).schema_version == SCHEMA_VERSION


async def test_a_newer_schema_is_refused_and_left_untouched(db_path: Path) -> None:
    async with SQLiteStorage(path=str(db_path)) as storage:
        await new_run(storage)
    newer = SCHEMA_VERSION + 1
    with closing_connection(db_path) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 'x')", (newer,))
    assert sidecars(db_path) == []
    before = digest(db_path)

    with pytest.raises(SchemaVersionError) as caught:
        await SQLiteStorage(path=str(db_path)).open()

    message = str(caught.value)
    assert f"schema version {newer}" in message
    assert f"up to {SCHEMA_VERSION}" in message
    assert "upgrade ppacer-async" in message
    assert isinstance(caught.value, StorageError)
    assert digest(db_path) == before
    assert sidecars(db_path) == []


async def test_an_open_database_can_be_opened_again_while_in_use(db_path: Path) -> None:
    # The second open inspects a live WAL database (its -wal file exists) read-only.
    async with SQLiteStorage(path=str(db_path)) as first:
        run = await new_run(first)
        assert "-wal" in sidecars(db_path)
        async with SQLiteStorage(path=str(db_path)) as second:
            assert await second.get_run(run.id) == run
    assert sidecars(db_path) == []


CRASH_SCRIPT = """
import asyncio, os, signal, sys
from datetime import datetime, timezone
from ppacer_async._enums import RunTrigger
from ppacer_async.storage.sqlite import SQLiteStorage

async def main() -> None:
    storage = SQLiteStorage(path=sys.argv[1])
    await storage.open()
    await storage.acquire_scheduler_lock()
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for _ in range(20):
        await storage.create_run(
            dag_id="etl", logical_time=now, trigger=RunTrigger.manual, params={},
            dag_version=1, created_at=now,
        )
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_database_left_by_a_killed_scheduler_opens_with_its_data(db_path: Path) -> None:
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-c", CRASH_SCRIPT, str(db_path)], check=False
        )
    assert result.returncode == -signal.SIGKILL
    assert "-wal" in sidecars(db_path)  # the commits may live only in the WAL

    async with SQLiteStorage(path=str(db_path)) as storage:
        await storage.acquire_scheduler_lock()
        assert (await storage.counts()).dag_runs == 20


# -- the scheduler lock --------------------------------------------------------------------

LOCK_SCRIPT = """
import asyncio, sys
from ppacer_async._exceptions import StorageLockedError
from ppacer_async.storage.sqlite import SQLiteStorage

async def main() -> None:
    storage = SQLiteStorage(path=sys.argv[1])
    try:
        await storage.acquire_scheduler_lock()
    except StorageLockedError as exc:
        print("refused:", exc, flush=True)
        return
    print("acquired", flush=True)
    if sys.argv[2:] == ["hold"]:
        await asyncio.sleep(60)
    await storage.close()

asyncio.run(main())
"""


async def try_lock_in_subprocess(db_path: Path) -> str:
    result = await anyio.run_process([sys.executable, "-c", LOCK_SCRIPT, str(db_path)], check=True)
    return result.stdout.decode().strip()


async def test_a_second_scheduler_in_the_same_process_is_refused(db_path: Path) -> None:
    async with (
        SQLiteStorage(path=str(db_path)) as first,
        SQLiteStorage(path=str(db_path)) as second,
    ):
        await first.acquire_scheduler_lock()
        await first.acquire_scheduler_lock()  # holding it already is fine

        with pytest.raises(StorageLockedError) as caught:
            await second.acquire_scheduler_lock()

        message = str(caught.value)
        assert f"{db_path} is already served by another scheduler (pid {os.getpid()})" in message
        assert "stop it first, or use PostgreSQL" in message
        # The refused storage still works for everything but scheduling.
        assert await second.list_runs() == []

        await first.close()
        await second.acquire_scheduler_lock()


@pytest.mark.slow
async def test_a_scheduler_in_another_process_is_refused_until_the_lock_is_released(
    db_path: Path,
) -> None:
    storage = SQLiteStorage(path=str(db_path))
    await storage.open()
    await storage.acquire_scheduler_lock()
    try:
        with anyio.fail_after(30):
            output = await try_lock_in_subprocess(db_path)
        assert output.startswith("refused:")
        assert f"(pid {os.getpid()})" in output
    finally:
        await storage.close()

    with anyio.fail_after(30):
        assert await try_lock_in_subprocess(db_path) == "acquired"


@pytest.mark.slow
async def test_the_lock_of_a_killed_scheduler_is_released(db_path: Path) -> None:
    command = [sys.executable, "-c", LOCK_SCRIPT, str(db_path), "hold"]
    storage = SQLiteStorage(path=str(db_path))
    with anyio.fail_after(30):
        async with await anyio.open_process(command) as process:
            assert process.stdout is not None
            output = b""
            while b"acquired" not in output:
                output += await process.stdout.receive()

            with pytest.raises(StorageLockedError, match=rf"\(pid {process.pid}\)"):
                await storage.acquire_scheduler_lock()

            process.send_signal(signal.SIGKILL)
            await process.wait()

    await storage.acquire_scheduler_lock()
    await storage.close()


# -- migrations ----------------------------------------------------------------------------


def test_migrations_are_numbered_from_1_without_gaps() -> None:
    migrations = list_migrations()

    assert migrations == MIGRATIONS
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_initial.sql"
    assert migrations[-1].version == SCHEMA_VERSION
    assert all(m.statements() for m in migrations)


def test_statements_split_only_between_statements() -> None:
    migration = Migration(
        version=1,
        name="0001_x.sql",
        sql="""
        -- a comment; with a semicolon
        CREATE TABLE t (a TEXT DEFAULT ';', n INTEGER);
        CREATE TRIGGER t_count AFTER INSERT ON t BEGIN
            UPDATE t SET n = 1 WHERE rowid = new.rowid;
        END;
        -- a trailing comment
        """,
    )

    statements = migration.statements()

    assert len(statements) == 3
    assert statements[0].endswith("CREATE TABLE t (a TEXT DEFAULT ';', n INTEGER);")
    assert statements[1].startswith("CREATE TRIGGER")
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO t (a) VALUES ('x')")
    assert conn.execute("SELECT a, n FROM t").fetchall() == [("x", 1)]
    conn.close()


def migrate_step_by_step(path: Path, migrations: tuple[Migration, ...]) -> None:
    """Apply migrations one release at a time, closing the database in between."""
    for count in range(1, len(migrations) + 1):
        with closing_connection(path) as conn:
            assert apply_migrations(conn, migrations[:count]) == count


def versions_of(path: Path) -> list[int]:
    with closing_connection(path) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


async def test_a_database_migrated_step_by_step_equals_a_fresh_one(tmp_path: Path) -> None:
    fresh, stepwise = tmp_path / "fresh.db", tmp_path / "stepwise.db"
    async with SQLiteStorage(path=str(fresh)):
        pass

    migrate_step_by_step(stepwise, MIGRATIONS)
    async with SQLiteStorage(path=str(stepwise)) as storage:
        assert (await storage.counts()).schema_version == SCHEMA_VERSION

    assert schema_of(stepwise) == schema_of(fresh)
    assert versions_of(stepwise) == versions_of(fresh) == list(range(1, SCHEMA_VERSION + 1))


EXTRA = Migration(
    version=SCHEMA_VERSION + 1,
    name=f"{SCHEMA_VERSION + 1:04d}_extra.sql",
    sql="""
    CREATE TABLE extra (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES dag_runs (id));
    ALTER TABLE dag_runs ADD COLUMN extra_note TEXT;
    CREATE INDEX extra_run_id ON extra (run_id);
    """,
)


@pytest.fixture
def with_extra_migration(monkeypatch: pytest.MonkeyPatch) -> tuple[Migration, ...]:
    migrations = (*MIGRATIONS, EXTRA)
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations)
    return migrations


async def test_a_new_migration_upgrades_an_existing_database_keeping_its_data(
    tmp_path: Path, with_extra_migration: tuple[Migration, ...]
) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    migrate_step_by_step(old, MIGRATIONS)  # a database of the previous release
    with closing_connection(old) as conn:
        conn.execute(
            "INSERT INTO dag_runs (dag_id, logical_time, status, trigger, scheduled, params, "
            "dag_version, created_at) VALUES ('etl', ?, 'queued', 'schedule', 1, '{}', 1, ?)",
            ("2026-01-01T00:00:00.000000+00:00", "2026-01-01T00:00:00.000000+00:00"),
        )

    async with SQLiteStorage(path=str(old)) as storage:
        assert (await storage.counts()).schema_version == EXTRA.version
        (run,) = await storage.list_runs()
        assert (run.dag_id, run.logical_time) == ("etl", T0)
    async with SQLiteStorage(path=str(fresh)):
        pass

    assert schema_of(old) == schema_of(fresh)
    assert any(name == "extra" for _, name, _, _ in schema_of(old))
    assert versions_of(old) == versions_of(fresh) == [m.version for m in with_extra_migration]


async def test_a_failing_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLiteStorage(path=str(db_path)):
        pass
    before = schema_of(db_path)
    broken = Migration(
        version=SCHEMA_VERSION + 1,
        name="broken.sql",
        sql="CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);",
    )
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*MIGRATIONS, broken))
    storage = SQLiteStorage(path=str(db_path))

    with pytest.raises(StorageError, match="no_such_table"):
        await storage.open()

    assert schema_of(db_path) == before
    assert versions_of(db_path) == list(range(1, SCHEMA_VERSION + 1))
    with pytest.raises(StorageError, match="not open"):
        await storage.counts()


async def test_an_older_program_refuses_a_migrated_database(
    db_path: Path, with_extra_migration: tuple[Migration, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLiteStorage(path=str(db_path)):
        pass
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS)

    with pytest.raises(SchemaVersionError, match=f"version {EXTRA.version}"):
        await SQLiteStorage(path=str(db_path)).open()


# -- bad input leaves stored data intact ---------------------------------------------------


async def stored_state(storage: SQLiteStorage) -> tuple[Any, ...]:
    runs = await storage.list_runs()
    return (
        runs,
        [await storage.task_runs(run.id) for run in runs],
        [await storage.logs(run.id) for run in runs],
        await storage.counts(),
    )


@pytest.fixture
async def storage_with_a_run(db_path: Path) -> AsyncIterator[tuple[SQLiteStorage, DagRun]]:
    async with SQLiteStorage(path=str(db_path)) as storage:
        run = await new_run(storage)
        await storage.commit(
            Changes(
                task_runs=[
                    TaskRun(run_id=run.id, task_id="a", attempt=1, status=TaskStatus.running)
                ],
                logs=[
                    LogRecord(
                        run_id=run.id, task_id="a", attempt=1, time=T0, level="INFO", message="m"
                    )
                ],
            )
        )
        yield storage, run


def good_rows(run: DagRun) -> dict[str, Any]:
    return {
        "task_runs": [
            TaskRun(run_id=run.id, task_id="a", attempt=1, status=TaskStatus.success, result=1),
            TaskRun(run_id=run.id, task_id="b", attempt=1, status=TaskStatus.scheduled),
        ],
        "dag_runs": [attrs.evolve(run, status=DagRunStatus.success, finished_at=T0)],
        "logs": [
            LogRecord(run_id=run.id, task_id="a", attempt=1, time=T0, level="INFO", message="x")
        ],
    }


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (
            {"task_runs": [TaskRun(run_id=999, task_id="x", attempt=1, status=TaskStatus.running)]},
            StorageError,
            "DAG run that does not exist",
        ),
        (
            {
                "logs": [
                    LogRecord(run_id=999, task_id="x", attempt=1, time=T0, level="I", message="m")
                ]
            },
            StorageError,
            "DAG run that does not exist",
        ),
        (
            {
                "dag_runs": [
                    DagRun(
                        id=999,
                        dag_id="etl",
                        logical_time=T0,
                        status=DagRunStatus.running,
                        trigger=RunTrigger.manual,
                        created_at=T0,
                    )
                ]
            },
            StorageError,
            r"do not exist: \[999\]",
        ),
        (
            {
                "task_runs": [
                    TaskRun(
                        run_id=1, task_id="x", attempt=1, status=TaskStatus.success, result={1, 2}
                    )
                ]
            },
            ResultNotStorable,
            "'x'.*cannot be stored as JSON",
        ),
        (
            {"task_runs": [TaskRun(run_id=1, task_id="x", attempt=1, status="done")]},  # type: ignore[arg-type]
            ValueError,
            "status of task 'x'.*'done'",
        ),
        (
            {
                "logs": [
                    LogRecord(
                        run_id=1,
                        task_id="x",
                        attempt=1,
                        time=datetime(2026, 1, 1),
                        level="INFO",
                        message="m",
                    )
                ]
            },
            ValueError,
            "no time zone",
        ),
    ],
    ids=["task-of-unknown-run", "log-of-unknown-run", "unknown-run", "result", "status", "naive"],
)
async def test_a_bad_commit_raises_and_writes_nothing(
    storage_with_a_run: tuple[SQLiteStorage, DagRun],
    bad: dict[str, list[Any]],
    error: type[Exception],
    match: str,
) -> None:
    storage, run = storage_with_a_run
    before = await stored_state(storage)
    rows = good_rows(run)
    for key, values in bad.items():
        rows[key] = rows[key] + values

    with pytest.raises(error, match=match):
        await storage.commit(Changes(**rows))

    assert await stored_state(storage) == before
    # The storage is still usable afterwards.
    await storage.commit(Changes(**good_rows(run)))
    assert [tr.task_id for tr in await storage.task_runs(run.id)] == ["a", "b"]


async def test_params_that_are_not_json_are_refused(db_path: Path) -> None:
    async with SQLiteStorage(path=str(db_path)) as storage:
        with pytest.raises(TypeError, match="params of a run of DAG 'etl'"):
            await storage.create_run(
                dag_id="etl",
                logical_time=T0,
                trigger=RunTrigger.manual,
                params={"when": T0},
                dag_version=1,
                created_at=T0,
            )
        assert (await storage.counts()).dag_runs == 0


async def test_a_cancelled_commit_is_all_or_nothing(db_path: Path) -> None:
    async with SQLiteStorage(path=str(db_path)) as storage:
        run = await new_run(storage)
        rows = [
            TaskRun(run_id=run.id, task_id=f"t{i}", attempt=1, status=TaskStatus.scheduled)
            for i in range(2000)
        ]
        with anyio.CancelScope() as scope:
            scope.cancel()
            await storage.commit(Changes(task_runs=rows))

        written = len(await storage.task_runs(run.id))
        assert written in (0, len(rows))
        await storage.commit(Changes(dag_runs=[attrs.evolve(run, status=DagRunStatus.running)]))
        stored = await storage.get_run(run.id)
        assert stored is not None
        assert stored.status == DagRunStatus.running
        in_transaction = await storage._call("check", lambda conn: conn.in_transaction)
        assert in_transaction is False
