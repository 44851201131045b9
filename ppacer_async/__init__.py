"""ppacer-async: an asyncio-native DAG scheduler."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._dag import DAG as DAG
from ._dag import Flow as Flow
from ._enums import DagRunStatus as DagRunStatus
from ._enums import RunTrigger as RunTrigger
from ._enums import ScheduleEventKind as ScheduleEventKind
from ._enums import TaskStatus as TaskStatus
from ._enums import TriggerRule as TriggerRule
from ._exceptions import CommandError as CommandError
from ._exceptions import DagDefinitionError as DagDefinitionError
from ._exceptions import DagNotFound as DagNotFound
from ._exceptions import HttpStatusError as HttpStatusError
from ._exceptions import InvalidOperation as InvalidOperation
from ._exceptions import NonRetryableError as NonRetryableError
from ._exceptions import PpacerError as PpacerError
from ._exceptions import ResultNotStorable as ResultNotStorable
from ._exceptions import RunNotFound as RunNotFound
from ._exceptions import ScheduleError as ScheduleError
from ._exceptions import SchemaVersionError as SchemaVersionError
from ._exceptions import SkipTask as SkipTask
from ._exceptions import StorageError as StorageError
from ._exceptions import StorageLockedError as StorageLockedError
from ._exceptions import TaskNotFound as TaskNotFound
from ._exceptions import TaskTimeoutError as TaskTimeoutError
from ._exceptions import UnknownPool as UnknownPool
from ._scheduler.scheduler import Scheduler as Scheduler
from ._structures import Alert as Alert
from ._structures import DagRun as DagRun
from ._structures import LogRecord as LogRecord
from ._structures import PoolUsage as PoolUsage
from ._structures import ScheduleEvent as ScheduleEvent
from ._structures import Statistics as Statistics
from ._structures import TaskRun as TaskRun
from ._task import Task as Task
from ._task import TaskContext as TaskContext
from ._task import task as task
from .clock import SystemClock as SystemClock
from .notify import EmailNotifier as EmailNotifier
from .notify import LogNotifier as LogNotifier
from .notify import NotifierError as NotifierError
from .notify import WebhookNotifier as WebhookNotifier
from .testing import FakeClock as FakeClock

try:
    __version__: str = _version("ppacer-async")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree not installed
    __version__ = "0+unknown"

__all__ = [
    "DAG",
    "Alert",
    "CommandError",
    "DagDefinitionError",
    "DagNotFound",
    "DagRun",
    "DagRunStatus",
    "EmailNotifier",
    "FakeClock",
    "Flow",
    "HttpStatusError",
    "InvalidOperation",
    "LogNotifier",
    "LogRecord",
    "NonRetryableError",
    "NotifierError",
    "PoolUsage",
    "PpacerError",
    "ResultNotStorable",
    "RunNotFound",
    "RunTrigger",
    "ScheduleError",
    "ScheduleEvent",
    "ScheduleEventKind",
    "Scheduler",
    "SchemaVersionError",
    "SkipTask",
    "Statistics",
    "StorageError",
    "StorageLockedError",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskNotFound",
    "TaskRun",
    "TaskStatus",
    "TaskTimeoutError",
    "TriggerRule",
    "UnknownPool",
    "WebhookNotifier",
    "task",
]
