"""PostgreSQL storage on asyncpg: for several schedulers sharing one database.

``storage.py`` reads and writes runs; ``notices.py`` (LISTEN/NOTIFY),
``leadership.py`` (the advisory lock of the process that schedules) and ``claims.py``
(leases on attempts, reaping) each do one job of sharing the work; ``schema.py``
creates and upgrades the schema with the migrations.
"""

from __future__ import annotations

from .schema import Migration as Migration
from .schema import migrations as migrations
from .schema import schema_version as schema_version
from .storage import PostgresStorage as PostgresStorage

__all__ = ["Migration", "PostgresStorage", "migrations", "schema_version"]
