from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage

POSTGRES_DSN = os.environ.get(
    "PPACER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def postgres_unavailable_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when a server answers.

    Under CI (``CI`` set) a missing server is a failure, never a skip.
    """
    parts = urlsplit(POSTGRES_DSN)
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        reason = "asyncpg is not installed (pip install -e '.[test]')"
    else:
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
                return None
        except OSError as exc:
            reason = f"no PostgreSQL server at {parts.hostname}:{parts.port} ({exc})"
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests must run in CI: {reason}")
    return reason


@pytest.fixture
async def admin() -> AsyncIterator[Any]:
    """A plain asyncpg connection to the test server, for setting up and inspecting."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    import asyncpg  # type: ignore[import-untyped, unused-ignore]

    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def schema(admin: Any) -> AsyncIterator[str]:
    """A fresh, empty schema, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


StorageFactory = Callable[[], Storage]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageFactory]:
    """Make storages that all see the same state: one fresh database per test.

    Calling the factory twice gives two handles on the same data (like two processes),
    except for memory, where it returns the same object.
    """
    kind: str = request.param
    if kind == "memory":
        shared = MemoryStorage()
        yield lambda: shared
    elif kind == "sqlite":
        from ppacer_async.storage.sqlite import SQLiteStorage

        path = tmp_path / "ppacer.db"
        yield lambda: SQLiteStorage(path=str(path))
    else:
        reason = postgres_unavailable_reason()
        if reason is not None:
            pytest.skip(f"PostgreSQL tests skipped: {reason}")
        import asyncpg

        from ppacer_async.storage.postgres import PostgresStorage

        schema = f"test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(POSTGRES_DSN)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            yield lambda: PostgresStorage(dsn=POSTGRES_DSN, schema=schema)
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


@pytest.fixture
async def storage(storage_factory: StorageFactory) -> AsyncIterator[Storage]:
    """An opened storage of each kind, closed after the test."""
    store = storage_factory()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
