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
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import attrs

from .. import _storable
from .._enums import AttemptReason, TaskStatus
from .._exceptions import SkipTask, TaskTimeoutError, describe_exception
from .._structures import LogRecord, TaskRun, instance_id
from .._task import Task, TaskContext
from . import capture
from .logbuffer import LogBuffer
from .queue import ReadyQueue
from .upstream import Instances, RunView, Upstream

if TYPE_CHECKING:
    from ..abc import Clock, Notifier, Storage

#: What the queue holds: an attempt, or the first attempts of a range of instances.
Item = tuple[RunView, int, TaskRun | Instances]
#: One attempt: its run, its task's index and its row as scheduled.
Attempt = tuple[RunView, int, TaskRun]

#: The storage of the scheduler whose worker runs the current task.
CURRENT_STORAGE: contextvars.ContextVar[Storage | None] = contextvars.ContextVar(
    "ppacer_async_storage", default=None
)
#: The clock of that scheduler: what the stock TimeSensor takes "now" from.
CURRENT_CLOCK: contextvars.ContextVar[Clock | None] = contextvars.ContextVar(
    "ppacer_async_clock", default=None
)
logger = logging.getLogger("ppacer_async.scheduler")

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
        self.workers = workers
        self.notifier = notifier
        self.threads = anyio.CapacityLimiter(max_threads)
        self._thread_pool = anyio.CapacityLimiter(max_threads)
        self.store_log_level = logging.INFO
        self.running = 0
        self.running_threads = 0
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

    def _register(self, tr: TaskRun, stop: Callable[[], None]) -> None:
        self._live.setdefault(tr.run_id, {})[tr.task_id] = stop

    def _unregister(self, tr: TaskRun) -> None:
        live = self._live.get(tr.run_id)
        if live is not None:
            live.pop(tr.task_id, None)
            if not live:
                del self._live[tr.run_id]

    @property
    def free(self) -> int:
        """Workers neither running an attempt nor about to take a queued one."""
        return self.workers - self.running - len(self.queue)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self._loop_thread = threading.get_ident()
        with capture.capturing():
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
        streak = 0
        while True:
            item = queue.get_nowait()
            if item is None:
                streak = 0
                item = await queue.get()
            else:
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await anyio.lowlevel.checkpoint()
            if item[2].__class__ is Instances:
                await self._instances(item)
                streak = _YIELD_EVERY  # about as many attempts: yield before the next
            else:
                await self._attempt(item)  # type: ignore[arg-type]  # a TaskRun: checked
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

    def _context(self, state: RunView, i: int, tr: TaskRun, task: Task) -> TaskContext:
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

    async def _attempt(self, item: Attempt) -> None:
        state, i, tr = item
        if state.cancelled:
            return  # its run was cancelled while it waited: it never starts
        task = state.graph.tasks[i]
        ctx = self._context(state, i, tr, task)
        started = self.clock.now()
        begun = time.monotonic()
        self.running += 1
        status = _SUCCESS
        attempt = (tr, self._teller)
        token = capture.current.set(attempt)
        try:
            if task.is_async:
                value, error, status = await self._run_async(task, ctx, item, started, begun)
            else:
                value, error, status = await self._run_thread(task, ctx, item, started, begun)
        except BaseException:
            # The scheduler is stopping: the attempt is recorded interrupted and runs
            # again on the next start.
            ctx.cancelled = True
            capture.current.reset(token)
            capture.finish(attempt)
            self.sink.post_interrupted(state, i, _running(tr, started))
            raise
        finally:
            self.running -= 1
            if self.on_attempt_end is not None:
                self.on_attempt_end()
        if error is None:
            # A sensor whose condition does not hold yet is poked again later.
            reschedule = not value and task.sensor is not None and status is _SUCCESS
            value, error, status = self._storable_result(task, ctx, value)
            if reschedule and error is None:
                status = _RESCHEDULE
        else:
            error = _storable.text(error)
        capture.current.reset(token)
        capture.finish(attempt)
        if error is not None and status in _FAILED:
            capture.record(attempt, "ERROR", f"attempt {tr.attempt} failed:\n{error}")
        self.sink.post_outcome(
            state,
            i,
            TaskRun(
                run_id=tr.run_id,
                task_id=tr.task_id,
                attempt=tr.attempt,
                status=status,
                reason=tr.reason,
                scheduled_at=tr.scheduled_at,
                started_at=started,
                finished_at=self.clock.now(),
                error=error,
                result=value if status is _SUCCESS else None,
            ),
        )

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
        now = self.clock.now
        teller = self._teller
        make_log, log_drain = self._make_log, self._log_drain
        upstream = Upstream(state, i)
        at, first, stop = work.at, work.start, work.stop
        outcomes: list[TaskRun] = []
        current = capture.current
        execute, monotonic = task.execute, time.monotonic
        k = first
        # Back to back: each starts as the one before ends.
        started = now()
        self.running += 1
        try:
            while k < stop:
                if state.cancelled:
                    break  # its run was cancelled while they waited: the rest never start
                instance = f"{prefix}{k}]"
                ctx = _instance_context(
                    dag_id,
                    run_id,
                    task_id,
                    logical_time,
                    params,
                    upstream,
                    notifier,
                    make_log,
                    log_drain,
                    k,
                    elements[k] if k < count else None,
                )
                begun = monotonic()
                attempt = (_InstanceAttempt(run_id, instance), teller)
                token = current.set(attempt)
                try:
                    coro = execute(ctx)
                    yielded = coro.send(None)
                except StopIteration as done:
                    value, error, status = done.value, None, _SUCCESS
                    if monotonic() - begun > limit:
                        took = monotonic() - begun
                        value, (error, status) = None, _failure(task, _blocked(task, took))
                except Exception as exc:
                    value, (error, status) = None, _failure(task, exc)
                except SystemExit as exc:  # ends the attempt, not the process
                    value, error, status = None, describe_exception(exc), TaskStatus.failed
                except BaseException:
                    current.reset(token)
                    capture.finish(attempt)
                    tr = _scheduled(run_id, instance, at)
                    self.sink.post_interrupted(state, i, _running(tr, started))
                    raise
                else:
                    # It suspends: the rest of the range is for other workers (it may
                    # take long), and what ran of it is reported now.
                    if k + 1 < stop:
                        self.queue.put_back(task.priority, (state, i, Instances(k + 1, stop, at)))
                        stop = k + 1
                    if outcomes:
                        self.sink.post_instances(state, i, first, outcomes)
                        first, outcomes = k, []
                    tr = _scheduled(run_id, instance, at)
                    try:
                        value, error, status = await self._resume_async(
                            task, ctx, (state, i, tr), started, begun, coro, yielded
                        )
                    except BaseException:
                        # The scheduler is stopping: recorded interrupted, run again on
                        # the next start.
                        ctx.cancelled = True
                        current.reset(token)
                        capture.finish(attempt)
                        self.sink.post_interrupted(state, i, _running(tr, started))
                        raise
                if error is not None:
                    error = _storable.text(error)
                elif not (value is None or value.__class__ is int or value.__class__ is bool):
                    value, error, status = self._storable_result(task, ctx, value)
                current.reset(token)
                capture.finish(attempt)
                if error is not None and status in _FAILED:
                    capture.record(attempt, "ERROR", f"attempt 1 failed:\n{error}")
                finished = now()
                outcomes.append(
                    _first_attempt_row(
                        run_id,
                        instance,
                        status,
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
        self, task: Task, ctx: TaskContext, item: Attempt, started: datetime, begun: float
    ) -> tuple[Any, str | None, TaskStatus]:
        try:
            coro = task.execute(ctx)
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                if time.monotonic() - begun > task.timeout_seconds:
                    return None, *_failure(task, _blocked(task, time.monotonic() - begun))
                return stop.value, None, _SUCCESS
        except Exception as exc:
            return None, *_failure(task, exc)
        except SystemExit as exc:  # sys.exit() in a task ends the attempt, not the process
            return None, describe_exception(exc), TaskStatus.failed
        return await self._resume_async(task, ctx, item, started, begun, coro, yielded)

    async def _resume_async(
        self,
        task: Task,
        ctx: TaskContext,
        item: Attempt,
        started: datetime,
        begun: float,
        coro: Coroutine[Any, Any, Any],
        yielded: Any,
    ) -> tuple[Any, str | None, TaskStatus]:
        """The rest of an async attempt whose first step suspended (``yielded``): it is
        recorded running, then driven under its timeout."""
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
        self, task: Task, ctx: TaskContext, item: Attempt, started: datetime, begun: float
    ) -> tuple[Any, str | None, TaskStatus]:
        state, i, tr = item
        self.sink.post_started(state, i, _running(tr, started))
        with anyio.CancelScope(deadline=_deadline(task, begun)) as scope:

            def halt() -> None:  # the run was cancelled
                ctx.cancelled = True
                scope.cancel()

            self._register(tr, halt)
            try:
                async with self.threads:
                    self.running_threads += 1
                    try:
                        value = await anyio.to_thread.run_sync(
                            _call,
                            task,
                            ctx,
                            abandon_on_cancel=True,
                            limiter=self._thread_pool,
                        )
                    finally:
                        self.running_threads -= 1
            finally:
                self._unregister(tr)
        if scope.cancelled_caught:
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


