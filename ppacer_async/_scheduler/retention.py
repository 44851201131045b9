"""Retention: the process that schedules deletes runs older than ``retention``.

It prunes in small batches with a pause between them, so that the state machine's
commits (on SQLite, through the same connection) wait for one batch at most, then
sleeps until the next round.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio
import attrs

from .. import operations
from .._exceptions import StorageError
from ..abc import Clock, Storage

logger = logging.getLogger("ppacer_async.scheduler")

#: Seconds between two batches of one round.
BATCH_PAUSE = 0.02


@attrs.define(eq=False, kw_only=True)
class Retention:
    """Prunes finished runs older than ``keep`` every ``every``."""

    storage: Storage
    clock: Clock
    keep: timedelta
    #: Rounds finished (a round may prune nothing).
    rounds: int = 0
    _round_done: anyio.Event = attrs.field(init=False, factory=anyio.Event)

    async def wait_for_round(self) -> None:
        """Wait until the round under way (or the next one) has finished."""
        await self._round_done.wait()

    @property
    def every(self) -> timedelta:
        """A tenth of ``keep``, between one second and ten minutes."""
        return min(max(self.keep / 10, timedelta(seconds=1)), timedelta(minutes=10))

    async def run(self) -> None:
        while True:
            try:
                counts = await operations.prune(
                    self.storage,
                    older_than=self.keep,
                    now=self.clock.now(),
                    pause=BATCH_PAUSE,
                )
            except StorageError as exc:
                logger.warning("pruning old runs failed: %s; trying again later", exc)
            else:
                if counts.dag_runs or counts.schedule_events:
                    logger.info(
                        "pruned %d runs (%d task attempts, %d log records) that finished "
                        "before %s ago, and %d schedule events",
                        counts.dag_runs,
                        counts.task_runs,
                        counts.task_logs,
                        self.keep,
                        counts.schedule_events,
                    )
            self.rounds += 1
            self._round_done.set()
            self._round_done = anyio.Event()
            await self.clock.sleep_until(self.clock.now() + self.every)
