"""Tasks: the ``task`` decorator, the ``Task`` base class and the ``TaskContext``."""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from ._exceptions import DagDefinitionError

if TYPE_CHECKING:
    from ._dag import Flow
    from .abc import Notifier

DEFAULT_TIMEOUT = timedelta(minutes=10)
DEFAULT_RETRY_DELAY = timedelta(seconds=5)

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise DagDefinitionError(f"{kind} id must be a non-empty string, got {value!r}")
    if not _ID_PATTERN.match(value):
        raise DagDefinitionError(
            f"{kind} id {value!r} may only contain letters, digits, '_', '.' and '-'"
        )
    return value


def _check_duration(name: str, value: object, *, allow_zero: bool) -> timedelta:
    if not isinstance(value, timedelta):
        raise DagDefinitionError(
            f"{name} must be a datetime.timedelta, got {type(value).__name__} {value!r}"
        )
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        bound = "zero or positive" if allow_zero else "positive"
        raise DagDefinitionError(f"{name} must be {bound}, got {value}")
    return value


class TaskContext:
    """What a running task knows about itself, passed as its only argument.

    :ivar upstream: results of the task's direct upstream tasks, by task id.
    :ivar cancelled: set when a thread task's attempt timed out or the scheduler stops;
        a blocking task should poll it and return early (a thread cannot be killed).
    """

    __slots__ = (
        "_log",
        "_log_sink",
        "attempt",
        "cancelled",
        "dag_id",
        "logical_time",
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
        self._log: logging.LoggerAdapter[logging.Logger] | None = None
        self._log_sink = log_sink

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

    def __repr__(self) -> str:
        return (
            f"TaskContext(dag_id={self.dag_id!r}, run_id={self.run_id}, "
            f"task_id={self.task_id!r}, attempt={self.attempt})"
        )


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
    """

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
    ) -> None:
        self.id = _check_id("task", type(self).__name__ if id is None else id)
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
        self.timeout_seconds = self.timeout.total_seconds()
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise DagDefinitionError(f"task {self.id!r}: priority must be an int, got {priority!r}")
        self.priority = priority
        self.alert_on_retry = bool(alert_on_retry)
        self.alert_on_failure = bool(alert_on_failure)
        self.notifier = notifier
        execute = getattr(self, "execute", None)
        if execute is None or not callable(execute):
            raise DagDefinitionError(
                f"task {self.id!r}: {type(self).__name__} must define execute(self, ctx)"
            )
        self.is_async = inspect.iscoroutinefunction(execute)

    def execute(self, ctx: TaskContext) -> Any:
        """Do the work. Override as ``async def`` or ``def``; the return value is stored."""
        raise NotImplementedError

    def retry_delay_for(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th failed attempt (1-based)."""
        delay = self.retry_delay * (self.retry_backoff ** max(failures - 1, 0))
        if self.max_retry_delay is not None and delay > self.max_retry_delay:
            return self.max_retry_delay
        return delay

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this task's definition, for the DAG's content hash."""
        return {
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


class FunctionTask(Task):
    """A task made from a function by the ``task`` decorator."""

    def __init__(self, func: Callable[[TaskContext], Any], **options: Any) -> None:
        if not callable(func):
            raise DagDefinitionError(f"@task needs a function, got {func!r}")
        self.func = func
        options.setdefault("id", getattr(func, "__name__", None))
        super().__init__(**options)
        _check_takes_context(func, self.id)
        self.is_async = inspect.iscoroutinefunction(func)
        self.__doc__ = func.__doc__

    def execute(self, ctx: TaskContext) -> Any:
        return self.func(ctx)

    def fingerprint(self) -> dict[str, Any]:
        found = super().fingerprint()
        found["kind"] = f"{self.func.__module__}.{self.func.__qualname__}"
        return found

    def _code(self) -> Callable[..., Any]:
        return self.func


def _check_takes_context(func: Callable[..., Any], task_id: str) -> None:
    """Refuse, when the task is made, a function that cannot be called with the task's
    context (it would otherwise fail only when it runs)."""
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


@overload
def task(func: Callable[[TaskContext], Any], /, **options: Any) -> FunctionTask: ...


@overload
def task(
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
) -> Callable[[Callable[[TaskContext], Any]], FunctionTask]: ...


def task(
    func: Callable[[TaskContext], Any] | None = None, /, **options: Any
) -> FunctionTask | Callable[[Callable[[TaskContext], Any]], FunctionTask]:
    """Turn a function taking a ``TaskContext`` into a ``Task``.

    ``async def`` functions run on the event loop; plain ``def`` functions run in a
    worker thread. Use bare (``@task``) or with options (``@task(retries=2)``).
    """
    if func is not None:
        return FunctionTask(func, **options)

    def wrap(f: Callable[[TaskContext], Any]) -> FunctionTask:
        return FunctionTask(f, **options)

    return wrap
