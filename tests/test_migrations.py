"""Every storage reports the schema version of its migrations."""

from __future__ import annotations

import pytest

from ppacer_async.storage import MemoryStorage
from ppacer_async.storage.sqlite import SCHEMA_VERSION, list_migrations

pytestmark = pytest.mark.anyio


async def test_memory_storage_reports_the_schema_version_of_the_sqlite_migrations() -> None:
    async with MemoryStorage() as storage:
        counts = await storage.counts()

    assert counts.schema_version == SCHEMA_VERSION == list_migrations()[-1].version
