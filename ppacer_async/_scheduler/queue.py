"""The bounded priority queue of ready task attempts between the state machine and
the workers.

Plain deques per priority and one ``anyio.Event`` per sleeping waiter: an item wakes
exactly one worker, and a full queue wakes the producer once it has drained to half.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class ReadyQueue(Generic[T]):
    """FIFO within a priority; higher priorities first; at most ``capacity`` items."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buckets: dict[int, deque[T]] = {}
        self._levels: list[int] = []  # heap of negated priorities that have a bucket
        self._size = 0
        self._getters: deque[anyio.Event] = deque()
        self._space: anyio.Event | None = None
        self._on_space: Callable[[], None] | None = None

    def __len__(self) -> int:
        return self._size

    def put_nowait(self, priority: int, item: T) -> bool:
        """Add an item unless the queue is full; return whether it was added."""
        if self._size >= self.capacity:
            return False
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = deque()
            heapq.heappush(self._levels, -priority)
        bucket.append(item)
        self._size += 1
        if self._getters:
            self._getters.popleft().set()
        return True

    def put_back(self, priority: int, item: T) -> None:
        """Add an item first in its priority, full or not: the rest of work taken from
        the queue, handed back for other workers."""
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = deque()
            heapq.heappush(self._levels, -priority)
        bucket.appendleft(item)
        self._size += 1
        if self._getters:
            self._getters.popleft().set()

    def on_space(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the queue has drained to half its capacity."""
        if self._size <= self.capacity // 2:
            callback()
        else:
            self._on_space = callback

    async def wait_for_space(self) -> None:
        """Wait until the queue has drained to half its capacity."""
        while self._size > self.capacity // 2:
            if self._space is None:
                self._space = anyio.Event()
            await self._space.wait()

    def get_nowait(self) -> T | None:
        if not self._size:
            return None
        levels = self._levels
        priority = -levels[0]
        bucket = self._buckets[priority]
        item = bucket.popleft()
        if not bucket:
            del self._buckets[priority]
            heapq.heappop(levels)
        self._size -= 1
        if self._size <= self.capacity // 2:
            if self._space is not None:
                self._space.set()
                self._space = None
            if self._on_space is not None:
                callback, self._on_space = self._on_space, None
                callback()
        return item

    async def get(self) -> T:
        """Take the next item, waiting (in FIFO order with other waiters) if empty."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            event = anyio.Event()
            self._getters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event in self._getters:
                    self._getters.remove(event)
                elif self._size and self._getters:
                    self._getters.popleft().set()  # pass the wake-up on
                raise