def _running(tr: TaskRun, started: datetime) -> TaskRun:
    return TaskRun(
        run_id=tr.run_id,
        task_id=tr.task_id,
        attempt=tr.attempt,
        status=_RUNNING,
        reason=tr.reason,
        scheduled_at=tr.scheduled_at,
        started_at=started,
    )


class _InstanceAttempt:
    """Which attempt printed output belongs to (``capture``): the first of an instance."""

    __slots__ = ("run_id", "task_id")

    attempt = 1

    def __init__(self, run_id: int, task_id: str) -> None:
        self.run_id = run_id
        self.task_id = task_id


def _make_first_attempt_row() -> Callable[..., TaskRun]:
    """How a worker makes the row of an instance's first attempt, the most part of what
    running a short instance costs: ``TaskRun``'s slots set directly, about twice as
    fast as attrs' ``__init__`` of a frozen class (which goes through
    ``object.__setattr__`` for each field). The same row as ``TaskRun(...)`` would be;
    should ``TaskRun`` ever have other fields, the constructor is used instead."""
    names = (
        "run_id",
        "task_id",
        "attempt",
        "status",
        "reason",
        "scheduled_at",
        "started_at",
        "finished_at",
        "error",
        "result",
    )
    fields = attrs.fields(TaskRun)
    if tuple(field.name for field in fields) != names or any(
        field.validator is not None or field.converter is not None for field in fields
    ):

        def by_constructor(
            run_id: int,
            task_id: str,
            status: TaskStatus,
            at: datetime,
            started: datetime,
            finished: datetime,
            error: str | None,
            result: Any,
        ) -> TaskRun:
            return TaskRun(
                run_id=run_id,
                task_id=task_id,
                attempt=1,
                status=status,
                reason=_INITIAL,
                scheduled_at=at,
                started_at=started,
                finished_at=finished,
                error=error,
                result=result,
            )

        return by_constructor
    slots = vars(TaskRun)
    new = object.__new__
    (
        set_run,
        set_task,
        set_attempt,
        set_status,
        set_reason,
        set_scheduled,
        set_started,
        set_finished,
        set_error,
        set_result,
    ) = (slots[name].__set__ for name in names)

    def by_slots(
        run_id: int,
        task_id: str,
        status: TaskStatus,
        at: datetime,
        started: datetime,
        finished: datetime,
        error: str | None,
        result: Any,
    ) -> TaskRun:
        row: TaskRun = new(TaskRun)
        set_run(row, run_id)
        set_task(row, task_id)
        set_attempt(row, 1)
        set_status(row, status)
        set_reason(row, _INITIAL)
        set_scheduled(row, at)
        set_started(row, started)
        set_finished(row, finished)
        set_error(row, error)
        set_result(row, result)
        return row

    return by_slots


