"""Clocks: the real one here; the fake one for tests lives in :mod:`ppacer_async.testing`
(and is re-exported here)."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

from .abc import Clock
from .testing import FakeClock as FakeClock

__all__ = ["FakeClock", "SystemClock"]


class SystemClock(Clock):
    """Wall-clock time in UTC; sleeps with the event loop's timer."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime | None) -> None:
        if deadline is None:
            await anyio.sleep_forever()
            return
        while True:
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                return
            await anyio.sleep(remaining)
