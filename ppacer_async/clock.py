"""Clocks: the real one here; the fake one for tests lives in :mod:`ppacer_async.testing`
(and is re-exported here)."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

from .abc import Clock
from .testing import FakeClock as FakeClock

__all__ = ["FakeClock", "SystemClock"]


#: How long before a deadline :meth:`SystemClock.sleep_until` stops sleeping on the event
#: loop's timer. That timer wakes up to a millisecond late (asyncio waits in whole
#: milliseconds, rounded up); the rest is waited for a loop turn at a time, so the
#: sleeper wakes within a loop turn of its deadline. Other tasks run meanwhile; it costs
#: at most this much CPU per deadline.
TIMER_SLACK = 0.0015


class SystemClock(Clock):
    """Wall-clock time in UTC; sleeps with the event loop's timer, and for the last
    moments before a deadline (``TIMER_SLACK``), a loop turn at a time."""

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
            await anyio.sleep(remaining - TIMER_SLACK if remaining > TIMER_SLACK else 0)
