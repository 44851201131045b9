"""Tasks: the ``task`` decorator, the ``Task`` base class and the ``TaskContext``."""

from __future__ import annotations

import copy
import hashlib
import inspect
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from ._enums import TriggerRule
from ._exceptions import DagDefinitionError, NonRetryableError

if TYPE_CHECKING:
    from ._dag import Flow
    from .abc import Notifier

DEFAULT_TIMEOUT = timedelta(minutes=10)
_DEFAULT_TIMEOUT_SECONDS = DEFAULT_TIMEOUT.total_seconds()
DEFAULT_RETRY_DELAY = timedelta(seconds=5)
#: The most instances a mapped task makes by default (``max_map_length``).
DEFAULT_MAX_MAP_LENGTH = 10_000

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise DagDefinitionError(f"{kind} id must be a non-empty string, got {value!r}")
    if not _ID_PATTERN.match(value):
        raise DagDefinitionError(
            f"{kind} id {value!r} may only contain letters, digits, '_', '.' and '-'"
        )
    return value


_ZERO = timedelta(0)


def _check_duration(name: str, value: object, *, allow_zero: bool) -> timedelta:
    if not isinstance(value, timedelta):
        raise DagDefinitionError(
            f"{name} must be a datetime.timedelta, got {type(value).__name__} {value!r}"
        )
    if value < _ZERO or (value == _ZERO and not allow_zero):
        bound = "zero or positive" if allow_zero else "positive"
        raise DagDefinitionError(f"{name} must be {bound}, got {value}")
    return value


