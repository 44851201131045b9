"""The task-queue consumer: a fixed pool of worker coroutines that run task attempts.

Async tasks run inline on the event loop; a coroutine that finishes without ever
suspending costs no timer and no cancel scope (see ``_Resume``). Sync tasks run in
worker threads under a ``CapacityLimiter``. Every outcome goes to the ``Sink``: the
state machine's inbox, or on a shared storage the ``Reporter`` that stores it for the
process that schedules; nothing here touches storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import attrs

from .. import _storable
from .._enums import AttemptReason, TaskStatus
from .._exceptions import SkipTask, TaskTimeoutError, describe_exception
from .._structures import LogRecord, TaskRun, instance_id, make_task_run
from .._task import Task, TaskContext, make_context
from ..clock import SystemClock
from . import capture
from .logbuffer import LogBuffer
from .queue import ReadyQueue
from .threads import Job, ThreadRunner
from .upstream import Attempt, Instances, ReadyAttempt, RunView, Upstream

if TYPE_CHECKING:
    from ..abc import Clock, Notifier, Storage

#: What the queue holds: an attempt (its run, its task index and which attempt it is),
#: or the first attempts of a range of a mapped task's instances.
Item = tuple[RunView, int, Attempt | Instances]
#: One attempt: its run, its task index and which attempt it is.
One = tuple[RunView, int, Attempt]

#: The storage of the scheduler whose worker runs the current task.
CURRENT_STORAGE: contextvars.ContextVar[Storage | None] = contextvars.ContextVar(
    "ppacer_async_storage", default=None
)
#: The clock of that scheduler: what the stock TimeSensor takes "now" from.
CURRENT_CLOCK: contextvars.ContextVar[Clock | None] = contextvars.ContextVar(
    "ppacer_async_clock", default=None
)
logger = logging.getLogger("ppacer_async.scheduler")

_current = capture.current
_partial = capture.pending
_monotonic = time.monotonic

# Bound once: reading an enum member costs about 0.1 µs on Python 3.11, every attempt.
_SUCCESS = TaskStatus.success
_RUNNING = TaskStatus.running
_CANCELLED = TaskStatus.cancelled
_RESCHEDULE = TaskStatus.up_for_reschedule
_INITIAL = AttemptReason.initial
#: Outcomes whose error is a failure of the task itself, stored in its log.
_FAILED = frozenset({TaskStatus.failed, TaskStatus.up_for_retry})


class Sink(Protocol):
    """Where the consumer sends what attempts do (the state machine, or a reporter)."""

    logs: LogBuffer

    def wake(self) -> None: ...
    def post_started(self, state: Any, i: int, tr: TaskRun) -> None: ...
    def post_outcome(self, state: Any, i: int, tr: TaskRun) -> None: ...
    def post_instances(self, state: Any, i: int, first: int, trs: list[TaskRun]) -> None: ...
    def post_interrupted(self, state: Any, i: int, tr: TaskRun) -> None: ...


#: How many attempts a worker may run back to back without yielding to the loop.
_YIELD_EVERY = 32

#: Seconds an async task gets to stop once cancelled (its timeout, a stop, or its run
#: cancelled) before it is given up on and its worker takes other work.
CANCEL_GRACE = 2.0


class _Resume:
    """Await the rest of a coroutine that has already been stepped once.

    The first step of an async task runs directly (``coro.send(None)``); most short
    tasks finish there, with no cancel scope or timer. A task that suspends is driven
    from where it stopped by this awaitable, under a timeout: values and exceptions
    (cancellation included) are forwarded unchanged.

    A task that swallows cancellation is given up on (``_Abandoned`` is raised here
    instead of the cancellation reaching it again): when ``hard`` (a timeout armed
    ``CANCEL_GRACE`` after the task's own) expires, or when the scheduler stops and a
    cancellation arrives ``CANCEL_GRACE`` or more after the first one forwarded.
    """

    __slots__ = ("_coro", "_hard", "_stopping", "_yielded")

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        yielded: Any,
        hard: asyncio.Timeout,
        stopping: Callable[[], bool],
    ) -> None:
        self._coro = coro
        self._yielded = yielded
        self._hard = hard
        self._stopping = stopping

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        stop_at: float | None = None  # when a cancellation by a stop was first forwarded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # forwarded: the coroutine decides what to do
                if isinstance(exc, asyncio.CancelledError):
                    if self._hard.expired():
                        raise _Abandoned(coro) from None
                    if self._stopping():
                        now = anyio.current_time()
                        if stop_at is None:
                            stop_at = now
                        elif now - stop_at >= CANCEL_GRACE:
                            raise _Abandoned(coro) from None
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _Abandoned(Exception):
    """A task went on after being cancelled: its coroutine is no longer driven."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        super().__init__()
        self.coro = coro


class TaskLog(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: stores each record with the attempt, then passes it to ``logging``."""

    def __init__(self, ctx: TaskContext, consumer: Consumer) -> None:
        super().__init__(
            logging.getLogger(f"ppacer_async.task.{ctx.dag_id}.{ctx.task_id}"),
            {"dag_id": ctx.dag_id, "run_id": ctx.run_id, "task_id": ctx.task_id},
        )
        self._ctx = ctx
        self._consumer = consumer
        # An instance of a mapped task logs to its own attempt: process[3], not process.
        index = ctx.map_index
        self._task_id = ctx.task_id if index is None else instance_id(ctx.task_id, index)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= self._consumer.store_log_level:
            try:
                message = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                message = f"{msg} {args}"
            exc_info = kwargs.get("exc_info")
            if exc_info:
                if exc_info is True:
                    exc_info = sys.exc_info()
                error = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
                if error is not None:
                    message += "\n" + describe_exception(error)
            ctx = self._ctx
            self._consumer.add_log(
                LogRecord(
                    run_id=ctx.run_id,
                    task_id=self._task_id,
                    attempt=ctx.attempt,
                    time=self._consumer.clock.now(),
                    level=logging.getLevelName(level),
                    message=message,
                )
            )
        super().log(level, msg, *args, **kwargs)


class Consumer:
    """Runs ready task attempts from the queue with ``workers`` coroutines."""

    def __init__(
        self,
        *,
        sink: Sink,
        queue: ReadyQueue[Item],
        clock: Clock,
        workers: int,
        max_threads: int,
        notifier: Notifier,
        storage: Storage | None = None,
    ) -> None:
        self.sink = sink
        self.storage = storage
        self.queue = queue
        self.clock = clock
        # The system clock read without its method's frame: once per attempt.
        self._now = (
            functools.partial(datetime.now, UTC) if type(clock) is SystemClock else clock.now
        )
        self.workers = workers
        self.notifier = notifier
        self.max_threads = max_threads
        self._threads = ThreadRunner(max_threads)
        self.store_log_level = logging.INFO
        self.running = 0
        #: Called when an attempt ends (a worker is about to be free).
        self.on_attempt_end: Callable[[], None] | None = None
        self._loop_thread = threading.get_ident()
        #: What ``ctx.drain_log()`` awaits: the sink's buffer of log records.
        self._log_drain = sink.logs.wait_below
        self._teller: capture.Teller = (self.add_log, clock)
        #: how to stop each attempt executing past its first step, by run id
        self._live: dict[int, dict[str, Callable[[], None]]] = {}
        #: Set once the workers are being cancelled (the scheduler stops).
        self.stopping = False
        #: Coroutines of tasks given up on that refused to close; kept, never driven.
        self.abandoned: list[Coroutine[Any, Any, Any]] = []

    def cancel_run(self, run_id: int) -> None:
        """Stop the attempts of a cancelled run: async ones are cancelled, thread
        ones see ``ctx.cancelled`` (and are no longer waited for)."""
        for stop in list(self._live.pop(run_id, {}).values()):
            stop()

    def live_runs(self) -> list[int]:
        """The runs of the attempts executing past their first step."""
        return list(self._live)

    def _register(self, tr: Attempt, stop: Callable[[], None]) -> None:
        self._live.setdefault(tr.run_id, {})[tr.task_id] = stop

    def _unregister(self, tr: Attempt) -> None:
        live = self._live.get(tr.run_id)
        if live is not None:
            live.pop(tr.task_id, None)
            if not live:
                del self._live[tr.run_id]

    @property
    def running_threads(self) -> int:
        """Sync attempts running in threads (and waited for)."""
        return self._threads.active

    def queued_attempts(self) -> int:
        """The attempts waiting in the queue, a range of mapped instances counted as its
        instances (for statistics: it walks the queue)."""
        return sum(len(work) if work.__class__ is Instances else 1 for _, _, work in self.queue)

    @property
    def free(self) -> int:
        """Workers neither running an attempt nor about to take a queued one."""
        return self.workers - self.running - len(self.queue)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self._loop_thread = threading.get_ident()
        self._threads = ThreadRunner(self.max_threads)
        with capture.capturing(), self._threads.running():
            async with anyio.create_task_group() as tg:
                for _ in range(self.workers):
                    tg.start_soon(self._work)
                tg.start_soon(self._note_stop)
                task_status.started()

    async def _note_stop(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.stopping = True

    def _is_stopping(self) -> bool:
        return self.stopping

    async def _work(self) -> None:
        # Set once per worker, not per attempt: what the stock sensors read (the
        # storage for RunSensor, the clock for TimeSensor).
        CURRENT_STORAGE.set(self.storage)
        CURRENT_CLOCK.set(self.clock)
        queue = self.queue
        attempt = self._attempt
        streak = 0
        # When the last attempt ended: the next one, taken at once, starts then (one
        # clock read per attempt in a streak, not two).
        ended: datetime | None = None
        while True:
            item = queue.get_nowait()
            if item is None:
                streak = 0
                item = await queue.get()
                ended = None
            else:
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await anyio.lowlevel.checkpoint()
                    ended = None
            if item[2].__class__ is Instances:
                # A range is as much work as a streak: other workers take the next ones
                # in this turn of the loop, and their outcomes are committed together.
                queue.hand_off()
                await self._instances(item)
                streak = _YIELD_EVERY  # about as many attempts: yield before the next
                ended = None
            else:
                found = attempt(item, ended)  # type: ignore[arg-type]  # an attempt: checked
                if found is None or isinstance(found, datetime):
                    ended = found
                else:  # the rest of an attempt that suspends, or of a thread's
                    queue.hand_off()  # busy a while: other workers take the next items
                    ended = await found
            if self.stopping:  # an attempt given up on at a stop returned here
                await anyio.lowlevel.checkpoint()

    def add_log(self, record: LogRecord) -> None:
        """Queue a task log record for the next commit (safe from worker threads)."""
        sink = self.sink
        message = _storable.text(record.message)
        if message is not record.message:
            record = attrs.evolve(record, message=message)
        sink.logs.append(record)
        if threading.get_ident() == self._loop_thread:
            sink.wake()
        else:
            # RuntimeError: the loop is gone (an abandoned thread outliving its scheduler).
            with contextlib.suppress(RuntimeError):
                anyio.from_thread.run_sync(sink.wake)

    def _context(self, state: RunView, i: int, tr: Attempt, task: Task) -> TaskContext:
        run = state.run
        ctx = TaskContext(
            dag_id=run.dag_id,
            run_id=run.id,
            task_id=tr.task_id,
            attempt=tr.attempt,
            logical_time=run.logical_time,
            params=run.params,
            upstream=state.upstream_results(i),
            notifier=task.notifier or self.notifier,
            log_sink=self._make_log,
            log_drain=self._log_drain,
        )
        if state.mapped:
            graph = state.graph
            task_id = graph.ids[i]
            if graph.map_source[i] >= 0 and tr.task_id != task_id:  # an instance: process[3]
                ctx.task_id = task_id
                ctx.map_index = k = int(tr.task_id[len(task_id) + 1 : -1])
                items = state.results.get(graph.map_source[i])
                if isinstance(items, list) and k < len(items):
                    ctx.item = items[k]
        return ctx

    def _storable_result(
        self, task: Task, ctx: TaskContext, value: Any
    ) -> tuple[Any, str | None, TaskStatus]:
        """The result as it will be stored, or why it cannot be (the attempt fails);
        replaced characters are noted in a log record of the attempt."""
        try:
            value, replaced = _storable.result(value)
        except _storable.Unstorable as exc:
            return None, *_failure(task, exc)
        if replaced:
            ctx.log.warning("the result was stored with %s", _storable.note(replaced))
        return value, None, _SUCCESS

    def _make_log(self, ctx: TaskContext) -> logging.LoggerAdapter[logging.Logger]:
        return TaskLog(ctx, self)

    def _attempt(
        self, item: One, started: datetime | None = None
    ) -> datetime | Coroutine[Any, Any, datetime] | None:
        """Start one attempt. One that ends in its first step (most short async tasks:
        no timer, no cancel scope, no coroutine of its own) is run through here and its
        outcome posted: return when it ended (``None`` if it never started). Else return
        what to await for the rest (``_finish``, which returns when it ended).
        ``started``: now, as the clock read it last."""
        state, i, tr = item
        if state.cancelled:
            return None  # its run was cancelled while it waited: it never starts
        task = state.graph.tasks[i]
        if state.mapped:
            ctx = self._context(state, i, tr, task)
        else:  # _context, inlined: per attempt
            run = state.run
            ctx = make_context(
                run.dag_id,
                run.id,
                tr.task_id,
                tr.attempt,
                run.logical_time,
                run.params,
                Upstream(state, i),
                task.notifier or self.notifier,
                self._make_log,
                self._log_drain,
            )
        if started is None:
            started = self._now()
        begun = _monotonic()
        self.running += 1
        attempt = (tr, self._teller)
        token = _current.set(attempt)
        if not task.is_async:
            rest = self._run_thread(task, ctx, item, started, begun)
            return self._finish(item, task, ctx, token, started, rest)
        try:
            try:
                coro = task.execute(ctx)
                yielded = coro.send(None)
            except StopIteration as stop:
                if _monotonic() - begun > task.timeout_seconds:
                    value = None
                    error, status = _failure(task, _blocked(task, _monotonic() - begun))
                else:
                    value, error, status = stop.value, None, _SUCCESS
            except Exception as exc:
                value = None
                error, status = _failure(task, exc)
            except SystemExit as exc:  # sys.exit() in a task ends the attempt only
                value, error, status = None, describe_exception(exc), TaskStatus.failed
            else:  # it suspended: _run_async drives the rest, under its timeout
                rest = self._run_async(task, ctx, item, started, begun, coro, yielded)
                return self._finish(item, task, ctx, token, started, rest)
        except BaseException:
            self._interrupted(item, ctx, token, started)
            raise
        return self._end(item, task, ctx, token, started, value, error, status)

    async def _finish(
        self,
        item: One,
        task: Task,
        ctx: TaskContext,
        token: contextvars.Token[capture.Owner | None],
        started: datetime,
        rest: Coroutine[Any, Any, tuple[Any, str | None, TaskStatus]],
    ) -> datetime:
        """Await the rest of an attempt, then post its outcome; return when it ended."""
        try:
            value, error, status = await rest
        except BaseException:
            self._interrupted(item, ctx, token, started)
            raise
        return self._end(item, task, ctx, token, started, value, error, status)

    def _interrupted(
        self,
        item: One,
        ctx: TaskContext,
        token: contextvars.Token[capture.Owner | None],
        started: datetime,
    ) -> None:
        """The scheduler is stopping: the attempt is recorded interrupted and runs again
        on the next start."""
        state, i, tr = item
        self.running -= 1
        ctx.cancelled = True
        attempt = _current.get()
        _current.reset(token)
        if attempt is not None:
            capture.finish(attempt)
        self.sink.post_interrupted(state, i, _running(tr, started))
        if self.on_attempt_end is not None:
            self.on_attempt_end()

    def _end(
        self,
        item: One,
        task: Task,
        ctx: TaskContext,
        token: contextvars.Token[capture.Owner | None],
        started: datetime,
        value: Any,
        error: str | None,
        status: TaskStatus,
    ) -> datetime:
        """Free the attempt's worker, post the outcome of the attempt that ended; return
        when it ended."""
        self.running -= 1
        if self.on_attempt_end is not None:
            self.on_attempt_end()
        state, i, tr = item
        if error is None:
            if value is None:  # storable as it is
                if task.sensor is not None:  # its condition does not hold yet
                    status = _RESCHEDULE
            else:
                # A sensor whose condition does not hold yet is poked again later.
                reschedule = not value and task.sensor is not None
                value, error, status = self._storable_result(task, ctx, value)
                if reschedule and error is None:
                    status = _RESCHEDULE
        else:
            error = _storable.text(error)
        attempt = _current.get()
        _current.reset(token)
        if attempt is not None:
            if _partial:
                capture.finish(attempt)
            if error is not None and status in _FAILED:
                capture.record(attempt, "ERROR", f"attempt {tr.attempt} failed:\n{error}")
        finished = self._now()
        self.sink.post_outcome(
            state,
            i,
            make_task_run(
                tr.run_id,
                tr.task_id,
                tr.attempt,
                status,
                tr.reason,
                tr.scheduled_at,
                started,
                finished,
                error,
                value if status is _SUCCESS else None,
            ),
        )
        return finished

    async def _instances(self, item: Item) -> None:
        """Run the first attempts of a range of a mapped async task's instances (an
        ``Instances`` item) one after the other, and report their outcomes together.

        Each is an attempt of its own, as ``_attempt`` runs it: its context, its first
        step timed against the task's timeout, its result stored or its error and log.
        One that suspends hands the rest of the range back to the queue, for other
        workers, and goes on as any attempt that suspends (recorded running, cancelled
        with its run, timed out).
        """
        state, i, work = item
        assert isinstance(work, Instances)
        graph = state.graph
        task = graph.tasks[i]
        run = state.run
        run_id, dag_id, logical_time, params = run.id, run.dag_id, run.logical_time, run.params
        task_id = graph.ids[i]
        prefix = task_id + "["
        elements = state.results.get(graph.map_source[i])
        if not isinstance(elements, list):  # gone: its row could not be stored after all
            elements = []
        count = len(elements)
        notifier = task.notifier or self.notifier
        limit = task.timeout_seconds
        now = self._now
        teller = self._teller
        make_log, log_drain = self._make_log, self._log_drain
        upstream = Upstream(state, i)
        at, first, stop = work.at, work.start, work.stop
        outcomes: list[TaskRun] = []
        execute = task.execute
        k = first
        # Back to back: each starts as the one before ends.
        started = now()
        self.running += 1
        try:
            while k < stop:
                if state.cancelled:
                    break  # its run was cancelled while they waited: the rest never start
                tr = ReadyAttempt(run_id, f"{prefix}{k}]", 1, _INITIAL, at)
                ctx = make_context(
                    dag_id,
                    run_id,
                    task_id,
                    1,
                    logical_time,
                    params,
                    upstream,
                    notifier,
                    make_log,
                    log_drain,
                )
                ctx.map_index = k
                ctx.item = elements[k] if k < count else None
                begun = _monotonic()
                attempt = (tr, teller)
                token = _current.set(attempt)
                try:
                    coro = execute(ctx)
                    yielded = coro.send(None)
                except StopIteration as done:
                    value, error, status = done.value, None, _SUCCESS
                    if _monotonic() - begun > limit:
                        took = _monotonic() - begun
                        value, (error, status) = None, _failure(task, _blocked(task, took))
                except Exception as exc:
                    value, (error, status) = None, _failure(task, exc)
                except SystemExit as exc:  # ends the attempt, not the process
                    value, error, status = None, describe_exception(exc), TaskStatus.failed
                except BaseException:
                    _current.reset(token)
                    capture.finish(attempt)
                    self.sink.post_interrupted(state, i, _running(tr, started))
                    raise
                else:
                    # It suspends: the rest of the range is for other workers (it may
                    # take long), and what ran of it is reported now.
                    queue = self.queue
                    if k + 1 < stop:
                        queue.put_back(task.priority, (state, i, Instances(k + 1, stop, at)))
                        stop = k + 1
                    queue.hand_off()  # busy a while: other workers take the next items
                    if outcomes:
                        self.sink.post_instances(state, i, first, outcomes)
                        first, outcomes = k, []
                    try:
                        value, error, status = await self._run_async(
                            task, ctx, (state, i, tr), started, begun, coro, yielded
                        )
                    except BaseException:
                        # The scheduler is stopping: recorded interrupted, run again on
                        # the next start.
                        ctx.cancelled = True
                        _current.reset(token)
                        capture.finish(attempt)
                        self.sink.post_interrupted(state, i, _running(tr, started))
                        raise
                if error is not None:
                    error = _storable.text(error)
                elif not (value is None or value.__class__ is int or value.__class__ is bool):
                    value, error, status = self._storable_result(task, ctx, value)
                _current.reset(token)
                if _partial:
                    capture.finish(attempt)
                if error is not None and status in _FAILED:
                    capture.record(attempt, "ERROR", f"attempt 1 failed:\n{error}")
                finished = now()
                outcomes.append(
                    make_task_run(
                        run_id,
                        tr.task_id,
                        1,
                        status,
                        _INITIAL,
                        at,
                        started,
                        finished,
                        error,
                        value if status is _SUCCESS else None,
                    )
                )
                started = finished
                k += 1
        finally:
            if outcomes:
                self.sink.post_instances(state, i, first, outcomes)
            self.running -= 1
            if self.on_attempt_end is not None:
                self.on_attempt_end()

    async def _run_async(
        self,
        task: Task,
        ctx: TaskContext,
        item: One,
        started: datetime,
        begun: float,
        coro: Coroutine[Any, Any, Any],
        yielded: Any,
    ) -> tuple[Any, str | None, TaskStatus]:
        """Drive an async task that suspended in its first step, under its timeout."""
        try:
            state, i, tr = item
            self.sink.post_started(state, i, _running(tr, started))
            # asyncio's timeout, not an anyio cancel scope: in its first step the task
            # may have entered cancel scopes of its own (anyio.fail_after, a lock, a task
            # group), which must stay the innermost of this worker's scopes until the
            # task exits them; asyncio's timeout keeps no stack of scopes.
            deadline = _deadline(task, begun)
            timeout = asyncio.timeout_at(deadline)
            # Cancels once more after the grace period: a task that swallowed the first
            # cancellation is given up on then.
            hard = asyncio.timeout_at(deadline + CANCEL_GRACE)

            def halt() -> None:  # the run was cancelled
                ctx.cancelled = True
                now = asyncio.get_running_loop().time()
                timeout.reschedule(now)
                hard.reschedule(now + CANCEL_GRACE)

            self._register(tr, halt)
            try:
                async with hard, timeout:
                    value = await _Resume(coro, yielded, hard, self._is_stopping)
            except TimeoutError:
                if ctx.cancelled:
                    return None, "cancelled with its run", _CANCELLED
                if timeout.expired():
                    return None, *_failure(task, TaskTimeoutError(_timeout_message(task)))
                raise  # the task's own
            except _Abandoned as gone:
                self._abandon(gone.coro)
                if ctx.cancelled:
                    return None, _abandoned_message(task, "was cancelled with its run"), _CANCELLED
                why = _timed_out(task) if timeout.expired() else "was stopped"
                return None, *_failure(task, TaskTimeoutError(_abandoned_message(task, why)))
            finally:
                self._unregister(tr)
            if timeout.expired():  # it swallowed the cancellation, then returned
                if ctx.cancelled:
                    return None, "cancelled with its run", _CANCELLED
                message = _abandoned_message(task, _timed_out(task), returned=True)
                return None, *_failure(task, TaskTimeoutError(message))
            if anyio.current_time() > deadline:  # the loop was blocked past it
                return None, *_failure(task, _blocked(task, time.monotonic() - begun))
            return value, None, _SUCCESS
        except Exception as exc:
            return None, *_failure(task, exc)
        except SystemExit as exc:  # sys.exit() in a task ends the attempt, not the process
            return None, describe_exception(exc), TaskStatus.failed

    def _abandon(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Close a coroutine given up on; keep one that refuses (catching
        ``GeneratorExit``), so that it is not closed again when collected."""
        try:
            coro.close()
        except Exception:
            self.abandoned.append(coro)
            logger.warning("an abandoned task coroutine refused to close", exc_info=True)

    async def _run_thread(
        self, task: Task, ctx: TaskContext, item: One, started: datetime, begun: float
    ) -> tuple[Any, str | None, TaskStatus]:
        state, i, tr = item
        self.sink.post_started(state, i, _running(tr, started))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = Job(_call, (task, ctx), future)
        # The timeout: a timer, not a cancel scope (the thread cannot be cancelled; the
        # worker just stops waiting for it).
        timer = loop.call_at(_deadline(task, begun), _give_up, future, _TIMED_OUT)

        def halt() -> None:  # the run was cancelled
            ctx.cancelled = True
            _give_up(future, _HALTED)

        self._register(tr, halt)
        try:
            self._threads.submit(job)
            value = await future
        finally:
            timer.cancel()
            self._unregister(tr)
            self._threads.release(job)
        if value is _HALTED:
            return None, "cancelled with its run", _CANCELLED
        if value is _TIMED_OUT:
            if ctx.cancelled:
                return None, "cancelled with its run", _CANCELLED
            ctx.cancelled = True
            return None, *_failure(task, TaskTimeoutError(_timeout_message(task)))
        if isinstance(value, _Raised):
            return None, value.text, value.status
        return value, None, _SUCCESS


def _deadline(task: Task, begun: float) -> float:
    """The attempt's deadline on the event loop's clock, counted from ``begun``
    (``time.monotonic()`` when the attempt started)."""
    return anyio.current_time() + task.timeout_seconds - (time.monotonic() - begun)


def _running(tr: Attempt, started: datetime) -> TaskRun:
    return make_task_run(
        tr.run_id,
        tr.task_id,
        tr.attempt,
        _RUNNING,
        tr.reason,
        tr.scheduled_at,
        started,
        None,
        None,
        None,
    )


#: What a sync attempt's future is resolved with when it is given up on.
_TIMED_OUT = object()
_HALTED = object()


def _give_up(future: asyncio.Future[Any], why: object) -> None:
    if not future.done():
        future.set_result(why)


class _Raised:
    __slots__ = ("status", "text")

    def __init__(self, text: str, status: TaskStatus) -> None:
        self.text = text
        self.status = status


def _call(task: Task, ctx: TaskContext) -> Any:
    """Run a sync task in its thread, turning its exception into data there, where the
    traceback is complete."""
    try:
        return task.execute(ctx)
    except Exception as exc:
        return _Raised(*_failure(task, exc))
    except SystemExit as exc:  # sys.exit() in a task ends the attempt, not the process
        return _Raised(describe_exception(exc), TaskStatus.failed)


def _failure(task: Task, exc: Exception) -> tuple[str, TaskStatus]:
    """What an exception out of a task makes of its attempt: ``skipped`` for
    ``SkipTask``, ``up_for_retry`` when it may be retried (the state machine checks the
    budget), else ``failed``."""
    if isinstance(exc, SkipTask):
        return f"skipped: {exc}" if str(exc) else "skipped", TaskStatus.skipped
    status = TaskStatus.up_for_retry if task.retryable(exc) else TaskStatus.failed
    if isinstance(exc, TaskTimeoutError):
        return str(exc), status
    return capture.user_traceback(exc), status


def _timed_out(task: Task) -> str:
    return f"timed out after {task.timeout.total_seconds():g}s"


def _blocked(task: Task, took: float) -> TaskTimeoutError:
    return TaskTimeoutError(
        f"TaskTimeoutError: task {task.id!r} {_timed_out(task)} (it took {took:.1f}s): the "
        "event loop was blocked past its deadline, so it could not be cancelled. A "
        "blocking call in an async def (time.sleep, file or network I/O without await) "
        "blocks every task: make it a plain def, which runs in a thread, or call the "
        "blocking code with anyio.to_thread.run_sync"
    )


def _abandoned_message(task: Task, why: str, *, returned: bool = False) -> str:
    if returned:
        what = "went on and returned later; its result is not used"
    else:
        what = (
            f"did not stop within {CANCEL_GRACE:g}s: it is abandoned (no longer run) and "
            "its worker takes other work"
        )
    return (
        f"TaskTimeoutError: task {task.id!r} {why} and did not stop when cancelled: it "
        f"caught the cancellation (CancelledError) and {what}. Let CancelledError "
        "propagate (re-raise it after cleaning up)"
    )


def _timeout_message(task: Task) -> str:
    return (
        f"TaskTimeoutError: task {task.id!r} timed out after "
        f"{task.timeout.total_seconds():g}s (timeout={task.timeout!r}); raise the task's "
        "timeout or make it faster"
    )
