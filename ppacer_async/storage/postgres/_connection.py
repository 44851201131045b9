"""The database a PostgreSQL storage talks to: its pool, connections of its own, and
connection errors turned into StorageError with the password left out."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import asyncpg  # type: ignore[import-untyped, unused-ignore]
import attrs

from ..._backoff import Backoff
from ..._exceptions import DagNotFound, StorageError
from .. import redact_url
from ._values import encode_json

#: How long closing waits for borrowed connections before dropping them.
CLOSE_TIMEOUT = 10.0

logger = logging.getLogger("ppacer_async.storage")

#: Errors after which a connection is worth trying again (the server restarted, the
#: network failed): loops that must survive them back off and retry.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    # A connection the server dropped in the middle of an operation can be left in a
    # state where the next one fails with this ("another operation is in progress"):
    # it is dropped and replaced like a broken one.
    asyncpg.InternalClientError,
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def milliseconds(delta: timedelta) -> int:
    return max(1, round(delta.total_seconds() * 1000))


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def close_quietly(conn: Any) -> None:
    """Close a connection that may already be broken."""
    with contextlib.suppress(Exception), anyio.move_on_after(CLOSE_TIMEOUT):
        await conn.close()
    if not conn.is_closed():
        conn.terminate()


async def _init_connection(conn: Any) -> None:
    """Decode json and jsonb to Python values and encode Python values into them."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=encode_json, decoder=json.loads, format="text"
        )


async def _keep_session(conn: Any) -> None:
    """Pool reset hook: skip the per-release reset query.

    asyncpg resets every connection it takes back (a round trip). Pooled connections
    change no session state (LISTEN and the leader's advisory lock use connections of
    their own), and asyncpg still rolls back any transaction left open, so the reset
    would only cost time.
    """


@attrs.define(eq=False, kw_only=True)
class Database:
    """One PostgreSQL database and schema: the pool, and connections of its own for
    the jobs that hold one (listening, leading, claiming)."""

    dsn: str = attrs.field(repr=lambda dsn: repr(redact_url(dsn)))
    schema: str
    min_pool_size: int
    max_pool_size: int
    statement_timeout: timedelta | None
    connect_timeout: timedelta
    application_name: str
    pool: Any = attrs.field(init=False, default=None, repr=False)

    def server_settings(self) -> dict[str, str]:
        settings = {
            "search_path": quote_ident(self.schema),
            "application_name": self.application_name,
            # The batch statements take arrays of 1 to thousands of rows. A generic plan
            # (made after 5 runs of a prepared statement) cannot know the size and may
            # pick a nested loop that costs seconds on a few thousand rows; planning
            # each run costs well under a millisecond per batch.
            "plan_cache_mode": "force_custom_plan",
        }
        if self.statement_timeout is not None:
            settings["statement_timeout"] = str(milliseconds(self.statement_timeout))
        return settings

    async def create_pool(self) -> Any:
        """A new pool (not yet kept: the caller keeps it once the schema is ready)."""
        # The URL's unknown query parameters reach the server as settings, which it
        # may refuse: say which parameter, in one line.
        settings = asyncpg.UndefinedObjectError, asyncpg.InvalidParameterValueError
        with self.errors("connect to", ValueError, *settings):
            return await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_pool_size,
                max_size=self.max_pool_size,
                timeout=self.connect_timeout.total_seconds(),
                server_settings=self.server_settings(),
                init=_init_connection,
                reset=_keep_session,
            )

    @staticmethod
    async def close_pool(pool: Any) -> None:
        with anyio.move_on_after(CLOSE_TIMEOUT) as scope:
            await pool.close()
        if scope.cancelled_caught:
            pool.terminate()

    @property
    def connections(self) -> Any:
        """The pool; raises when the storage is not open."""
        pool = self.pool
        if pool is None:
            raise StorageError(
                "PostgresStorage is not open; call await storage.open() first "
                "or use it as 'async with storage:'"
            )
        return pool

    async def connect(self, **settings: str) -> Any:
        """A connection of its own (not pooled), set up like the pooled ones, with
        ``settings`` on top."""
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout.total_seconds(),
            server_settings={**self.server_settings(), **settings},
        )
        try:
            await _init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def connect_retrying(
        self, backoff: Backoff, failing: str, on_failure: Callable[[], None] | None = None
    ) -> Any:
        """A connection of its own, retried with ``backoff`` while the server cannot
        be reached; each failure is logged as ``failing`` the redacted DSN."""
        while True:
            try:
                conn = await self.connect()
            except CONNECTION_ERRORS as exc:
                logger.warning(
                    failing + " %s (%s); retrying in %.1f s",
                    redact_url(self.dsn),
                    self.error_text(exc),
                    backoff.delay,
                )
                if on_failure is not None:
                    on_failure()
                await backoff.sleep()
            else:
                backoff.reset()
                return conn

    @contextlib.contextmanager
    def errors(self, action: str, *more: type[Exception]) -> Iterator[None]:
        """Turn connection-level failures (and ``more``) into StorageError, naming the
        redacted DSN."""
        try:
            yield
        except (StorageError, DagNotFound):
            raise
        except (
            *more,
            *CONNECTION_ERRORS,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidPasswordError,
            asyncpg.InvalidCatalogNameError,
            asyncpg.InsufficientPrivilegeError,
            asyncpg.QueryCanceledError,
            asyncpg.ClientConfigurationError,
        ) as exc:
            raise StorageError(
                f"cannot {action} PostgreSQL at {redact_url(self.dsn)}: "
                f"{self.error_text(exc)}; {_hint(exc)}"
            ) from None

    def error_text(self, exc: BaseException) -> str:
        """An error's type and message, without the password."""
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _scrub(self, text: str) -> str:
        """Remove the password from a driver message, in case it quotes the DSN."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return redact_url(text)

    def _secrets(self) -> list[str]:
        found: list[str] = []
        try:
            password = urlsplit(self.dsn).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
        for match in re.finditer(r"(?i)password=([^&\s]+)", self.dsn):
            found += [match[1], unquote(match[1])]
        return sorted(set(found), key=len, reverse=True)


def _hint(exc: BaseException) -> str:
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return "check the user and password in the URL (or PGPASSWORD, ~/.pgpass)"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "create the database first (createdb NAME) or fix its name in the URL"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return "grant the user CREATE on the database or schema, or use an existing schema"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "lower max_pool_size or raise the server's max_connections"
    if isinstance(exc, asyncpg.QueryCanceledError):
        return "a statement ran past statement_timeout; raise it or pass None"
    if isinstance(exc, asyncpg.UndefinedObjectError | asyncpg.InvalidParameterValueError):
        return (
            "a URL query parameter that is neither a storage option (schema, lease, "
            "max_pool_size, ...) nor a driver one (sslmode, ...) is sent to the server as "
            "a setting; remove it or fix its name"
        )
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        return "write the URL as postgresql://user:password@host:port/database"
    return "check that the server is running and reachable at that host and port"