class TaskContext:
    """What a running task knows about itself, passed as its only argument.

    :ivar upstream: results of the task's direct upstream tasks, by task id (a mapped
        task's results as a list, in index order).
    :ivar cancelled: set when a thread task's attempt timed out, its run was cancelled
        or the scheduler stops; a blocking task should poll it and return early (a
        thread cannot be killed).
    :ivar map_index: for an instance of a mapped task, its 0-based index; else ``None``.
    :ivar item: for an instance of a mapped task, its element of the mapped list.
    """

    __slots__ = (
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
    )

    def __init__(
        self,
        *,
        dag_id: str,
        run_id: int,
        task_id: str,
        attempt: int,
        logical_time: datetime,
        params: Mapping[str, Any],
        upstream: Mapping[str, Any],
        notifier: Notifier | None,
        log_sink: Callable[[TaskContext], logging.LoggerAdapter[logging.Logger]] | None = None,
        log_drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.attempt = attempt
        self.logical_time = logical_time
        self.params = params
        self.upstream = upstream
        self.notifier = notifier
        self.cancelled = False
        self.map_index: int | None = None
        self.item: Any = None
        self._log: logging.LoggerAdapter[logging.Logger] | None = None
        self._log_sink = log_sink
        self._log_drain = log_drain

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records are stored with this attempt and reach standard logging."""
        if self._log is None:
            if self._log_sink is None:
                self._log = logging.LoggerAdapter(
                    logging.getLogger(f"ppacer_async.task.{self.dag_id}.{self.task_id}")
                )
            else:
                self._log = self._log_sink(self)
        return self._log

    async def drain_log(self) -> None:
        """Wait while many log records wait to be stored, until storage has taken them.

        Returns at once unless storage is behind. An async task that logs in bulk (say,
        a line per record of a large file) calls it now and then, so that its records
        cannot pile up in memory faster than they are stored; ``ShellTask`` does.
        """
        if self._log_drain is not None:
            await self._log_drain()

    def __repr__(self) -> str:
        return (
            f"TaskContext(dag_id={self.dag_id!r}, run_id={self.run_id}, "
            f"task_id={self.task_id!r}, attempt={self.attempt})"
        )


def _check_exception_types(task_id: str, value: object) -> tuple[type[BaseException], ...]:
    found = (value,) if isinstance(value, type) else value
    if not isinstance(found, tuple | list) or not all(
        isinstance(t, type) and issubclass(t, Exception) for t in found
    ):
        raise DagDefinitionError(
            f"task {task_id!r}: retry_on must be an exception class or a tuple of them, "
            f"e.g. retry_on=(ConnectionError, TimeoutError); got {value!r}"
        )
    return tuple(found)


DEFAULT_POKE_INTERVAL = timedelta(seconds=60)
DEFAULT_SENSOR_TIMEOUT = timedelta(days=7)


class Poking:
    """How a sensor pokes: every ``interval`` (doubling after each poke with
    ``exponential_backoff``, up to ``max_wait``), for at most ``timeout`` after its
    first poke."""

    __slots__ = ("exponential_backoff", "interval", "max_wait", "timeout")

    def __init__(
        self,
        *,
        interval: timedelta,
        timeout: timedelta,
        exponential_backoff: bool = False,
        max_wait: timedelta | None = None,
    ) -> None:
        self.interval = _check_duration("sensor poke_interval", interval, allow_zero=False)
        self.timeout = _check_duration("sensor timeout", timeout, allow_zero=False)
        self.exponential_backoff = bool(exponential_backoff)
        self.max_wait = (
            None
            if max_wait is None
            else _check_duration("sensor max_wait", max_wait, allow_zero=False)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "poke_interval": self.interval.total_seconds(),
            "timeout": self.timeout.total_seconds(),
            "exponential_backoff": self.exponential_backoff,
            "max_wait": None if self.max_wait is None else self.max_wait.total_seconds(),
        }

    def next_poke(self, first: datetime, after: datetime) -> datetime:
        """The first poke time later than ``after``: pokes are due at ``first``, then
        after each wait of the sequence (fixed, or doubling up to ``max_wait``), so
        the schedule depends only on the first poke and survives a restart."""
        if after < first:
            return first
        step, t = self.interval, first
        if self.exponential_backoff:
            cap = self.max_wait or self.timeout
            while step < cap:
                t += step
                if t > after:
                    return t
                step *= 2
            step = cap
        n = (after - t) // step + 1
        return t + n * step


class Task:
    """A unit of work in a DAG. Subclass it and define ``execute(self, ctx)``,
    as a coroutine (runs on the event loop) or a plain function (runs in a worker thread).

    :param id: unique within a DAG; defaults to the class name.
    :param retries: how many times a failed attempt is retried.
    :param retry_delay: wait before the first retry.
    :param retry_backoff: multiplier applied to the delay after each failed attempt.
    :param max_retry_delay: cap on the delay (``None``: no cap).
    :param timeout: an attempt running longer fails; default 10 minutes.
    :param priority: higher runs first when tasks wait for a free worker.
    :param alert_on_retry: send an alert when an attempt fails and will be retried.
    :param alert_on_failure: send an alert when the task fails after its last attempt.
    :param notifier: replaces the scheduler's notifier for this task's alerts.
    :param trigger_rule: when the task runs given how its upstream tasks ended
        (a ``TriggerRule``; default ``all_success``).
    :param retry_jitter: spread each retry delay by up to this fraction either way
        (0 to 1), so that many tasks failing together do not retry together.
    :param retry_on: retry only these exception types (default: any exception);
        ``NonRetryableError`` is never retried.
    :param max_map_length: the most instances this task makes when mapped; a longer
        list fails it.
    :param branch: the task returns the id (or ids, or ``None``) of the direct
        downstream tasks to follow; the others are skipped (see ``task.branch``).
    :param pool: the name of a pool (``Scheduler(pools={"name": slots})``) whose slots
        an attempt holds while it is queued or running; ``None``: no pool.
    :param pool_slots: how many of the pool's slots an attempt holds.
    :param sensor: make the task a sensor (see ``task.sensor``): a ``Poking`` saying
        how often it pokes and for how long.
    """

    # Slots keep a task small (a DAG may hold a million of them); ``__dict__`` stays for
    # subclasses' own attributes and is only made when one is set.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "alert_on_failure",
        "alert_on_retry",
        "branch",
        "id",
        "is_async",
        "map_over",
        "max_map_length",
        "max_retry_delay",
        "notifier",
        "pool",
        "pool_slots",
        "priority",
        "retries",
        "retry_backoff",
        "retry_delay",
        "retry_jitter",
        "retry_on",
        "sensor",
        "timeout",
        "timeout_seconds",
        "trigger_rule",
    )

    #: for a mapped copy (``task.map("split")``): the upstream task whose list it maps
    map_over: str | None

    def __init__(
        self,
        id: str | None = None,
        *,
        retries: int = 0,
        retry_delay: timedelta = DEFAULT_RETRY_DELAY,
        retry_backoff: float = 1.0,
        max_retry_delay: timedelta | None = None,
        timeout: timedelta = DEFAULT_TIMEOUT,
        priority: int = 0,
        alert_on_retry: bool = False,
        alert_on_failure: bool = True,
        notifier: Notifier | None = None,
        trigger_rule: TriggerRule | str = TriggerRule.all_success,
        retry_jitter: float = 0.0,
        retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        max_map_length: int = DEFAULT_MAX_MAP_LENGTH,
        branch: bool = False,
        pool: str | None = None,
        pool_slots: int = 1,
        sensor: Poking | None = None,
    ) -> None:
        self.id = _check_id("task", type(self).__name__ if id is None else id)
        self.map_over = None
        if sensor is not None and not isinstance(sensor, Poking):
            raise DagDefinitionError(
                f"task {self.id!r}: sensor must be a Poking(...) or None, got {sensor!r}"
            )
        self.sensor = sensor
        if pool is not None and (not isinstance(pool, str) or not pool):
            raise DagDefinitionError(
                f"task {self.id!r}: pool must be a pool's name (a non-empty str) or None, "
                f"got {pool!r}"
            )
        self.pool = pool
        if not isinstance(pool_slots, int) or isinstance(pool_slots, bool) or pool_slots < 1:
            raise DagDefinitionError(
                f"task {self.id!r}: pool_slots must be a whole number >= 1, got {pool_slots!r}"
            )
        self.pool_slots = pool_slots
        try:
            self.trigger_rule = (
                trigger_rule if type(trigger_rule) is TriggerRule else TriggerRule(trigger_rule)
            )
        except ValueError:
            names = ", ".join(rule.value for rule in TriggerRule)
            raise DagDefinitionError(
                f"task {self.id!r}: unknown trigger_rule {trigger_rule!r}; use one of {names}"
            ) from None
        if (
            not isinstance(retry_jitter, int | float)
            or isinstance(retry_jitter, bool)
            or not 0 <= retry_jitter <= 1
        ):
            raise DagDefinitionError(
                f"task {self.id!r}: retry_jitter must be a fraction from 0 to 1, "
                f"got {retry_jitter!r}"
            )
        self.retry_jitter = float(retry_jitter)
        self.retry_on = () if retry_on == () else _check_exception_types(self.id, retry_on)
        if (
            not isinstance(max_map_length, int)
            or isinstance(max_map_length, bool)
            or max_map_length < 0
        ):
            raise DagDefinitionError(
                f"task {self.id!r}: max_map_length must be a whole number >= 0, "
                f"got {max_map_length!r}"
            )
        self.max_map_length = max_map_length
        self.branch = bool(branch)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise DagDefinitionError(
                f"task {self.id!r}: retries must be a whole number >= 0, got {retries!r}"
            )
        self.retries = retries
        self.retry_delay = _check_duration(
            f"task {self.id!r}: retry_delay", retry_delay, allow_zero=True
        )
        if not isinstance(retry_backoff, int | float) or retry_backoff < 1:
            raise DagDefinitionError(
                f"task {self.id!r}: retry_backoff must be a number >= 1, got {retry_backoff!r}"
            )
        self.retry_backoff = float(retry_backoff)
        self.max_retry_delay = (
            None
            if max_retry_delay is None
            else _check_duration(
                f"task {self.id!r}: max_retry_delay", max_retry_delay, allow_zero=True
            )
        )
        self.timeout = _check_duration(f"task {self.id!r}: timeout", timeout, allow_zero=False)
        self.timeout_seconds = (
            _DEFAULT_TIMEOUT_SECONDS if timeout == DEFAULT_TIMEOUT else timeout.total_seconds()
        )
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise DagDefinitionError(f"task {self.id!r}: priority must be an int, got {priority!r}")
        self.priority = priority
        self.alert_on_retry = bool(alert_on_retry)
        self.alert_on_failure = bool(alert_on_failure)
        self.notifier = notifier
        self.is_async = self._runs_async()

    def _runs_async(self) -> bool:
        """Whether ``execute`` is a coroutine function (else it runs in a thread)."""
        execute = getattr(self, "execute", None)
        if execute is None or not callable(execute):
            raise DagDefinitionError(
                f"task {self.id!r}: {type(self).__name__} must define execute(self, ctx)"
            )
        return inspect.iscoroutinefunction(execute)

    def execute(self, ctx: TaskContext) -> Any:
        """Do the work. Override as ``async def`` or ``def``; the return value is stored."""
        raise NotImplementedError

    def retry_delay_for(
        self, failures: int, draw: Callable[[], float] = random.random
    ) -> timedelta:
        """The wait after the ``failures``-th failed attempt (1-based), spread by
        ``retry_jitter`` (``draw`` gives a number in [0, 1))."""
        delay = self.retry_delay * (self.retry_backoff ** max(failures - 1, 0))
        if self.max_retry_delay is not None and delay > self.max_retry_delay:
            delay = self.max_retry_delay
        if self.retry_jitter:
            delay *= 1 + self.retry_jitter * (2 * draw() - 1)
        return delay

    def retryable(self, exc: BaseException) -> bool:
        """Whether a failure with ``exc`` may be retried (budget aside)."""
        if isinstance(exc, NonRetryableError):
            return False
        return not self.retry_on or isinstance(exc, self.retry_on)

    def map(self, source: str) -> Task:
        """This task made once per element of upstream task ``source``'s result (a
        list), decided at run time: ``split >> process.map("split") >> combine``.

        Returns a mapped copy to use in flows; each instance sees ``ctx.map_index``
        and ``ctx.item``, and downstream tasks see the list of results in index order.
        """
        _check_id("mapped-over task", source)
        if self.branch:
            raise DagDefinitionError(f"task {self.id!r}: a branch task cannot be mapped")
        if self.sensor is not None:
            raise DagDefinitionError(f"task {self.id!r}: a sensor cannot be mapped")
        cache: dict[str, Task] = self.__dict__.setdefault("_mapped", {})
        mapped = cache.get(source)
        if mapped is None:  # one copy per source: each use is the same task
            mapped = cache[source] = copy.copy(self)
            mapped.map_over = source
        return mapped

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this task's definition, for the DAG's content hash."""
        found: dict[str, Any] = {
            "kind": f"{type(self).__module__}.{type(self).__qualname__}",
            "code": _code_identity(self._code()),
            "retries": self.retries,
            "retry_delay": self.retry_delay.total_seconds(),
            "retry_backoff": self.retry_backoff,
            "max_retry_delay": None
            if self.max_retry_delay is None
            else self.max_retry_delay.total_seconds(),
            "timeout": self.timeout.total_seconds(),
            "priority": self.priority,
        }
        # Only what differs from the defaults: DAGs that use none of these keep their hash.
        if self.trigger_rule is not TriggerRule.all_success:
            found["trigger_rule"] = self.trigger_rule.value
        if self.retry_jitter:
            found["retry_jitter"] = self.retry_jitter
        if self.retry_on:
            found["retry_on"] = [f"{t.__module__}.{t.__qualname__}" for t in self.retry_on]
        if self.max_map_length != DEFAULT_MAX_MAP_LENGTH:
            found["max_map_length"] = self.max_map_length
        if self.branch:
            found["branch"] = True
        if self.sensor is not None:
            found["sensor"] = self.sensor.describe()
        if self.pool is not None:
            found["pool"] = self.pool
            found["pool_slots"] = self.pool_slots
        if self.map_over is not None:
            found["map_over"] = self.map_over
        return found

    def _code(self) -> Callable[..., Any]:
        """The function whose code defines what this task does."""
        return type(self).execute

    def __rshift__(self, other: Task | Flow | Iterable[Task | Flow]) -> Flow:
        from ._dag import Flow

        return Flow.of(self) >> other

    def __rrshift__(self, other: Task | Flow | Iterable[Task | Flow]) -> Flow:
        from ._dag import Flow

        return Flow.of(other) >> self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}>"

    def _other_id_example(self) -> str:
        """How to give a task like this one another id, for error messages."""
        return f"{type(self).__name__}(..., id='other_name')"


