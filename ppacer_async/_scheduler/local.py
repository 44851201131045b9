"""One process does everything: ready attempts go from the state machine to the
workers through a queue in memory, and their outcomes come back to its inbox."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime

import anyio
import anyio.abc
import attrs

from .._structures import DagRun, NewRun, Statistics
from .._text import plural
from .consumer import Consumer, Item
from .engine import SHUTDOWN_BOUND, Coordinator, Settings, keep_registered, statistics, unregister
from .queue import ReadyQueue
from .watchdog import LoopWatchdog

logger = logging.getLogger("ppacer_async.scheduler")


@attrs.define(eq=False, kw_only=True)
class LocalEngine:
    """The engine of a process that schedules alone (memory or SQLite storage)."""

    settings: Settings
    coordinator: Coordinator = attrs.field(init=False)
    consumer: Consumer = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        s = self.settings
        queue: ReadyQueue[Item] = ReadyQueue(s.queue_size)
        self.coordinator = Coordinator(settings=s, queue=queue)
        self.consumer = Consumer(
            sink=self.coordinator.machine,
            queue=queue,
            clock=s.clock,
            workers=s.max_concurrent_tasks,
            max_threads=s.max_threads,
            notifier=s.notifier,
            storage=s.storage,
        )
        self.coordinator.on_run_cancelled = self.consumer.cancel_run

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        s = self.settings
        threshold = s.loop_block_warning
        watchdog = (
            LoopWatchdog(threshold=threshold, consumer=self.consumer)
            if threshold is not None
            else contextlib.nullcontext()
        )
        try:
            with watchdog:
                async with anyio.create_task_group() as tg:
                    await s.storage.register_worker(s.worker_id, s.role, s.clock.now(), s.dags)
                    tg.start_soon(keep_registered, s)
                    await self.coordinator.start(tg, self.consumer)
                    logger.info(
                        "serving %s: %s", plural(len(s.dags), "DAG"), ", ".join(s.dags) or "-"
                    )
                    task_status.started()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_BOUND):
                await self.coordinator.flush()
                await unregister(s)

    def admit(self, runs: Iterable[DagRun]) -> None:
        self.coordinator.admit(runs)

    async def queue_run(self, new: NewRun) -> DagRun:
        return await self.coordinator.queue_run(new)

    def set_paused(self, dag_id: str, paused: bool, resume_after: datetime | None) -> None:
        self.coordinator.watcher.set_paused(dag_id, paused, resume_after)

    async def wait_for_run(self, run_id: int, seconds: float | None) -> DagRun:
        return await self.coordinator.wait_for_run(run_id, seconds)

    async def flush_logs(self) -> None:
        self.coordinator.machine.write_logs_soon()

    async def cancel_run(self, run_id: int, note: str) -> None:
        await self.coordinator.cancel(run_id, note)

    def statistics(self) -> Statistics:
        return statistics(self.coordinator, self.consumer)
