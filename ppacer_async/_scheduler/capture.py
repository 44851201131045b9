"""What a task attempt says, stored with the attempt: what it prints to stdout and
stderr, what it logs with standard ``logging``, and the traceback of its failure.

The attempt being run is a context variable set by the worker coroutine that runs it:
an async task runs in that coroutine's context (and tasks it starts inherit it); a
thread task gets a copy, since ``anyio.to_thread.run_sync`` runs the function in a copy
of the caller's context. So with a hundred attempts running at once, each line lands
in its own attempt's log. While a scheduler serves, ``sys.stdout`` and ``sys.stderr``
are proxies that pass everything on to the streams they replaced and, inside an
attempt, also keep it; the ``logging`` record factory keeps the records made inside an
attempt. Threads a task starts itself do not inherit the context (use
``contextvars.copy_context().run`` to hand it over).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any, Protocol

from .._structures import LogRecord

if TYPE_CHECKING:
    from ..abc import Clock

#: Levels of the records that hold a task's own output.
STDOUT = "STDOUT"
STDERR = "STDERR"

#: The loggers of ``ctx.log``, whose records are stored by ``ctx.log`` itself.
_STORED_LOGGERS = "ppacer_async.task."

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


#: Where an attempt's records go: the consumer's ``add_log`` and its clock, made once
#: per consumer, so that entering an attempt costs one small tuple.
Teller = tuple[Callable[[LogRecord], None], "Clock"]


class Key(Protocol):
    """What names an attempt in its log records: a ``TaskRun``, or anything as small
    with the same three attributes."""

    @property
    def run_id(self) -> int: ...
    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...


#: The attempt output belongs to, as the context variable holds it.
Owner = tuple[Key, Teller]

#: The attempt that output in this context belongs to. Set with ``current.set((tr,
#: teller))`` around an attempt, then ``finish``.
current: ContextVar[Owner | None] = ContextVar("ppacer_async_attempt", default=None)

#: Text printed without a final newline yet, by attempt (``id`` of its tuple, alive
#: while the attempt runs) and stream.
pending: dict[tuple[int, str], str] = {}


def record(attempt: Owner, level: str, message: str) -> None:
    """Store one record in an attempt's log."""
    tr, (add, clock) = attempt
    add(
        LogRecord(
            run_id=tr.run_id,
            task_id=tr.task_id,
            attempt=tr.attempt,
            time=clock.now(),
            level=level,
            message=message,
        )
    )


def _write(attempt: Owner, level: str, text: str) -> None:
    """Keep printed text; one record per write that completes a line."""
    key = (id(attempt), level)
    text = pending.pop(key, "") + text
    end = text.rfind("\n")
    if end < 0:
        if text:
            pending[key] = text
        return
    if end + 1 < len(text):
        pending[key] = text[end + 1 :]
    record(attempt, level, text[:end])


def finish(attempt: Owner) -> None:
    """Keep what an attempt printed without a final newline (call once it has ended;
    cheap when nothing is pending anywhere)."""
    if pending:
        for level in (STDOUT, STDERR):
            text = pending.pop((id(attempt), level), None)
            if text:
                record(attempt, level, text)


class _Stream:
    """``sys.stdout`` or ``sys.stderr`` while a scheduler serves: passes every write on,
    and keeps the writes made inside an attempt for its log."""

    def __init__(self, stream: IO[str], level: str) -> None:
        self._stream = stream
        self._level = level

    def write(self, text: str) -> int:
        attempt = current.get()
        # A logging handler writing to this stream: the record factory kept the record.
        if attempt is not None and sys._getframe(1).f_globals.get("__name__") != "logging":
            _write(attempt, self._level, text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _RecordFactory:
    """Wraps the ``logging`` record factory: each record made inside an attempt is also
    kept for the attempt's log. Hooking record creation rather than adding a handler
    leaves the logging configuration as it is (a handler on the root logger would, for
    one, stop Python from printing warnings when logging is not configured)."""

    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        made = self.wrapped(*args, **kwargs)
        attempt = current.get()
        if attempt is not None and not made.name.startswith(_STORED_LOGGERS):
            record(attempt, made.levelname, _describe(made))
        return made


def _describe(record: logging.LogRecord) -> str:
    try:
        message = f"{record.name}: {record.getMessage()}"
    except Exception:  # bad arguments: logging reports it when the record is emitted
        message = f"{record.name}: {record.msg!r} {record.args!r}"
    if record.exc_info and record.exc_info[1] is not None:
        message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
    elif record.stack_info:
        message += "\n" + record.stack_info
    return message


_installed = 0
_installing = threading.Lock()


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """Route stdout, stderr and logging records to the running attempt while inside.

    Nests: schedulers serving together in one process (on one event loop or several)
    share one installation.
    """
    global _installed
    with _installing:
        if _installed == 0:
            _install()
        _installed += 1
    try:
        yield
    finally:
        with _installing:
            _installed -= 1
            if _installed == 0:
                _uninstall()


def _install() -> None:
    if sys.stdout is not None and not isinstance(sys.stdout, _Stream):
        sys.stdout = _Stream(sys.stdout, STDOUT)
    if sys.stderr is not None and not isinstance(sys.stderr, _Stream):
        sys.stderr = _Stream(sys.stderr, STDERR)
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RecordFactory):
        logging.setLogRecordFactory(_RecordFactory(factory))


def _uninstall() -> None:
    factory = logging.getLogRecordFactory()
    if isinstance(factory, _RecordFactory):  # not replaced by someone else meanwhile
        logging.setLogRecordFactory(factory.wrapped)
    if isinstance(sys.stdout, _Stream):
        sys.stdout = sys.stdout._stream
    if isinstance(sys.stderr, _Stream):
        sys.stderr = sys.stderr._stream


def user_traceback(exc: BaseException) -> str:
    """The error text of a failed attempt: the traceback from the task's own code on
    (the engine's frames that called it left out), and the exception."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()
