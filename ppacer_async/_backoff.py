"""Growing delays between attempts at something that may come back (a database)."""

from __future__ import annotations

import anyio

#: Delays double from the first to the last, in seconds.
FIRST, LAST = 0.1, 5.0


class Backoff:
    """Delays between attempts: doubling from ``FIRST`` up to ``LAST`` seconds, back to
    the first after a success (:meth:`reset`)."""

    def __init__(self) -> None:
        self.delay = FIRST

    async def sleep(self) -> None:
        await anyio.sleep(self.delay)
        self.delay = min(self.delay * 2, LAST)

    def reset(self) -> None:
        self.delay = FIRST
