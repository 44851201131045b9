"""The numbered schema migrations of each SQL dialect, ``sql/<dialect>/NNNN_name.sql``,
and the schema version they make."""

from __future__ import annotations

import functools
import re
import sqlite3
from importlib import resources
from typing import Literal

import attrs

#: The dialects with a folder of migrations under ``sql/``.
Dialect = Literal["sqlite", "postgres"]

_NAMES: dict[Dialect, str] = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")


@attrs.frozen(kw_only=True)
class Migration:
    """One numbered schema step, from ``sql/<dialect>/NNNN_name.sql``."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The SQL statements of the file, in order, for a driver that runs one at a
        time (SQLite's grammar: a ``;`` inside a string or a trigger body does not split
        a statement)."""
        statements: list[str] = []
        buffer = ""
        pieces = self.sql.split(";")
        for index, piece in enumerate(pieces):
            buffer += piece
            if index < len(pieces) - 1:
                buffer += ";"
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        if buffer.strip():
            # Trailing comments: harmless; an unfinished statement fails loudly when run.
            statements.append(buffer.strip())
        return statements


def read_migrations(dialect: Dialect) -> tuple[Migration, ...]:
    """Read the migrations of ``dialect`` shipped with the package, oldest first.

    :raises RuntimeError: the files are not numbered 0001, 0002, ... without gaps (a
        packaging mistake).
    """
    folder = resources.files("ppacer_async.storage").joinpath("sql", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is not None:
            found.append(
                Migration(version=int(match[1]), name=entry.name, sql=entry.read_text("utf-8"))
            )
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        names = ", ".join(m.name for m in found) or "none"
        raise RuntimeError(
            f"{_NAMES[dialect]} migrations must be numbered 0001, 0002, ... without gaps; "
            f"found {names}"
        )
    return tuple(found)


@functools.cache
def migrations(dialect: Dialect) -> tuple[Migration, ...]:
    """The migrations of ``dialect``, read once."""
    return read_migrations(dialect)


def schema_version(dialect: Dialect) -> int:
    """The schema version that ``dialect``'s migrations make: the one this program
    writes and the newest it understands."""
    known = migrations(dialect)
    return known[-1].version if known else 0
