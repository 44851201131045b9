"""The exception hierarchy: one base, each subclass also inherits its builtin twin."""

from __future__ import annotations

import traceback
from collections.abc import Iterable


class PpacerError(Exception):
    """Base class of every error raised by ppacer-async."""


class DagDefinitionError(PpacerError, ValueError):
    """A DAG or task definition is invalid (cycle, duplicate or empty id, bad option)."""


class ScheduleError(PpacerError, ValueError):
    """A schedule is invalid (bad cron expression, unknown time zone, bad interval)."""


class DagNotFound(PpacerError, LookupError):
    """No DAG with the given id is known to the scheduler or the storage."""


class RunNotFound(PpacerError, LookupError):
    """No DAG run with the given id exists in the storage."""


class InvalidOperation(PpacerError, RuntimeError):
    """The operation is not allowed in the current state (e.g. restarting a running run)."""


class StorageError(PpacerError, RuntimeError):
    """The storage cannot be used: unreachable, locked, or not a ppacer-async database."""


class StorageLockedError(StorageError):
    """Another scheduler already serves this storage."""


class LeaseLost(RuntimeError):
    """Internal: a commit applying the outcome of an attempt this process ran found its
    lease given up (the attempt runs again elsewhere); nothing was written, and the
    process that schedules starts again from storage. Never reaches the caller."""


class SchemaVersionError(StorageError):
    """The database schema is newer than this program understands."""


class TaskTimeoutError(PpacerError, TimeoutError):
    """A task attempt ran past its timeout."""


class ResultNotStorable(PpacerError, TypeError):
    """A task returned a value that cannot be stored as JSON."""


class SkipTask(PpacerError):
    """Raise it in a task to end the attempt ``skipped`` (no retry is spent); the
    message says why and is stored with the attempt."""


class NonRetryableError(PpacerError):
    """Raise it (or a subclass) in a task to fail the task at once, whatever its
    ``retries`` allow."""


class UnknownPool(PpacerError, LookupError):
    """A task names a pool the scheduler was not given (``Scheduler(pools=...)``)."""


class TaskNotFound(PpacerError, LookupError):
    """A DAG or run has no task with the given id."""


class CommandError(PpacerError, RuntimeError):
    """A command run by a ``ShellTask`` exited with a code it does not accept.

    :ivar exit_code: the exit code; negative when a signal ended the command (``-9``).
    :ivar last_lines: the last lines the command printed (stdout and stderr interleaved).
    """

    def __init__(self, message: str, *, exit_code: int, last_lines: Iterable[str]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.last_lines = list(last_lines)


class HttpStatusError(PpacerError, RuntimeError):
    """An ``HttpTask``'s request was answered with a status of 400 or more.

    :ivar status_code: the response's status code.
    :ivar body_start: the first characters of the response's body.
    """

    def __init__(self, message: str, *, status_code: int, body_start: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body_start = body_start


def describe_exception(exc: BaseException) -> str:
    """The error text stored with a failed attempt: message and traceback."""
    return "".join(traceback.format_exception(exc)).rstrip()
