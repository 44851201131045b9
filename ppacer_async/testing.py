"""Helpers for testing code that uses ppacer-async, as the project's own tests do.

``FakeClock`` makes schedule arithmetic testable without sleeping: pass it as
``Scheduler(..., clock=FakeClock(start))`` and move time with ``advance``/``set``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio

from ._time import to_utc
from .abc import Clock

__all__ = ["FakeClock"]


class FakeClock(Clock):
    """A clock that moves only when told to (``advance``/``set``), waking sleepers.

    :param start: the initial time (tz-aware).
    """

    def __init__(self, start: datetime) -> None:
        self._now = to_utc(start)
        self._moved: anyio.Event | None = None

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (never backwards) and wake every sleeper that is due."""
        moment = to_utc(moment)
        if moment < self._now:
            raise ValueError(f"FakeClock cannot go back from {self._now} to {moment}")
        self._now = moment
        if self._moved is not None:
            self._moved.set()
            self._moved = None

    def advance(self, delta: timedelta) -> None:
        """Move forward by ``delta``."""
        self.set(self._now + delta)

    async def sleep_until(self, deadline: datetime | None) -> None:
        while deadline is None or self._now < deadline:
            if self._moved is None:
                self._moved = anyio.Event()
            await self._moved.wait()