class _FunctionDoc:
    """``FunctionTask.__doc__``: the class's own docstring on the class, the function's
    on a task (read when asked, not stored in every task)."""

    def __init__(self, doc: str | None) -> None:
        self.doc = doc

    def __get__(self, obj: FunctionTask | None, owner: type | None = None) -> str | None:
        return self.doc if obj is None else obj.func.__doc__


class FunctionTask(Task):
    """A task made from a function by the ``task`` decorator."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[TaskContext], Any], **options: Any) -> None:
        if not callable(func):
            raise DagDefinitionError(f"@task needs a function, got {func!r}")
        self.func = func
        options.setdefault("id", getattr(func, "__name__", None))
        super().__init__(**options)
        _check_takes_context(func, self.id)

    def _runs_async(self) -> bool:
        return _checked_function(self.func)[0]

    def execute(self, ctx: TaskContext) -> Any:
        return self.func(ctx)

    def _other_id_example(self) -> str:
        kind = ".sensor" if self.sensor is not None else ".branch" if self.branch else ""
        return f"@task{kind}(id='other_name')"

    def fingerprint(self) -> dict[str, Any]:
        found = super().fingerprint()
        found["kind"] = f"{self.func.__module__}.{self.func.__qualname__}"
        return found

    def _code(self) -> Callable[..., Any]:
        return self.func


FunctionTask.__doc__ = _FunctionDoc(FunctionTask.__doc__)  # type: ignore[assignment]

#: The function last checked and what was found: tasks made in a loop share a function,
#: and inspecting it (its signature above all) costs more than the rest of a task.
_last_checked: tuple[Callable[..., Any] | None, bool, bool] = (None, False, False)


def _checked_function(func: Callable[..., Any]) -> tuple[bool, bool]:
    """``(is a coroutine function, can be called with one argument)`` for ``func``."""
    global _last_checked
    last, is_async, takes_context = _last_checked
    if last is not func:
        is_async = inspect.iscoroutinefunction(func)
        takes_context = _takes_one_argument(func)
        _last_checked = (func, is_async, takes_context)
    return is_async, takes_context


def _takes_one_argument(func: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: let it run
        return True
    try:
        signature.bind(None)
    except TypeError:
        return False
    return True


def _check_takes_context(func: Callable[..., Any], task_id: str) -> None:
    """Refuse, when the task is made, a function that cannot be called with the task's
    context (it would otherwise fail only when it runs)."""
    if _checked_function(func)[1]:
        return
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: let it run
        return
    try:
        signature.bind(None)
    except TypeError:
        name = getattr(func, "__name__", "<lambda>")
        name = task_id if name == "<lambda>" else name
        signature = signature.replace(return_annotation=inspect.Signature.empty)
        raise DagDefinitionError(
            f"task {task_id!r}: {name}{signature} must take the task context as its one "
            f"argument, e.g. def {name}(ctx: TaskContext) -> ...; read params, upstream "
            "results and the logger from it"
        ) from None


#: Code identities by code object: tasks made in a loop share one code object.
_code_identities: dict[object, str] = {}


def _code_identity(func: Callable[..., Any]) -> str:
    """A digest of a function's source (of its bytecode when the source is not
    available), so that an edited task makes a new DAG version."""
    code = getattr(func, "__code__", None)
    key = code if code is not None else func
    found = _code_identities.get(key)
    if found is None:
        try:
            text = inspect.getsource(func).encode()
        except (OSError, TypeError):
            text = b"" if code is None else code.co_code
        found = _code_identities[key] = hashlib.sha256(text).hexdigest()[:16]
    return found


class _TaskDecorator:
    """``task``: turn a function taking a ``TaskContext`` into a ``Task``.

    ``async def`` functions run on the event loop; plain ``def`` functions run in a
    worker thread. Use bare (``@task``) or with options (``@task(retries=2)``);
    ``@task.branch`` makes a branch task.
    """

    @overload
    def __call__(self, func: Callable[[TaskContext], Any], /, **options: Any) -> FunctionTask: ...

    @overload
    def __call__(
        self,
        /,
        *,
        id: str | None = None,
        retries: int = 0,
        retry_delay: timedelta = DEFAULT_RETRY_DELAY,
        retry_backoff: float = 1.0,
        max_retry_delay: timedelta | None = None,
        timeout: timedelta = DEFAULT_TIMEOUT,
        priority: int = 0,
        alert_on_retry: bool = False,
        alert_on_failure: bool = True,
        notifier: Notifier | None = None,
        trigger_rule: TriggerRule | str = TriggerRule.all_success,
        retry_jitter: float = 0.0,
        retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        max_map_length: int = DEFAULT_MAX_MAP_LENGTH,
        pool: str | None = None,
        pool_slots: int = 1,
    ) -> Callable[[Callable[[TaskContext], Any]], FunctionTask]: ...

    def __call__(
        self, func: Callable[[TaskContext], Any] | None = None, /, **options: Any
    ) -> FunctionTask | Callable[[Callable[[TaskContext], Any]], FunctionTask]:
        if func is not None:
            return FunctionTask(func, **options)

        def wrap(f: Callable[[TaskContext], Any]) -> FunctionTask:
            return FunctionTask(f, **options)

        return wrap

    @overload
    def branch(self, func: Callable[[TaskContext], Any], /, **options: Any) -> FunctionTask: ...

    @overload
    def branch(
        self, /, **options: Any
    ) -> Callable[[Callable[[TaskContext], Any]], FunctionTask]: ...

    def branch(
        self, func: Callable[[TaskContext], Any] | None = None, /, **options: Any
    ) -> FunctionTask | Callable[[Callable[[TaskContext], Any]], FunctionTask]:
        """A branch task: it returns the id of the direct downstream task to follow, a
        list of ids, or ``None`` (follow none); the other direct downstream tasks end
        ``skipped`` and trigger rules decide what follows them."""
        options["branch"] = True
        return self(func, **options) if func is not None else self(**options)

    @overload
    def sensor(self, func: Callable[[TaskContext], Any], /, **options: Any) -> FunctionTask: ...

    @overload
    def sensor(
        self,
        /,
        *,
        poke_interval: timedelta = ...,
        timeout: timedelta = ...,
        exponential_backoff: bool = ...,
        max_wait: timedelta | None = ...,
        **options: Any,
    ) -> Callable[[Callable[[TaskContext], Any]], FunctionTask]: ...

    def sensor(
        self,
        func: Callable[[TaskContext], Any] | None = None,
        /,
        *,
        poke_interval: timedelta = DEFAULT_POKE_INTERVAL,
        timeout: timedelta = DEFAULT_SENSOR_TIMEOUT,
        exponential_backoff: bool = False,
        max_wait: timedelta | None = None,
        **options: Any,
    ) -> FunctionTask | Callable[[Callable[[TaskContext], Any]], FunctionTask]:
        """A sensor: the function is poked until it returns a truthy value (the
        task's result). Between pokes it holds no worker and no pool slot: the wait is
        a timer of the scheduler, and stored, so a restart resumes it. Past
        ``timeout`` after its first poke it fails (no retry). ``exponential_backoff``
        doubles the wait after each poke (up to ``max_wait``); each poke has the
        task's own ``poke_timeout`` (default 10 minutes)."""
        poking = Poking(
            interval=poke_interval,
            timeout=timeout,
            exponential_backoff=exponential_backoff,
            max_wait=max_wait,
        )
        if "poke_timeout" in options:
            options["timeout"] = options.pop("poke_timeout")
        options["sensor"] = poking
        return self(func, **options) if func is not None else self(**options)

    def __repr__(self) -> str:
        return "<ppacer_async.task>"


task = _TaskDecorator()
