"""Task log records waiting for the next commit, with backpressure for tasks that log
in bulk."""

from __future__ import annotations

from collections import deque

import anyio

from .._structures import LogRecord

#: A task that calls ``ctx.drain_log()`` waits while this many records are waiting.
LOG_HIGH_WATER = 1000


class LogBuffer(deque[LogRecord]):
    """A deque of log records that the sink empties with ``clear()`` when it takes
    them for a commit; ``wait_below`` waits for that while the deque is full, so a
    task printing lines faster than storage takes them cannot outgrow memory."""

    def __init__(self) -> None:
        super().__init__()
        self._taken: anyio.Event | None = None

    def clear(self) -> None:
        super().clear()
        if self._taken is not None:
            self._taken.set()
            self._taken = None

    async def wait_below(self, limit: int = LOG_HIGH_WATER) -> None:
        """Return once fewer than ``limit`` records wait (at once if they already do)."""
        while len(self) >= limit:
            if self._taken is None:
                self._taken = anyio.Event()
            await self._taken.wait()