#: ``_first_attempt_row(run_id, task_id, status, at, started, finished, error, result)``
_first_attempt_row = _make_first_attempt_row()


def _make_instance_context() -> Callable[..., TaskContext]:
    """How a worker makes the context of an instance's first attempt: its slots set in
    place, about twice as fast as ``TaskContext``'s keyword arguments. The same context
    as the constructor makes (the constructor itself is used should ``TaskContext``
    ever have other slots)."""
    known = {
        "_log",
        "_log_drain",
        "_log_sink",
        "attempt",
        "cancelled",
        "dag_id",
        "item",
        "logical_time",
        "map_index",
        "notifier",
        "params",
        "run_id",
        "task_id",
        "upstream",
    }
    new = object.__new__

    def in_place(
        dag_id: str,
        run_id: int,
        task_id: str,
        logical_time: datetime,
        params: Any,
        upstream: Any,
        notifier: Notifier | None,
        log_sink: Any,
        log_drain: Any,
        map_index: int,
        item: Any,
    ) -> TaskContext:
        ctx: TaskContext = new(TaskContext)
        ctx.dag_id = dag_id
        ctx.run_id = run_id
        ctx.task_id = task_id
        ctx.attempt = 1
        ctx.logical_time = logical_time
        ctx.params = params
        ctx.upstream = upstream
        ctx.notifier = notifier
        ctx.cancelled = False
        ctx.map_index = map_index
        ctx.item = item
        ctx._log = None
        ctx._log_sink = log_sink
        ctx._log_drain = log_drain
        return ctx

    def by_constructor(
        dag_id: str,
        run_id: int,
        task_id: str,
        logical_time: datetime,
        params: Any,
        upstream: Any,
        notifier: Notifier | None,
        log_sink: Any,
        log_drain: Any,
        map_index: int,
        item: Any,
    ) -> TaskContext:
        ctx = TaskContext(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            attempt=1,
            logical_time=logical_time,
            params=params,
            upstream=upstream,
            notifier=notifier,
            log_sink=log_sink,
            log_drain=log_drain,
        )
        ctx.map_index = map_index
        ctx.item = item
        return ctx

    return in_place if set(TaskContext.__slots__) == known else by_constructor


#: ``_instance_context(dag_id, run_id, task_id, logical_time, params, upstream,
#: notifier, log_sink, log_drain, map_index, item)``
_instance_context = _make_instance_context()


def _scheduled(run_id: int, task_id: str, at: datetime) -> TaskRun:
    """The row of an instance's first attempt, as made ready at ``at``."""
    return TaskRun(
        run_id=run_id,
        task_id=task_id,
        attempt=1,
        status=TaskStatus.scheduled,
        reason=_INITIAL,
        scheduled_at=at,
    )


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
