"""The bounded priority queue of ready task attempts between the state machine and
the workers.

Plain deques per priority and one future per sleeping waiter. Waking a worker costs
about as much as running a no-op task, so items do not each wake one: a put wakes a
sleeping worker only when no woken one is on its way, and a worker that took an item
and will be busy a while (its task waits on I/O or a thread) hands the rest off, waking
up to two more while items remain that no woken worker will take. A burst of short
tasks is then run in streaks by one worker, whatever the pool's size, while a burst of
tasks that wait still reaches every worker, the number woken doubling each turn of the
loop. A full queue wakes the producer once it has drained to half.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")

#: How many sleeping workers a worker that will be busy wakes, when more items wait.
_FAN = 2


class ReadyQueue(Generic[T]):
    """FIFO within a priority; higher priorities first; at most ``capacity`` items.

    Workers take items with ``get_nowait`` while there are some, ``get`` when there are
    none, and call ``hand_off`` when they took one and will be busy a while. Then no
    item is left without a worker: a put that finds no woken worker on its way
    (``_woken``) wakes one, and a worker either comes back for the next item or hands
    the rest off before it waits.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buckets: dict[int, deque[T]] = {}
        self._levels: list[int] = []  # heap of negated priorities that have a bucket
        self._size = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        #: waiters woken (their future set) that have not returned from ``get`` yet
        self._woken = 0
        self._space: anyio.Event | None = None
        self._on_space: Callable[[], None] | None = None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        """The items waiting, in no particular order: for counting, not for taking."""
        for bucket in self._buckets.values():
            yield from bucket

    def put_nowait(self, priority: int, item: T) -> bool:
        """Add an item unless the queue is full; return whether it was added."""
        if self._size >= self.capacity:
            return False
        # A bucket is removed once empty: one found has items.
        (self._buckets.get(priority) or self._open(priority)).append(item)
        self._size += 1
        if not self._woken and self._getters:
            self._wake_one()
        return True

    def put_back(self, priority: int, item: T) -> None:
        """Add an item first in its priority, full or not: the rest of work taken from
        the queue, handed back for other workers. Like ``put_nowait``, it wakes a
        sleeping worker when no woken one is on its way."""
        (self._buckets.get(priority) or self._open(priority)).appendleft(item)
        self._size += 1
        if not self._woken and self._getters:
            self._wake_one()

    def _open(self, priority: int) -> deque[T]:
        """The new, empty bucket of ``priority``."""
        bucket = self._buckets[priority] = deque()
        heapq.heappush(self._levels, -priority)
        return bucket

    def _wake_one(self) -> None:
        getters = self._getters
        while getters:
            fut = getters.popleft()
            if not fut.done():  # a cancelled waiter's future is done and left here
                fut.set_result(None)
                self._woken += 1
                return

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
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except BaseException:
                if not fut.done() or fut.cancelled():
                    # Cancelled asleep: its future, done, is skipped when reached.
                    fut.cancel()
                else:  # cancelled once woken: hand the wake-up on
                    self._woken -= 1
                    if self._size and not self._woken:
                        self._wake_one()
                raise
            self._woken -= 1
            item = self.get_nowait()
            if item is None:
                continue  # taken by a worker that came back on its own: sleep again
            return item

    def hand_off(self) -> None:
        """The caller (a worker with an item) will be busy a while (its task waits on
        I/O or a thread): wake up to two sleeping workers for the items that no woken
        worker will take."""
        wake = min(_FAN, self._size - self._woken)
        while wake > 0 and self._getters:
            self._wake_one()
            wake -= 1
