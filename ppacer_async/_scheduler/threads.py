"""The threads that run sync tasks: at most ``limit`` attempts waited for at once.

Cheaper per attempt than ``anyio.to_thread.run_sync`` under a ``CapacityLimiter``:
no cancel scope, limiter or checkpoint per call. An attempt is a future on the loop;
its timeout is a timer that resolves the future, not a cancel scope. A thread that
finishes an attempt takes the next queued one without waking anyone, and the results
that threads post come back to the loop in batches: one ``call_soon_threadsafe`` (a
wake-up of the loop) per batch, not per attempt.

A thread that runs an attempt given up on (timed out, its run cancelled, the scheduler
stopping) goes on until the function returns (a thread cannot be killed); its slot is
freed at once, and a new thread is started when none is idle. Threads are AnyIO worker
threads as far as ``anyio.from_thread`` is concerned: a sync task may call back into the
loop with ``anyio.from_thread.run`` / ``run_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from queue import SimpleQueue
from typing import Any


class Job:
    """One call waited for by a worker: ``future`` gets what ``func(*args)`` returned."""

    __slots__ = ("args", "context", "func", "future", "running")

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
    ) -> None:
        self.func = func
        self.args = args
        self.future = future
        # The caller's context variables (the attempt whose output the thread's prints
        # and log records belong to; the storage of ``current_storage()``).
        self.context = contextvars.copy_context()
        #: handed to a thread (it holds a slot until released)
        self.running = False


class ThreadRunner:
    """Runs ``Job`` s in threads, ``limit`` at a time; the rest wait in FIFO order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: jobs holding a slot (handed to a thread, not released yet)
        self.active = 0
        self._waiting: deque[Job] = deque()
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._threads = 0
        #: jobs handed to a thread whose end the loop has not seen yet
        self._busy = 0
        self._done: deque[tuple[Job, Any, BaseException | None]] = deque()
        self._flushing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Serve jobs while inside (on the event loop); stop idle threads on leaving."""
        self._loop = asyncio.get_running_loop()
        # A queue of its own per session: threads of an earlier one still busy with
        # an attempt given up on read the stop of theirs.
        self._jobs = SimpleQueue()
        try:
            yield
        finally:
            for _ in range(self._threads):
                self._jobs.put(None)
            self._threads = 0

    def submit(self, job: Job) -> None:
        """Run ``job`` once a slot is free."""
        if self.active < self.limit:
            self._start(job)
        else:
            self._waiting.append(job)

    def release(self, job: Job) -> None:
        """The caller no longer waits for ``job`` (it ended, or was given up on): free
        its slot for the next waiting job; one not started yet never starts."""
        if job.running:
            job.running = False
            self.active -= 1
            waiting = self._waiting
            while waiting and self.active < self.limit:
                nxt = waiting.popleft()
                if not nxt.future.done():
                    self._start(nxt)
        elif not job.future.done():
            job.future.cancel()  # still waiting: skipped when its turn comes

    def _start(self, job: Job) -> None:
        job.running = True
        self.active += 1
        self._busy += 1
        if self._busy > self._threads:
            self._threads += 1
            threading.Thread(
                target=self._serve, args=(self._jobs,), name="ppacer-async task thread"
            ).start()
        self._jobs.put(job)

    # -- in the threads ----------------------------------------------------------------

    def _serve(self, jobs: SimpleQueue[Job | None]) -> None:
        loop = self._loop
        assert loop is not None
        with _anyio_worker(loop):
            done = self._done
            while True:
                job = jobs.get()
                if job is None:
                    return
                result: Any = None
                error: BaseException | None = None
                if not job.future.done():  # not given up on before it started
                    try:
                        result = job.context.run(job.func, *job.args)
                    except BaseException as exc:
                        error = exc
                done.append((job, result, error))
                if not self._flushing:
                    self._flushing = True
                    try:
                        loop.call_soon_threadsafe(self._flush)
                    except RuntimeError:  # the loop is closed: no one waits any more
                        return

    # -- back on the loop ------------------------------------------------------------

    def _flush(self) -> None:
        self._flushing = False  # before draining: a result posted from now on flushes again
        done = self._done
        while done:
            job, result, error = done.popleft()
            self._busy -= 1
            future = job.future
            if not future.done():
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)


@contextlib.contextmanager
def _anyio_worker(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Let ``anyio.from_thread`` find the loop from this thread, as from its own worker
    threads (its documented way to call back into the loop from a sync function)."""
    try:
        from anyio._backends._asyncio import AsyncIOBackend
        from anyio._core._eventloop import claim_worker_thread, threadlocals
    except ImportError:  # pragma: no cover - a future anyio without them
        yield
        return
    # ``from_thread.check_cancelled()`` finds no cancel scope: the attempt's timeout is
    # ``ctx.cancelled``, and the attempt is given up on, not cancelled, when it is up.
    threadlocals.current_cancel_scope = None
    with claim_worker_thread(AsyncIOBackend, loop):
        yield
