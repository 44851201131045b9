"""The plain-asyncio baselines: the same graphs as W1-W4 and W8 with no scheduler at all.

Each node is one task in an ``asyncio.TaskGroup`` with one ``asyncio.Event``: it awaits
its parents' events, runs a no-op and sets its own. Nothing is persisted. This is the
floor for running a graph of coroutines on one event loop; ppacer-async results are
reported as ratios to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ._common import settle

#: Per node, the indexes of its parents.
Parents = Sequence[Sequence[int]]


async def _noop() -> None:
    pass


def _noop_sync() -> None:
    pass


def fan_out_parents(leaves: int) -> list[list[int]]:
    """Node 0 is the root, 1..leaves the leaves, the last one the join."""
    return [[], *([0] for _ in range(leaves)), list(range(1, leaves + 1))]


async def run_graph(parents: Parents) -> float:
    """Run a graph once, one task and one event per node; return the seconds taken."""

    async def node(waits: list[asyncio.Event], done: asyncio.Event) -> None:
        for event in waits:
            await event.wait()
        await _noop()
        done.set()

    settle()
    start = time.perf_counter()
    events = [asyncio.Event() for _ in parents]
    async with asyncio.TaskGroup() as tg:
        for i, ups in enumerate(parents):
            tg.create_task(node([events[p] for p in ups], events[i]))
    return time.perf_counter() - start


async def run_chain(length: int) -> list[float]:
    """Run a chain once; return each delay from a parent's end to its child's start (s)."""
    starts = [0.0] * length
    ends = [0.0] * length

    async def node(i: int, wait: asyncio.Event | None, done: asyncio.Event) -> None:
        if wait is not None:
            await wait.wait()
        starts[i] = time.perf_counter()
        await _noop()
        ends[i] = time.perf_counter()
        done.set()

    settle()
    events = [asyncio.Event() for _ in range(length)]
    async with asyncio.TaskGroup() as tg:
        for i in range(length):
            tg.create_task(node(i, events[i - 1] if i else None, events[i]))
    return [starts[i] - ends[i - 1] for i in range(1, length)]


async def run_many_chains(runs: int, length: int) -> float:
    """Run ``runs`` copies of a chain of ``length`` nodes at once; return the seconds taken."""

    async def node(wait: asyncio.Event | None, done: asyncio.Event) -> None:
        if wait is not None:
            await wait.wait()
        await _noop()
        done.set()

    settle()
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(runs):
            events = [asyncio.Event() for _ in range(length)]
            for i in range(length):
                tg.create_task(node(events[i - 1] if i else None, events[i]))
    return time.perf_counter() - start


async def run_threads(count: int, max_threads: int) -> float:
    """Run ``count`` no-op functions in threads, at most ``max_threads`` at once."""
    limit = asyncio.Semaphore(max_threads)

    async def node() -> None:
        async with limit:
            await asyncio.to_thread(_noop_sync)

    settle()
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(count):
            tg.create_task(node())
    return time.perf_counter() - start


async def run_mapped(elements: int) -> float:
    """W8 by hand: one coroutine makes a list, one task per element processes it, and
    one coroutine gets the results in index order; return the seconds taken."""

    async def split() -> list[int]:
        return list(range(elements))

    async def process(item: int) -> int:
        await _noop()
        return item

    async def combine(results: list[int]) -> int:
        await _noop()
        return len(results)

    settle()
    start = time.perf_counter()
    items = await asyncio.create_task(split())
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(process(item)) for item in items]
    await asyncio.create_task(combine([t.result() for t in tasks]))
    return time.perf_counter() - start
