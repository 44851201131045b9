"""Storage back ends: memory, SQLite (the default) and PostgreSQL (the ``postgres`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .._exceptions import StorageError
from .memory import MemoryStorage as MemoryStorage

if TYPE_CHECKING:
    from ..abc import Storage

__all__ = ["MemoryStorage", "from_url"]

DEFAULT_URL = "sqlite:///ppacer.db"


def from_url(url: str) -> Storage:
    """Build a storage from a URL.

    ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``postgresql://user:password@host:port/database``.

    :raises StorageError: the URL scheme is unknown or its driver is not installed.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryStorage()
    if scheme == "sqlite":
        from .sqlite import SQLiteStorage

        path = url[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise StorageError(
                f"SQLite URL {url!r} names no file; write sqlite:///ppacer.db "
                "(relative) or sqlite:////var/lib/ppacer.db (absolute)"
            )
        return SQLiteStorage(path=unquote(path))
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStorage
        except ImportError as exc:
            raise StorageError(
                "PostgreSQL storage needs asyncpg: pip install 'ppacer-async[postgres]'"
            ) from exc
        return PostgresStorage(dsn=url)
    raise StorageError(
        f"unknown storage URL scheme {scheme!r} in {_redact(url)!r}; "
        "use memory://, sqlite:///path.db or postgresql://user@host/db"
    )


def _redact(url: str) -> str:
    """Hide the password of a URL, for messages and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
