"""A thread that notices the event loop not turning, as asyncio's debug mode and
aiomonitor do.

A callback on the loop beats every quarter of ``threshold``. When the thread sees no
beat for longer than ``threshold``, it finds the task attempt that holds the loop (the
consumer's ``_attempt`` frame on the loop thread's stack) and logs a warning naming it,
where it is and for how long; once the loop turns again, the stall is recorded as a
log record on that attempt. On a shared storage the thread also renews this process's
leases over a connection of its own, so that a long blocking call is not taken for a
dead process and its attempts run again elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

from .._structures import LogRecord, TaskRun
from .upstream import Attempt, ReadyAttempt

if TYPE_CHECKING:
    from .consumer import Consumer

logger = logging.getLogger("ppacer_async.scheduler")


def _attempt_codes() -> tuple[object, ...]:
    """The code of the consumer's frames that hold an attempt's ``item`` while it runs
    on the loop: its first step (``_attempt``), the rest of one that suspended
    (``_finish``)."""
    from .consumer import Consumer

    return (Consumer._attempt.__code__, Consumer._finish.__code__)


class LoopWatchdog:
    """Watches the running event loop from a thread (a context manager; enter it on
    the loop).

    :param threshold: seconds without a turn of the loop before it is reported.
    :param consumer: whose attempts may hold the loop (``None``: this process runs
        no tasks).
    :param renew: renews this process's leases, blocking, from the thread; called
        every ``renew_every`` seconds while the loop is blocked.
    """

    def __init__(
        self,
        *,
        threshold: float,
        consumer: Consumer | None,
        renew: Callable[[], None] | None = None,
        renew_every: float = 10.0,
    ) -> None:
        self.threshold = threshold
        self.consumer = consumer
        self.renew = renew
        self.renew_every = renew_every
        #: Stalls seen (each reported once).
        self.stalls = 0
        self._beat_at = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The attempt blamed for the stall under way, with where it was.
        self._blamed: tuple[Attempt, str] | None = None
        self._attempt_codes = _attempt_codes()

    def __enter__(self) -> LoopWatchdog:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat_at = time.monotonic()
        self._handle = self._loop.call_later(self.threshold / 4, self._beat)
        self._thread = threading.Thread(
            target=self._watch, name="ppacer-async loop watchdog", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- on the loop -------------------------------------------------------------------

    def _beat(self) -> None:
        now = time.monotonic()
        gap = now - self._beat_at
        self._beat_at = now
        blamed, self._blamed = self._blamed, None
        if gap > self.threshold and blamed is not None and self.consumer is not None:
            tr, where = blamed
            self.consumer.add_log(
                LogRecord(
                    run_id=tr.run_id,
                    task_id=tr.task_id,
                    attempt=tr.attempt,
                    time=self.consumer.clock.now(),
                    level="WARNING",
                    message=(
                        f"this attempt blocked the event loop for {gap:.1f}s ({where}); "
                        "nothing else ran meanwhile. Make blocking code a plain def (it "
                        "runs in a thread) or call it with anyio.to_thread.run_sync"
                    ),
                )
            )
        assert self._loop is not None
        self._handle = self._loop.call_later(self.threshold / 4, self._beat)

    # -- in the thread -----------------------------------------------------------------

    def _watch(self) -> None:
        reported_at = 0.0  # the beat of the stall last reported
        renewed = 0.0
        while not self._stop.wait(self.threshold / 4):
            beat = self._beat_at
            gap = time.monotonic() - beat
            if gap <= self.threshold:
                continue
            if reported_at != beat:
                reported_at = beat
                renewed = time.monotonic()
                self.stalls += 1
                self._report(gap)
            if self.renew is not None and time.monotonic() - renewed >= self.renew_every:
                renewed = time.monotonic()
                try:
                    self.renew()
                except Exception as exc:
                    logger.warning("cannot renew leases while the loop is blocked: %s", exc)

    def _report(self, gap: float) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        found = self._find_attempt(frame)
        if found is None:
            logger.warning(
                "the event loop has been blocked for %.1fs, not by a task (%s)",
                gap,
                _where(frame),
            )
            return
        tr, where = found
        self._blamed = found
        logger.warning(
            "the event loop has been blocked for %.1fs by run %s task %s attempt %d (%s); "
            "nothing else runs meanwhile",
            gap,
            tr.run_id,
            tr.task_id,
            tr.attempt,
            where,
        )

    def _find_attempt(self, frame: FrameType | None) -> tuple[Attempt, str] | None:
        """The attempt whose consumer frame is on the stack, and where the innermost
        frame is."""
        top = frame
        while frame is not None:
            if frame.f_code in self._attempt_codes:
                item = frame.f_locals.get("item")
                if (
                    isinstance(item, tuple)
                    and len(item) == 3
                    and isinstance(item[2], ReadyAttempt | TaskRun)
                ):
                    return item[2], _where(top)
                return None
            frame = frame.f_back
        return None


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "where is unknown"
    code = frame.f_code
    return f"in {code.co_name} at {code.co_filename}:{frame.f_lineno}"
