"""The SQL files shipped with the storages: the schema each storage builds from its
migrations equals one written by hand from the documented tables (tests/sql/), every
storage reports the schema version of its migrations, and named queries load by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ppacer_async.storage import MemoryStorage
from ppacer_async.storage._queries import NamedQueries, parse_queries
from ppacer_async.storage.postgres import PostgresStorage
from ppacer_async.storage.sqlite import SCHEMA_VERSION, SQLiteStorage, list_migrations
from tests.conftest import POSTGRES_DSN

pytestmark = pytest.mark.anyio

DOCUMENTED = Path(__file__).parent / "sql"


async def test_memory_storage_reports_the_schema_version_of_the_sqlite_migrations() -> None:
    async with MemoryStorage() as storage:
        counts = await storage.counts()

    assert counts.schema_version == SCHEMA_VERSION == list_migrations()[-1].version


# -- PostgreSQL --------------------------------------------------------------------------

PG_COLUMNS = """
SELECT table_name, ordinal_position, column_name, data_type, udt_name, is_nullable,
    column_default, collation_name
FROM information_schema.columns WHERE table_schema = $1
ORDER BY table_name, ordinal_position
"""

PG_CONSTRAINTS = """
SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid)
FROM pg_constraint AS c JOIN pg_class AS t ON t.oid = c.conrelid
WHERE c.connamespace = $1::regnamespace
ORDER BY t.relname, c.conname
"""

PG_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1
ORDER BY tablename, indexname
"""

# Each sequence with its type and the column that owns it.
PG_SEQUENCES = """
SELECT s.relname, q.data_type, t.relname, a.attname
FROM pg_class AS s
JOIN information_schema.sequences AS q
    ON q.sequence_schema = $1 AND q.sequence_name = s.relname
LEFT JOIN pg_depend AS d
    ON d.objid = s.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
LEFT JOIN pg_class AS t ON t.oid = d.refobjid
LEFT JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
WHERE s.relkind = 'S' AND s.relnamespace = $1::regnamespace
ORDER BY s.relname
"""


async def describe_postgres(admin: Any, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns (type, nullability, default, collation), constraints, indexes and
    sequences of ``schema``, with its name taken out of the definitions."""
    described = {}
    for part, query in [
        ("columns", PG_COLUMNS),
        ("constraints", PG_CONSTRAINTS),
        ("indexes", PG_INDEXES),
        ("sequences", PG_SEQUENCES),
    ]:
        rows = await admin.fetch(query, schema)
        described[part] = [
            tuple(v.replace(schema, "SCHEMA") if isinstance(v, str) else v for v in row.values())
            for row in rows
        ]
    return described


@pytest.fixture
async def documented_schema(admin: Any, schema: str) -> Any:
    """A second fresh schema holding tests/sql/postgres_schema.sql."""
    name = f"{schema}_doc"
    await admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        async with admin.transaction():
            await admin.execute(f'SET LOCAL search_path TO "{name}"')
            await admin.execute((DOCUMENTED / "postgres_schema.sql").read_text("utf-8"))
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


async def test_postgres_migrations_build_the_documented_schema(
    admin: Any, schema: str, documented_schema: str
) -> None:
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema) as storage:
        assert (await storage.counts()).schema_version >= 1

    migrated = await describe_postgres(admin, schema)
    documented = await describe_postgres(admin, documented_schema)

    assert migrated["columns"], "the migrations created no tables"
    for part in migrated:
        assert migrated[part] == documented[part], part


# -- SQLite ------------------------------------------------------------------------------


def describe_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Columns, indexes (with their columns and, for partial ones, the condition) and
    foreign keys of every table in the database at ``path``."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        described: dict[str, list[tuple[Any, ...]]] = {"tables": [(t,) for t in tables]}
        for table in tables:
            described[f"{table} columns"] = conn.execute(f"PRAGMA table_info({table})").fetchall()
            described[f"{table} foreign keys"] = conn.execute(
                f"PRAGMA foreign_key_list({table})"
            ).fetchall()
            indexes = sorted(conn.execute(f"PRAGMA index_list({table})").fetchall())
            described[f"{table} indexes"] = indexes
            for index in indexes:
                name = index[1]
                described[f"{name} columns"] = conn.execute(
                    f"PRAGMA index_xinfo({name})"
                ).fetchall()
        described["partial index conditions"] = [
            (name, " ".join(sql.split(" WHERE ", 1)[1].split()))
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%' "
                "ORDER BY name"
            )
        ]
        described["autoincrement"] = conn.execute(
            "SELECT name FROM sqlite_master WHERE sql LIKE '%AUTOINCREMENT%' ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return described


async def test_sqlite_migrations_build_the_documented_schema(tmp_path: Path) -> None:
    migrated, documented = tmp_path / "migrated.db", tmp_path / "documented.db"
    async with SQLiteStorage(path=str(migrated)):
        pass
    conn = sqlite3.connect(documented)
    try:
        conn.executescript((DOCUMENTED / "sqlite_schema.sql").read_text("utf-8"))
    finally:
        conn.close()

    expected = describe_sqlite(documented)
    found = describe_sqlite(migrated)

    assert found["tables"], "the migrations created no tables"
    assert found.keys() == expected.keys()
    for part in found:
        assert found[part] == expected[part], part


# -- named queries -----------------------------------------------------------------------

QUERIES = """-- A header comment.

-- first --
-- What it does,
-- on two lines.
SELECT 1
-- not a name: a comment inside
FROM t;

-- second --
SELECT 2

-- -- a section comment
"""


def test_named_queries_are_read_by_name_without_the_comments_around_them() -> None:
    queries = parse_queries(QUERIES, "queries.sql")

    assert queries == {
        "first": "SELECT 1\n-- not a name: a comment inside\nFROM t;",
        "second": "SELECT 2",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-- a --\nSELECT 1\n-- a --\nSELECT 2\n", "names two queries 'a'"),
        ("-- a --\n-- only a description\n", "query 'a' of queries.sql has no statement"),
    ],
)
def test_a_query_file_with_a_repeated_or_empty_name_is_refused(text: str, expected: str) -> None:
    with pytest.raises(RuntimeError, match=expected):
        parse_queries(text, "queries.sql")


def test_a_query_nothing_takes_is_reported() -> None:
    queries = NamedQueries("queries.sql", parse_queries(QUERIES, "queries.sql"))
    assert queries.take("first").startswith("SELECT 1")

    with pytest.raises(KeyError, match="no query named 'third'"):
        queries.take("third")
    with pytest.raises(RuntimeError, match=r"nothing runs: \['second'\]"):
        queries.check_all_taken()
