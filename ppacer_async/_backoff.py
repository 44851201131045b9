"""Growing delays between attempts at something that may come back (a database, a mail
server, a webhook): the one retry helper of every reconnect and redelivery loop."""

from __future__ import annotations

import anyio

#: Delays double from the first to the last, in seconds.
FIRST, LAST = 0.1, 5.0


class Backoff:
    """Delays between attempts: growing by ``factor`` from ``first`` up to ``last``
    seconds, back to ``first`` after a success (:meth:`reset`).

    The defaults (doubling from ``FIRST`` to ``LAST``) suit reconnect loops; notifiers
    pass their own ``retry_delay``, ``retry_backoff`` and ``max_retry_delay``.
    """

    def __init__(self, first: float = FIRST, last: float = LAST, factor: float = 2.0) -> None:
        self.first = first
        self.last = last
        self.factor = factor
        self.delay = min(first, last)

    def upcoming(self, at_least: float | None = None) -> float:
        """The wait :meth:`sleep` would make now: the current delay, raised to
        ``at_least`` (a server's ``Retry-After``) but never past ``last``."""
        if at_least is None or at_least <= self.delay:
            return self.delay
        return min(at_least, self.last)

    async def sleep(self, at_least: float | None = None) -> None:
        """Wait :meth:`upcoming` seconds, then grow the delay for the next time."""
        await anyio.sleep(self.upcoming(at_least))
        self.delay = min(self.delay * self.factor, self.last)

    def reset(self) -> None:
        self.delay = min(self.first, self.last)
