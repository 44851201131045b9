"""The PostgreSQL schema: numbered migrations, applied once per schema."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from ..._exceptions import SchemaVersionError, StorageError
from .. import _migrations, redact_url
from .._migrations import Migration as Migration
from ._connection import lock_key, quote_ident
from ._queries import (
    CURRENT_VERSION,
    MIGRATE_LOCK,
    RECORD_VERSION,
    SCHEMA_EXISTS,
    SCHEMA_RELATIONS,
)


def migrations() -> tuple[Migration, ...]:
    """The numbered ``sql/postgres/NNNN_name.sql`` files, in order.

    :raises RuntimeError: the numbering has a gap or a duplicate (a packaging mistake).
    """
    return _migrations.migrations("postgres")


def schema_version() -> int:
    """The schema version this program writes."""
    return _migrations.schema_version("postgres")


async def migrate(conn: Any, schema: str, dsn: str) -> None:
    """Create or upgrade ``schema``, one process at a time.

    Everything runs in one transaction under an advisory lock keyed on the schema, so
    processes starting together apply each migration once and a refused database is
    left exactly as it was.

    :param dsn: the database's URL, for messages (redacted in them).
    """
    quoted = quote_ident(schema)
    key = lock_key(f"ppacer_async.migrate:{schema}")
    known = migrations()
    async with conn.transaction():
        await conn.execute(MIGRATE_LOCK, key)
        if not await conn.fetchval(SCHEMA_EXISTS, schema):
            await conn.execute(f"CREATE SCHEMA {quoted}")
        relations: list[str] = [r[0] for r in await conn.fetch(SCHEMA_RELATIONS, schema)]
        if "schema_version" in relations:
            current = await _current_version(conn, schema, dsn)
        elif relations:
            shown = ", ".join(relations[:5]) + (", ..." if len(relations) > 5 else "")
            raise StorageError(
                f"schema {schema!r} of {redact_url(dsn)} holds tables that are "
                f"not ppacer-async's ({shown}) and no schema_version table; point "
                "PostgresStorage at an empty schema (schema='ppacer') or another database"
            )
        else:
            current = 0
        if current > len(known):
            raise SchemaVersionError(
                f"schema {schema!r} of {redact_url(dsn)} is at version {current}, "
                f"newer than this ppacer-async understands ({len(known)}); upgrade "
                "ppacer-async to the version that wrote it"
            )
        for migration in known[current:]:
            await conn.execute(migration.sql)
            await conn.execute(RECORD_VERSION.format(schema=quoted), migration.version)


async def _current_version(conn: Any, schema: str, dsn: str) -> int:
    query = CURRENT_VERSION.format(schema=quote_ident(schema))
    try:
        async with conn.transaction():  # a savepoint: a failure must not end the outer one
            version = await conn.fetchval(query)
    except asyncpg.PostgresError as exc:
        version = exc
    if not isinstance(version, int):
        raise StorageError(
            f"schema {schema!r} of {redact_url(dsn)} has a schema_version table "
            f"that ppacer-async did not write ({version!r}); point PostgresStorage at "
            "another schema or database"
        )
    return version
