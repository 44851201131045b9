"""Who schedules: one process at a time holds a session advisory lock per schema."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import attrs

from ..._backoff import Backoff
from ...abc import Leadership
from ._connection import CONNECTION_ERRORS, Database, close_quietly, lock_key, logger
from ._queries import TRY_LEADER_LOCK


class PostgresLeadership(Leadership):
    """The leader's own connection, holding the session advisory lock."""

    def __init__(self, conn: Any, interval: float) -> None:
        super().__init__()
        self.conn = conn
        self.lock = anyio.Lock()
        self._interval = interval
        conn.add_termination_listener(self._on_closed)

    def _on_closed(self, conn: Any) -> None:
        self.lost.set()

    async def hold(self) -> None:
        """Check the connection (and so the lock) every poll interval; return when it
        is gone."""
        while not self.lost.is_set():
            with anyio.move_on_after(self._interval):
                await self.lost.wait()
            if self.lost.is_set():
                break
            try:
                async with self.lock:
                    await self.conn.fetchval("SELECT 1")
            except CONNECTION_ERRORS:
                self.lost.set()


@attrs.define(eq=False, kw_only=True)
class Election:
    """Waits for the leader lock and holds it; at most one leadership per storage."""

    db: Database
    #: How often a process on standby tries the lock again.
    poll_interval: float
    #: The leadership this process holds, if any: transitions are written on its
    #: connection.
    current: PostgresLeadership | None = attrs.field(init=False, default=None)

    @contextlib.asynccontextmanager
    async def leadership(
        self, on_standby: Callable[[], None] | None = None
    ) -> AsyncIterator[Leadership]:
        if self.current is not None:
            raise RuntimeError("this storage already holds the leadership")
        conn = await self._lock_leader(on_standby or _nothing)
        leader = PostgresLeadership(conn, self.poll_interval)
        self.current = leader
        try:
            yield leader
        finally:
            self.current = None
            leader.lost.set()
            with anyio.CancelScope(shield=True):
                await close_quietly(conn)  # ends the session: the lock is released

    async def _lock_leader(self, on_standby: Callable[[], None]) -> Any:
        """Connect and wait for the leader lock, retrying with backoff on errors."""
        key = lock_key(f"ppacer_async.leader:{self.db.schema}")
        backoff = Backoff()
        while True:
            conn = await self.db.connect_retrying(
                backoff, "cannot connect to schedule at", on_failure=on_standby
            )
            try:
                while True:
                    if await conn.fetchval(TRY_LEADER_LOCK, key):
                        return conn
                    on_standby()
                    await anyio.sleep(self.poll_interval)
            except CONNECTION_ERRORS as exc:
                logger.warning(
                    "lost the connection while waiting to schedule (%s); reconnecting",
                    self.db.error_text(exc),
                )
                await close_quietly(conn)
                await backoff.sleep()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await close_quietly(conn)
                raise


def _nothing() -> None:
    pass
