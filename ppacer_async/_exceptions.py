"""The exception hierarchy: one base, each subclass also inherits its builtin twin."""

from __future__ import annotations

import traceback


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


def describe_exception(exc: BaseException) -> str:
    """The error text stored with a failed attempt: message and traceback."""
    return "".join(traceback.format_exception(exc)).rstrip()
