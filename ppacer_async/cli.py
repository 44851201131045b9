"""The ``ppacer-async`` command.

Each subcommand is one ``cmd_<name>(args) -> int`` function registered by one
``_add_<name>_parser`` function; loading DAGs, building the storage, logging and error
reporting are shared helpers. Exit codes: 0 done; 1 a run the command waited for failed;
2 bad usage, or something the command could not find, load or open, explained in one line
on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TextIO

import anyio
import anyio.abc

from . import operations
from ._dag import DAG
from ._enums import DagRunStatus, TaskStatus
from ._exceptions import DagDefinitionError, PpacerError, RunNotFound, StorageError
from ._scheduler.scheduler import Scheduler
from ._structures import DagInfo, DagRun, LogRecord, TaskRun
from .abc import SharedStorage, Storage
from .storage import DEFAULT_URL, MemoryStorage, from_url, redact_url

#: The environment variable naming the storage URL when ``--storage`` is not given.
STORAGE_ENV = "PPACER_STORAGE"

EXIT_OK = 0
EXIT_USAGE = 2
#: What a shell reports for a process ended by SIGINT; used when a second signal
#: abandons a graceful stop.
EXIT_INTERRUPTED = 130

#: Seconds that threads of blocking tasks get to return after a stop before the
#: process exits without them.
THREAD_GRACE = 2.0

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

logger = logging.getLogger("ppacer_async.cli")


class CliError(Exception):
    """Something the user asked for cannot be done; its message is shown as one line."""


# -- shared helpers ---------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Join a possibly multi-line message into one line."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _print_error(message: str) -> None:
    print(f"ppacer-async: error: {_one_line(message)}", file=sys.stderr, flush=True)


def _find_error(exc: BaseException, kind: type[Exception]) -> Exception | None:
    """The first ``kind`` exception in ``exc`` or, for an exception group, inside it."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_error(inner, kind)
            if found is not None:
                return found
    return None


def storage_url(given: str | None) -> str:
    """The storage URL: ``--storage``, else ``$PPACER_STORAGE``, else the default."""
    return given or os.environ.get(STORAGE_ENV) or DEFAULT_URL


def load_storage(url: str) -> Storage:
    """Build (not open) the storage a URL names.

    :raises CliError: the URL is not usable.
    """
    try:
        return from_url(url)
    except PpacerError as exc:
        raise CliError(str(exc)) from None


class _Formatter(logging.Formatter):
    """``20:41:07.123+01:00 INFO    message``: local time with its UTC offset.

    Lines written by a task's ``ctx.log`` say which run and task wrote them; lines of
    loggers outside ppacer-async start with the logger name.
    """

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone()
        return moment.timetz().isoformat(timespec="milliseconds")

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        name = record.name
        if name.startswith("ppacer_async.task."):
            run_id = getattr(record, "run_id", None)
            task_id = getattr(record, "task_id", None) or name.rsplit(".", 1)[-1]
            where = f"run {run_id} task {task_id}" if run_id is not None else f"task {task_id}"
            message = f"{where}: {message}"
        elif name != "ppacer_async" and not name.startswith("ppacer_async."):
            message = f"{name}: {message}"
        return f"{record.asctime} {record.levelname:<7} {message}"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (so a second call replaces it)."""


def configure_logging(level: str) -> None:
    """Send every log line to stderr as ``time level message``, at ``level`` and above.

    Replaces a handler installed by an earlier call, leaves any other handler alone.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler):
            root.removeHandler(old)
    handler = _Handler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # aiosqlite writes a DEBUG line per statement: too much even for --log-level DEBUG.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))


# -- loading DAGs -------------------------------------------------------------------------


def _split_target(target: str) -> tuple[str, str | None]:
    """``path/or.module[:attr]`` -> (path or module, attr or None).

    Only a colon followed by a (dotted) identifier starts an attribute, so a Windows
    drive letter (``C:\\dags\\etl.py``) stays part of the path.
    """
    source, sep, attr = target.rpartition(":")
    if sep and source and attr and all(part.isidentifier() for part in attr.split(".")):
        return source, attr
    return target, None


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source


def _import_path(path: Path) -> ModuleType:
    """Import a .py file by path, its directory first on ``sys.path`` for its siblings."""
    if not path.is_file():
        what = "is a directory, not a .py file" if path.is_dir() else "does not exist"
        raise CliError(f"cannot load DAGs: {path} {what}")
    shown = str(path)
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # The file's stem is the name a sibling would import it by, and the name its task
    # functions carry in their fingerprints (so `serve dags.py` and `serve dags` agree).
    name = path.stem
    if not name.isidentifier() or name in sys.modules:
        name = "ppacer_dags_" + re.sub(r"\W", "_", name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load DAGs: {shown} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        _raise_import_failure(exc, shown, path)
    return module


def _import_module(name: str) -> ModuleType:
    """Import a dotted module name, the current directory first on ``sys.path``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(f"{missing}.")):
            raise CliError(
                f"cannot load DAGs: no module named {name!r} (searched the current directory "
                f"and sys.path); to load a file, pass its path, e.g. {name.replace('.', '/')}.py"
            ) from None
        _raise_import_failure(exc, f"module {name!r}", None)
    except BaseException as exc:
        _raise_import_failure(exc, f"module {name!r}", None)


def _raise_import_failure(exc: BaseException, what: str, path: Path | None) -> NoReturn:
    """Turn an exception raised while importing user code into a ``CliError``."""
    if not isinstance(exc, Exception):
        raise exc  # KeyboardInterrupt, SystemExit: not ours to explain
    if isinstance(exc, DagDefinitionError):
        raise CliError(f"invalid DAG in {what}: {exc}") from None
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        own = [f for f in frames if f.filename and Path(f.filename).resolve() == path]
        if own and own[-1].lineno is not None:
            where = f" at line {own[-1].lineno}"
    message = str(exc)
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    raise CliError(f"importing {what} failed{where}: {detail}") from None


def _as_dags(value: object, label: str) -> list[DAG]:
    """A DAG or an iterable of DAGs as a list.

    :raises CliError: ``value`` is something else, or empty.
    """
    if isinstance(value, DAG):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        items = list(value)
        wrong = [item for item in items if not isinstance(item, DAG)]
        if wrong:
            raise CliError(
                f"{label} must hold only DAGs, but it holds {type(wrong[0]).__name__} "
                f"{_short_repr(wrong[0])}"
            )
        if not items:
            raise CliError(f"{label} is empty: there is no DAG to serve")
        return items
    raise CliError(f"{label} is {_short_repr(value)}, not a DAG or a list of DAGs")


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _dag_attributes(module: ModuleType) -> list[str]:
    """Public module attributes that hold a DAG or a non-empty list of DAGs."""
    found = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, DAG) or (
            isinstance(value, list | tuple) and value and all(isinstance(d, DAG) for d in value)
        ):
            found.append(name)
    return found


def _module_level_dags(module: ModuleType) -> list[DAG]:
    found: dict[int, DAG] = {}
    for value in vars(module).values():
        if isinstance(value, DAG):
            found.setdefault(id(value), value)
    return list(found.values())


def load_dags(target: str) -> list[DAG]:
    """The DAGs named by ``path/to/file.py[:attr]`` or ``dotted.module[:attr]``.

    Without ``attr``: the module's ``dags`` when it has one, else every DAG defined at
    module level.

    :raises CliError: the file or module is missing, fails to import, or holds no DAGs.
    """
    source, attr = _split_target(target)
    module = _import_path(Path(source)) if _is_path(source) else _import_module(source)
    if attr is None:
        if hasattr(module, "dags"):
            return _as_dags(module.dags, f"{source}:dags")
        dags = _module_level_dags(module)
        if not dags:
            raise CliError(
                f"no DAGs in {source}: define DAG objects at module level or a list named "
                f"'dags', or name one with {source}:ATTR"
            )
        return dags
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            candidates = _dag_attributes(module)
            hint = f" (attributes holding DAGs: {', '.join(candidates)})" if candidates else ""
            raise CliError(f"{source} has no attribute {attr!r}{hint}") from None
    return _as_dags(value, f"{source}:{attr}")


# -- serve --------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_serve_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the scheduler for some DAGs until stopped (Ctrl-C or SIGTERM)",
        description=(
            "Run the scheduler for the DAGs of a Python file or module until Ctrl-C or "
            "SIGTERM. Attempts still running then are saved as interrupted and run again "
            "on the next start."
        ),
    )
    parser.add_argument(
        "target",
        metavar="PATH_OR_MODULE[:ATTR]",
        help=(
            "a .py file or a dotted module name; ATTR names a DAG or a list of DAGs in it "
            "(default: its 'dags' list, else every DAG at module level)"
        ),
    )
    _add_storage_option(parser)
    parser.add_argument(
        "--max-concurrent-tasks",
        type=_positive_int,
        default=100,
        metavar="N",
        help="task attempts running at once (default: %(default)s)",
    )
    parser.add_argument(
        "--max-threads",
        type=_positive_int,
        default=40,
        metavar="N",
        help="blocking (def) tasks running in threads at once (default: %(default)s)",
    )
    parser.add_argument(
        "--role",
        choices=("all", "scheduler", "worker"),
        default="all",
        help=(
            "on PostgreSQL, where several processes share the work: 'scheduler' only "
            "schedules (one process at a time does, the others stand by), 'worker' only "
            "runs tasks, 'all' does both (default: %(default)s)"
        ),
    )
    _add_log_level_option(parser)
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the DAGs of ``args.target`` until SIGINT or SIGTERM."""
    configure_logging(args.log_level)
    dags = load_dags(args.target)
    url = storage_url(args.storage)
    storage = load_storage(url)
    try:
        scheduler = Scheduler(
            dags,
            storage=storage,
            max_concurrent_tasks=args.max_concurrent_tasks,
            max_threads=args.max_threads,
            role=args.role,
        )
    except (PpacerError, ValueError) as exc:
        raise CliError(str(exc)) from None
    logger.info(
        "loaded %d DAG%s from %s; storage %s",
        len(dags),
        "" if len(dags) == 1 else "s",
        args.target,
        redact_url(url),
    )
    threads_before = set(threading.enumerate())
    # The DAGs just loaded live as long as this process: move them out of the cyclic
    # collector's reach, or every full collection rescans them (measurable with
    # DAGs of 100,000 tasks; see benchmarks/README.md, W6).
    gc.collect()
    gc.freeze()
    anyio.run(_serve_until_signal, scheduler)
    logger.info("stopped")
    _exit_past_blocked_threads(threads_before)
    return EXIT_OK


def _exit_past_blocked_threads(before: set[threading.Thread]) -> None:
    """Exit now if blocking tasks still hold threads after the stop.

    Their attempts are already saved as interrupted and will run again, but Python
    would wait for the threads before exiting: a task stuck in ``time.sleep`` or a
    socket read would keep the process alive long after "stopped". Threads get
    ``THREAD_GRACE`` seconds to return (a task that polls ``ctx.cancelled`` does).
    Threads that existed before serving (``before``) are not ours to judge.
    """
    deadline = time.monotonic() + THREAD_GRACE
    blocked = []
    try:
        for thread in threading.enumerate():
            if thread.daemon or thread in before:
                continue
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                blocked.append(thread)
    except KeyboardInterrupt:
        blocked.append(threading.current_thread())
    if blocked:
        logger.warning(
            "exiting without waiting for %d thread%s still running blocking task code",
            len(blocked),
            "" if len(blocked) == 1 else "s",
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)


async def _serve_until_signal(scheduler: Scheduler) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(_stop_on_signal, scheduler)
        try:
            await tg.start(_serve_then_cancel, scheduler, tg.cancel_scope)
        except PpacerError as exc:
            # Could not start: the storage is locked, unreachable, or not ours.
            raise CliError(str(exc)) from None


async def _serve_then_cancel(
    scheduler: Scheduler,
    scope: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await scheduler.serve(task_status=task_status)
    scope.cancel()  # the signal listener has nothing left to stop


async def _stop_on_signal(
    scheduler: Scheduler, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """First SIGINT/SIGTERM: stop gracefully. A second one: exit without waiting."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        stopping = False
        async for signum in signals:
            name = signal.Signals(signum).name
            if not stopping:
                stopping = True
                logger.info(
                    "%s received: stopping (in-flight attempts are saved as interrupted)", name
                )
                scheduler.stop()
            else:
                logger.warning("%s received again: exiting without finishing the shutdown", name)
                logging.shutdown()
                os._exit(EXIT_INTERRUPTED)


# -- commands on a storage ----------------------------------------------------------------
#
# Every command below works on the storage alone, so it works while a scheduler serves the
# same storage from another process: the scheduler notices queued runs and paused DAGs
# within about a second.

#: Exit code of a command that waited for a run which failed (or ran past ``--timeout``).
EXIT_RUN_FAILED = 1
#: Seconds between two reads of a run that another process executes. There is no event
#: that crosses processes, so ``--wait`` and ``--follow`` poll.
POLL_SECONDS = 0.2
#: After this many seconds in the queue, ``--wait`` says why a run may not start.
QUEUED_HINT_SECONDS = 10.0
#: Tables and summary lines fit a terminal this wide.
WIDTH = 80
#: Cells of the progress bar that ``--wait`` draws on a terminal.
BAR_CELLS = 20
#: Statuses of a task's latest attempt that count as done in the progress of a run.
_DONE = frozenset({TaskStatus.success, TaskStatus.failed, TaskStatus.upstream_failed})


def command_storage(given: str | None, *, create: bool = False) -> Storage:
    """Build the storage a command works on, refusing what cannot be shared with a
    scheduler in another process.

    :param create: a SQLite file that does not exist yet may be created (``db upgrade``);
        other commands refuse it rather than create a stray empty database.
    :raises CliError: the URL is not usable.
    """
    url = storage_url(given)
    storage = load_storage(url)
    if isinstance(storage, MemoryStorage):
        raise CliError(
            "memory:// keeps its data inside one process, so another command cannot see "
            "it; use --storage sqlite:///path.db or postgresql://user@host/db"
        )
    from .storage.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        path = Path(storage.path)
        if path.is_dir():
            raise CliError(
                f"{path} is a directory, not a database file; "
                "point --storage at a file, e.g. sqlite:///ppacer.db"
            )
        if not create and not path.exists():
            raise CliError(
                f"no database at {path}; check --storage (or ${STORAGE_ENV}), or create it "
                "by serving DAGs on it: ppacer-async serve FILE --storage URL"
            )
    return storage


def _on_storage(
    args: argparse.Namespace,
    work: Callable[[Storage], Awaitable[int]],
    *,
    create: bool = False,
) -> int:
    """Open the storage of ``args``, run ``work`` on it, close it; return its exit code.

    :raises CliError: the storage cannot be used, or the request names something that
        does not exist or is not allowed (an unknown DAG or run, a bad range).
    """
    storage = command_storage(args.storage, create=create)

    async def run() -> int:
        async with storage:
            return await work(storage)

    try:
        return anyio.run(run)
    except PpacerError as exc:
        raise CliError(str(exc)) from None
    except BrokenPipeError:
        # The reader went away (`ppacer-async runs | head`): stop quietly, as Unix tools do,
        # with stdout pointed at /dev/null so the interpreter's final flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        raise CliError(f"cannot use the storage: {exc}") from None


# -- formatting ---------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _local(moment: datetime | None) -> str:
    """``2026-11-26 21:05:03+01:00``: the local time zone, with its offset; ``-`` for none."""
    if moment is None:
        return "-"
    return moment.astimezone().isoformat(sep=" ", timespec="seconds")


def _iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC, for JSON."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _duration(delta: timedelta | None) -> str:
    """``12 ms``, ``3.4 s``, ``2 min 5 s``, ``3 h 20 min``, ``2 d 4 h``; ``-`` for none."""
    if delta is None:
        return "-"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _took(started: datetime | None, finished: datetime | None, now: datetime) -> timedelta | None:
    """How long something took, or has been running so far."""
    if started is None:
        return None
    return (finished or now) - started


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 6)


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def _headline(error: str | None) -> str:
    """What went wrong, in one line: the exception line of a traceback, else the first."""
    if not error:
        return ""
    lines = [line for line in error.splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        for line in reversed(lines):
            if not line[0].isspace():
                return line.strip()
    return lines[0].strip() if lines else ""


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    shrink: Collection[int] = (),
) -> list[str]:
    """Lines of a table that fits ``WIDTH`` columns.

    Columns in ``shrink`` (free text such as ids) give way first when the table is too
    wide; a cut cell ends with an ellipsis. Columns in ``right`` are right-aligned.
    """
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    budget = WIDTH - 2 * (len(headers) - 1)
    while sum(widths) > budget:
        candidates = [i for i in shrink if widths[i] > max(len(headers[i]), 4)]
        if not candidates:
            candidates = [i for i in range(len(widths)) if widths[i] > 4]
        if not candidates:
            break
        widths[max(candidates, key=lambda i: widths[i])] -= 1
    lines = []
    for cells in [headers, *rows]:
        parts = []
        for i, cell in enumerate(cells):
            text = _fit(cell, widths[i])
            parts.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return lines


def _print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _note(message: str) -> None:
    """A remark that is not the command's output, on stderr."""
    print(message, file=sys.stderr, flush=True)


def _run_json(run: DagRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "dag_id": run.dag_id,
        "logical_time": _iso(run.logical_time),
        "status": str(run.status),
        "trigger": str(run.trigger),
        "params": run.params,
        "dag_version": run.dag_version,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": _seconds(run.started_at, run.finished_at),
    }


def _attempt_json(tr: TaskRun) -> dict[str, Any]:
    return {
        "task_id": tr.task_id,
        "attempt": tr.attempt,
        "status": str(tr.status),
        "reason": str(tr.reason),
        "scheduled_at": _iso(tr.scheduled_at),
        "started_at": _iso(tr.started_at),
        "finished_at": _iso(tr.finished_at),
        "duration_seconds": _seconds(tr.started_at, tr.finished_at),
        "error": tr.error,
        "result": tr.result,
    }


def _log_json(record: LogRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "task_id": record.task_id,
        "attempt": record.attempt,
        "time": _iso(record.time),
        "level": record.level,
        "message": record.message,
    }


def _runs_table(runs: Sequence[DagRun], now: datetime) -> list[str]:
    rows = [
        [
            str(run.id),
            run.dag_id,
            _local(run.logical_time),
            str(run.trigger),
            str(run.status),
            _duration(_took(run.started_at, run.finished_at, now)),
        ]
        for run in runs
    ]
    headers = ["RUN", "DAG", "LOGICAL TIME", "TRIGGER", "STATUS", "DURATION"]
    return _table(headers, rows, right={0}, shrink={1})


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON (times in ISO-8601 UTC) instead of text",
    )


def _run_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a run id is a whole number, got {text!r}; list runs with `ppacer-async runs`"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a run id is at least 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


async def _require_run(storage: Storage, run_id: int) -> DagRun:
    run = await storage.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id}; list runs with `ppacer-async runs`")
    return run


def _task_ids(info: DagInfo | None, attempts: Iterable[TaskRun]) -> list[str]:
    """Task ids of a run: the DAG's, in definition order, then any only its attempts know."""
    ids: dict[str, None] = {}
    if info is not None:
        ids.update(dict.fromkeys(info.definition.get("tasks", {})))
    ids.update(dict.fromkeys(tr.task_id for tr in attempts))
    return list(ids)


def _not_started(
    task_id: str, info: DagInfo | None, latest: dict[str, TaskRun], run: DagRun
) -> str:
    """What a task without an attempt row is doing: ``scheduled`` when its upstream tasks
    all succeeded in an active run (readiness is not written separately), else
    ``pending``."""
    if run.status.finished or info is None:
        return "-"
    upstream = info.definition.get("tasks", {}).get(task_id, {}).get("upstream", [])
    done = all(
        (tr := latest.get(parent)) is not None and tr.status is TaskStatus.success
        for parent in upstream
    )
    return "scheduled" if done and run.status is DagRunStatus.running else "pending"


def _latest(attempts: Iterable[TaskRun]) -> dict[str, TaskRun]:
    """The latest attempt of each task."""
    latest: dict[str, TaskRun] = {}
    for tr in attempts:
        known = latest.get(tr.task_id)
        if known is None or tr.attempt > known.attempt:
            latest[tr.task_id] = tr
    return latest


# -- waiting for a run ---------------------------------------------------------------------


class _Progress:
    """Shows how far a run is: a bar redrawn in place on a terminal, else one plain line
    per change (so a log file or a pipe gets readable lines)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._drawn = 0
        self._last: tuple[int, int, DagRunStatus] | None = None

    def update(self, run: DagRun, done: int, total: int) -> None:
        key = (done, total, run.status)
        if key == self._last:
            return
        self._last = key
        if self._tty:
            filled = BAR_CELLS if total == 0 else BAR_CELLS * min(done, total) // total
            line = (
                f"[{'#' * filled}{'-' * (BAR_CELLS - filled)}] {done}/{total} tasks  "
                f"run {run.id} {run.status}"
            )
            padding = " " * max(self._drawn - len(line), 0)
            self._stream.write(f"\r{line}{padding}")
            self._drawn = len(line)
        else:
            self._stream.write(f"{done}/{total} tasks done (run {run.id} {run.status})\n")
        self._stream.flush()

    def say(self, message: str) -> None:
        """A line of its own, below the bar."""
        self.close()
        self._stream.write(f"{message}\n")
        self._stream.flush()

    def close(self) -> None:
        """Leave the bar as it is and move to a new line."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = 0
            self._last = None


async def _wait_for_run(
    storage: Storage,
    run: DagRun,
    total: int,
    stale: Mapping[str, int],
    timeout: float | None,
    progress: _Progress,
) -> DagRun | None:
    """Poll a run until it finishes; ``None`` when ``timeout`` seconds pass first.

    :param stale: tasks to run again (a restarted run), with their latest attempt then:
        those attempts do not count as done.
    """
    started = anyio.current_time()
    hinted = False
    try:
        while True:
            current = await _require_run(storage, run.id)
            latest = _latest(await storage.task_runs(run.id)).values()
            done = sum(
                1 for tr in latest if tr.status in _DONE and tr.attempt > stale.get(tr.task_id, 0)
            )
            progress.update(current, done, total)
            if current.status.finished:
                return current
            waited = anyio.current_time() - started
            if timeout is not None and waited >= timeout:
                return None
            if (
                not hinted
                and current.status is DagRunStatus.queued
                and waited >= QUEUED_HINT_SECONDS
            ):
                hinted = True
                progress.say(
                    f"run {run.id} is still queued after {waited:.0f} s: it waits for a "
                    "free slot (max_active_runs) or for a scheduler serving this storage"
                )
            await anyio.sleep(POLL_SECONDS)
    finally:
        progress.close()


async def _wait_and_report(
    storage: Storage,
    run: DagRun,
    args: argparse.Namespace,
    stale: Mapping[str, int] | None = None,
) -> int:
    """Wait for ``run`` with progress on stderr, then report how it ended.

    :param stale: see :func:`_wait_for_run`.
    :return: 0 when the run succeeded, 1 when it failed or the wait timed out.
    """
    info = await storage.get_dag(run.dag_id)
    total = len(_task_ids(info, await storage.task_runs(run.id)))
    stale = stale or {}
    finished = await _wait_for_run(storage, run, total, stale, args.timeout, _Progress(sys.stderr))
    if finished is None:
        _print_error(
            f"run {run.id} did not finish within {args.timeout:g} s; it goes on in the "
            f"scheduler: follow it with ppacer-async show {run.id}"
        )
        return EXIT_RUN_FAILED
    ok = finished.status is DagRunStatus.success
    if args.json:
        _print_json(_run_json(finished))
        return EXIT_OK if ok else EXIT_RUN_FAILED
    took = _duration(_took(finished.started_at, finished.finished_at, _now()))
    print(f"run {finished.id} of {finished.dag_id} {finished.status} in {took}")
    if not ok:
        for tr in _latest(await storage.task_runs(run.id)).values():
            if tr.status is TaskStatus.failed:
                print(_fit(f"  {tr.task_id} (attempt {tr.attempt}): {_headline(tr.error)}", WIDTH))
        print(f"see ppacer-async show {run.id}; re-run it with ppacer-async restart {run.id}")
    return EXIT_OK if ok else EXIT_RUN_FAILED


def _check_timeout(args: argparse.Namespace, needs: str) -> None:
    """:raises CliError: ``--timeout`` is given without the option it bounds."""
    if args.timeout is not None and not getattr(args, needs.lstrip("-")):
        raise CliError(f"--timeout bounds {needs}; add {needs} or drop --timeout")


def _add_wait_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help=f"wait until {what} ends, showing progress on stderr; exit 0 when it "
        "succeeds, 1 when it fails",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --wait, stop waiting after this long and exit 1 (default: no limit)",
    )


# -- dags ----------------------------------------------------------------------------------


def _add_dags_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dags",
        help="list DAGs: schedule, paused or not, next due time, last run",
        description=(
            "List the DAGs recorded in the storage (a DAG is recorded when a scheduler "
            "serving it starts): schedule, paused or not, when the schedule is next due, "
            "and the status of the newest run."
        ),
    )
    _add_storage_option(parser)
    _json_option(parser, "the DAGs")
    parser.set_defaults(handler=cmd_dags)


def _next_due(info: DagInfo, last_point: datetime | None, now: datetime) -> datetime | None:
    """When the schedule of a DAG is next due; ``None`` when paused or not computable."""
    if info.paused or info.definition.get("schedule_spec") is None:
        return None
    try:
        schedule = operations.stored_schedule(info)
        after = now if last_point is None else max(last_point, now)
        start = info.definition.get("start")
        if start is not None:
            first = datetime.fromisoformat(start)
            if first > after:
                after = first - timedelta(microseconds=1)
        return schedule.next(after)
    except (PpacerError, ValueError):
        return None


def cmd_dags(args: argparse.Namespace) -> int:
    """List the recorded DAGs."""
    return _on_storage(args, lambda storage: _dags(storage, args))


async def _dags(storage: Storage, args: argparse.Namespace) -> int:
    now = _now()
    listed = []
    for info in await storage.list_dags():
        newest = await storage.list_runs(dag_id=info.dag_id, limit=1)
        due = _next_due(info, await storage.last_schedule_point(info.dag_id), now)
        listed.append((info, newest[0] if newest else None, due))
    if args.json:
        _print_json(
            [
                {
                    "dag_id": info.dag_id,
                    "schedule": info.definition.get("schedule"),
                    "paused": info.paused,
                    "next_due": _iso(due),
                    "last_run": None
                    if last is None
                    else {"id": last.id, "status": str(last.status)},
                    "tasks": len(info.definition.get("tasks", {})),
                    "version": info.version,
                }
                for info, last, due in listed
            ]
        )
        return EXIT_OK
    if not listed:
        _note(
            "no DAGs in this storage yet; a DAG is recorded when a scheduler serving it "
            "starts: ppacer-async serve FILE"
        )
        return EXIT_OK
    rows = [
        [
            info.dag_id,
            info.definition.get("schedule") or "-",
            "yes" if info.paused else "no",
            _local(due),
            "-" if last is None else f"{last.status} (run {last.id})",
        ]
        for info, last, due in listed
    ]
    _print_lines(_table(["DAG", "SCHEDULE", "PAUSED", "NEXT DUE", "LAST RUN"], rows, shrink={0, 1}))
    return EXIT_OK


# -- trigger --------------------------------------------------------------------------------


def _add_trigger_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trigger",
        help="queue a manual run of a DAG (--wait to follow it to the end)",
        description=(
            "Queue a manual run of a DAG now. A scheduler serving the storage starts it "
            "within about a second, paused or not."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "a run param overriding the DAG's default; VALUE is read as JSON when it "
            "parses (10, true, [1,2], null), else kept as text; repeat for more"
        ),
    )
    _add_wait_options(parser, "the run")
    _add_storage_option(parser)
    _json_option(parser, "the run")
    parser.set_defaults(handler=cmd_trigger)


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["limit=10", "day=2026-01-31"]`` -> ``{"limit": 10, "day": "2026-01-31"}``.

    :raises CliError: an item has no ``=`` or no key.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CliError(
                f"--param {item!r} is not KEY=VALUE; write e.g. --param limit=10 "
                "or --param day=2026-01-31"
            )
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        params[key.strip()] = value
    return params


def cmd_trigger(args: argparse.Namespace) -> int:
    """Queue a manual run; with ``--wait``, follow it to the end."""
    params = parse_params(args.param)
    _check_timeout(args, "--wait")
    return _on_storage(args, lambda storage: _trigger(storage, args, params))


async def _trigger(storage: Storage, args: argparse.Namespace, params: dict[str, Any]) -> int:
    run = await operations.trigger(storage, args.dag_id, params, _now())
    if args.json and not args.wait:
        _print_json(_run_json(run))
    elif not args.json:
        shown = f" with params {json.dumps(run.params)}" if run.params else ""
        print(_fit(f"queued run {run.id} of {run.dag_id}{shown}", WIDTH), flush=True)
    return await _wait_and_report(storage, run, args) if args.wait else EXIT_OK


# -- runs -----------------------------------------------------------------------------------


def _add_runs_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list runs, newest first",
        description="List DAG runs, newest first.",
    )
    parser.add_argument("--dag", metavar="DAG_ID", help="only the runs of this DAG")
    parser.add_argument(
        "--status",
        choices=[str(status) for status in DagRunStatus],
        help="only runs with this status",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=20,
        metavar="N",
        help="show at most N runs (default: %(default)s)",
    )
    _add_storage_option(parser)
    _json_option(parser, "the runs")
    parser.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    """List runs, newest first."""
    return _on_storage(args, lambda storage: _runs(storage, args))


async def _runs(storage: Storage, args: argparse.Namespace) -> int:
    if args.dag is not None:
        await operations.recorded_dag(storage, args.dag)
    status = None if args.status is None else DagRunStatus(args.status)
    runs = await storage.list_runs(dag_id=args.dag, status=status, limit=args.limit)
    if args.json:
        _print_json([_run_json(run) for run in runs])
    elif runs:
        _print_lines(_runs_table(runs, _now()))
    else:
        _note("no runs match")
    return EXIT_OK


# -- show -----------------------------------------------------------------------------------


def _add_show_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "show",
        help="show a run: each task's status, attempts, start, duration, last error",
        description=(
            "Show one run and each of its tasks: status, attempts, when the latest attempt "
            "started, how long it took, and the first line of the task's last error."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=_run_id)
    _add_storage_option(parser)
    _json_option(parser, "the run, its tasks and every attempt (with full errors)")
    parser.set_defaults(handler=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    """Show one run and its tasks."""
    return _on_storage(args, lambda storage: _show(storage, args))


async def _show(storage: Storage, args: argparse.Namespace) -> int:
    now = _now()
    run = await _require_run(storage, args.run_id)
    attempts = await storage.task_runs(run.id)
    task_ids = _task_ids(await storage.get_dag(run.dag_id), attempts)
    latest = _latest(attempts)
    errors: dict[str, TaskRun] = {}  # the latest attempt with an error, per task
    for attempt in attempts:
        if attempt.error:
            errors[attempt.task_id] = attempt
    if args.json:
        tasks = []
        for task_id in task_ids:
            tr = latest.get(task_id)
            failed = errors.get(task_id)
            tasks.append(
                {
                    "task_id": task_id,
                    "status": None if tr is None else str(tr.status),
                    "attempts": 0 if tr is None else tr.attempt,
                    "started_at": None if tr is None else _iso(tr.started_at),
                    "finished_at": None if tr is None else _iso(tr.finished_at),
                    "duration_seconds": None
                    if tr is None
                    else _seconds(tr.started_at, tr.finished_at),
                    "error": None if failed is None else failed.error,
                }
            )
        _print_json(
            {
                "run": _run_json(run),
                "tasks": tasks,
                "attempts": [_attempt_json(attempt) for attempt in attempts],
            }
        )
        return EXIT_OK
    took = _duration(_took(run.started_at, run.finished_at, now))
    finished = "-" if run.finished_at is None else f"{_local(run.finished_at)} (took {took})"
    header = [
        f"run {run.id} of {run.dag_id}: {run.status}",
        f"trigger       {run.trigger}",
        f"logical time  {_local(run.logical_time)}",
        f"started       {_local(run.started_at)}",
        f"finished      {finished}",
    ]
    if run.params:
        header.append(f"params        {json.dumps(run.params, ensure_ascii=False)}")
    _print_lines(_fit(line, WIDTH) for line in header)
    print()
    rows: list[list[str]] = []
    notes: dict[int, str] = {}
    info = await storage.get_dag(run.dag_id)
    for task_id in task_ids:
        tr = latest.get(task_id)
        if tr is None:
            rows.append([task_id, _not_started(task_id, info, latest, run), "0", "-", "-"])
            continue
        rows.append(
            [
                task_id,
                str(tr.status),
                str(tr.attempt),
                _local(tr.started_at),
                _duration(_took(tr.started_at, tr.finished_at, now)),
            ]
        )
        failed = errors.get(task_id)
        if failed is not None and tr.status is not TaskStatus.success:
            notes[len(rows)] = f"  error (attempt {failed.attempt}): {_headline(failed.error)}"
    lines = _table(
        ["TASK", "STATUS", "ATTEMPTS", "STARTED", "DURATION"], rows, right={2}, shrink={0}
    )
    for index, line in enumerate(lines):
        print(line)
        if index in notes:
            print(_fit(notes[index], WIDTH))
    return EXIT_OK


# -- logs -----------------------------------------------------------------------------------


def _add_logs_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="print the stored task logs of a run (--follow to stream them)",
        description=(
            "Print the log records that the tasks of a run wrote through ctx.log, in the "
            "order written. With --follow, keep printing new records until the run ends, "
            "then exit 0 if it succeeded and 1 if it failed."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=_run_id)
    parser.add_argument("task_id", metavar="TASK_ID", nargs="?", help="only this task's logs")
    parser.add_argument(
        "--attempt", type=_positive_int, metavar="N", help="only the logs of attempt N"
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new records until the run ends",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --follow, stop after this long and exit 1 (default: no limit)",
    )
    _add_storage_option(parser)
    _json_option(parser, "one record per line")
    parser.set_defaults(handler=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print (or follow) the stored logs of a run."""
    _check_timeout(args, "--follow")
    return _on_storage(args, lambda storage: _logs(storage, args))


def _print_log(record: LogRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_log_json(record), ensure_ascii=False), flush=True)
    else:
        print(
            f"{_local(record.time)} {record.level:<7} {record.task_id}#{record.attempt} "
            f"{record.message}",
            flush=True,
        )


async def _logs(storage: Storage, args: argparse.Namespace) -> int:
    run = await _require_run(storage, args.run_id)
    if args.task_id is not None:
        known = _task_ids(await storage.get_dag(run.dag_id), await storage.task_runs(run.id))
        if args.task_id not in known:
            raise CliError(
                f"run {run.id} of {run.dag_id} has no task {args.task_id!r} "
                f"(tasks: {', '.join(known) or 'none'})"
            )
    printed = 0
    started = anyio.current_time()
    while True:
        # The status is read before the logs: a run's last records are committed no later
        # than its end, so a finished run's records are all in the read that follows.
        run = await _require_run(storage, run.id)
        records = await storage.logs(run.id, args.task_id, args.attempt, offset=printed)
        for record in records:
            _print_log(record, args.json)
        printed += len(records)
        if not args.follow:
            break
        if run.status.finished:
            return EXIT_OK if run.status is DagRunStatus.success else EXIT_RUN_FAILED
        if args.timeout is not None and anyio.current_time() - started >= args.timeout:
            _print_error(
                f"run {run.id} is still {run.status} after {args.timeout:g} s; stopped following it"
            )
            return EXIT_RUN_FAILED
        await anyio.sleep(POLL_SECONDS)
    if not printed and not args.json:
        which = "".join(
            [
                f" task {args.task_id}" if args.task_id else "",
                f" attempt {args.attempt}" if args.attempt else "",
            ]
        )
        _note(f"no log records for run {run.id}{which}")
    return EXIT_OK


# -- restart --------------------------------------------------------------------------------


def _add_restart_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restart",
        help="re-run what did not succeed in a failed run",
        description=(
            "Queue a failed run again: its failed and upstream_failed tasks run again with "
            "new attempt numbers and a fresh retry budget; tasks that succeeded do not."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=_run_id)
    _add_wait_options(parser, "the run")
    _add_storage_option(parser)
    _json_option(parser, "the run")
    parser.set_defaults(handler=cmd_restart)


def cmd_restart(args: argparse.Namespace) -> int:
    """Queue a failed run again."""
    _check_timeout(args, "--wait")
    return _on_storage(args, lambda storage: _restart(storage, args))


async def _restart(storage: Storage, args: argparse.Namespace) -> int:
    # Read before the restart: the scheduler may add new attempts right after it.
    stale = {
        task_id: tr.attempt
        for task_id, tr in _latest(await storage.task_runs(args.run_id)).items()
        if tr.status is not TaskStatus.success
    }
    run = await operations.restart(storage, args.run_id)
    if args.json and not args.wait:
        _print_json(_run_json(run))
    elif not args.json:
        print(f"queued run {run.id} of {run.dag_id} again: what did not succeed runs again")
    return await _wait_and_report(storage, run, args, stale) if args.wait else EXIT_OK


# -- pause and unpause ----------------------------------------------------------------------


def _add_pause_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pause",
        help="stop a DAG's schedule from creating runs",
        description=(
            "Pause a DAG: its schedule creates no runs until it is unpaused. Runs already "
            "queued or running go on, and manual triggers still run."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    _add_storage_option(parser)
    parser.set_defaults(handler=cmd_pause)


def cmd_pause(args: argparse.Namespace) -> int:
    """Pause a DAG's schedule."""
    return _on_storage(args, lambda storage: _pause(storage, args))


async def _pause(storage: Storage, args: argparse.Namespace) -> int:
    await operations.pause(storage, args.dag_id)
    print(f"paused {args.dag_id}: its schedule creates no runs until it is unpaused")
    return EXIT_OK


def _add_unpause_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "unpause",
        help="resume a paused DAG's schedule",
        description="Resume the schedule of a paused DAG.",
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    parser.add_argument(
        "--from",
        dest="from_",
        choices=("now", "last"),
        default="now",
        help=(
            "now: skip the schedule points missed while paused (recorded as skipped); "
            "last: treat them by the DAG's catchup rule, from its last schedule point "
            "(default: %(default)s)"
        ),
    )
    _add_storage_option(parser)
    parser.set_defaults(handler=cmd_unpause)


def cmd_unpause(args: argparse.Namespace) -> int:
    """Resume a DAG's schedule."""
    return _on_storage(args, lambda storage: _unpause(storage, args))


async def _unpause(storage: Storage, args: argparse.Namespace) -> int:
    now = _now()
    await operations.unpause(storage, args.dag_id, args.from_, now)
    info = await operations.recorded_dag(storage, args.dag_id)
    due = _next_due(info, await storage.last_schedule_point(args.dag_id), now)
    if args.from_ == "now":
        print(f"unpaused {args.dag_id}: the points missed while paused are skipped")
    else:
        print(f"unpaused {args.dag_id}: missed points follow its catchup rule")
    print(f"next due {_local(due)}")
    return EXIT_OK


# -- backfill -------------------------------------------------------------------------------


def _add_backfill_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="create runs for the schedule points of a time range",
        description=(
            "Queue a run for every schedule point of a DAG from START to END (both "
            "included) that has no run yet. The runs start oldest first, as many at once "
            "as the DAG's max_active_runs allows. Repeating a backfill creates nothing twice."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    for flag in ("--start", "--end"):
        parser.add_argument(
            flag,
            required=True,
            metavar="TIME",
            help=("ISO-8601, e.g. 2026-01-31T06:00+00:00; a time without an offset is local time"),
        )
    _add_storage_option(parser)
    _json_option(parser, "the created runs")
    parser.set_defaults(handler=cmd_backfill)


def parse_time(text: str, option: str) -> datetime:
    """An ISO-8601 time; one without an offset is read in the local time zone.

    :raises CliError: ``text`` is not such a time.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
        return moment if moment.tzinfo is not None else moment.astimezone()
    except (ValueError, OverflowError, OSError):
        raise CliError(
            f"{option} {text!r} is not an ISO-8601 time; write e.g. 2026-01-31, "
            "2026-01-31T06:00 (local time) or 2026-01-31T06:00+00:00"
        ) from None


def cmd_backfill(args: argparse.Namespace) -> int:
    """Queue runs for the schedule points of a range."""
    start = parse_time(args.start, "--start")
    end = parse_time(args.end, "--end")
    return _on_storage(args, lambda storage: _backfill(storage, args, start, end))


async def _backfill(
    storage: Storage, args: argparse.Namespace, start: datetime, end: datetime
) -> int:
    runs = await operations.backfill(storage, args.dag_id, start, end, _now())
    if args.json:
        _print_json([_run_json(run) for run in runs])
        return EXIT_OK
    if not runs:
        print(f"nothing to backfill: every schedule point of {args.dag_id} in the range")
        print(f"{_local(start)} to {_local(end)} already has a run")
        return EXIT_OK
    plural = "" if len(runs) == 1 else "s"
    print(f"queued {len(runs)} run{plural} of {args.dag_id}, started oldest first:")
    _print_lines(_runs_table(runs, _now()))
    return EXIT_OK


# -- db -------------------------------------------------------------------------------------


def _add_db_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="the database: info (schema version, counts), upgrade (migrations)",
        description="Inspect or upgrade the database of a storage.",
    )
    parser.set_defaults(handler=_db_without_command)
    commands = parser.add_subparsers(title="db commands", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="schema version and row counts",
        description="Show the schema version of the database and how many rows it holds.",
    )
    _add_storage_option(info)
    _json_option(info, "the version and counts")
    info.set_defaults(handler=cmd_db_info)
    upgrade = commands.add_parser(
        "upgrade",
        help="apply pending schema migrations (safe to repeat)",
        description=(
            "Apply the schema migrations the database lacks, creating it if it does not "
            "exist. Safe to repeat, and to run while a scheduler serves the database."
        ),
    )
    _add_storage_option(upgrade)
    _json_option(upgrade, "the versions before and after")
    upgrade.set_defaults(handler=cmd_db_upgrade)


def _db_without_command(args: argparse.Namespace) -> int:
    raise CliError("name a db command: ppacer-async db info, or ppacer-async db upgrade")


def cmd_db_info(args: argparse.Namespace) -> int:
    """Show the schema version and row counts."""
    return _on_storage(args, lambda storage: _db_info(storage, args))


async def _db_info(storage: Storage, args: argparse.Namespace) -> int:
    counts = await storage.counts()
    values = {
        "schema_version": counts.schema_version,
        "dags": counts.dags,
        "dag_runs": counts.dag_runs,
        "task_runs": counts.task_runs,
        "task_logs": counts.task_logs,
        "schedule_events": counts.schedule_events,
    }
    workers = await storage.workers() if isinstance(storage, SharedStorage) else None
    if args.json:
        shown: dict[str, Any] = {"storage": redact_url(storage_url(args.storage)), **values}
        if workers is not None:
            shown["workers"] = [
                {
                    "id": w.id,
                    "host": w.host,
                    "pid": w.pid,
                    "role": w.role,
                    "started_at": _iso(w.started_at),
                    "renewed_at": _iso(w.renewed_at),
                    "expires_at": _iso(w.expires_at),
                }
                for w in workers
            ]
        _print_json(shown)
        return EXIT_OK
    print(_fit(f"storage          {redact_url(storage_url(args.storage))}", WIDTH))
    for name, value in values.items():
        print(f"{name.replace('_', ' '):<16} {value}")
    if workers is not None:
        print(f"{'workers':<16} {len(workers)}")
        if workers:
            print()
            print(
                "\n".join(
                    _table(
                        ("WORKER", "ROLE", "RENEWED"),
                        [(w.id, w.role, _local(w.renewed_at)) for w in workers],
                        shrink=(0,),
                    )
                )
            )
    return EXIT_OK


def _version_on_disk(storage: Storage) -> int | None:
    """The schema version of a SQLite file before it is opened (opening migrates it);
    ``None`` when there is no database there yet; ``-1`` when it cannot be told."""
    from .storage.sqlite import SQLiteStorage

    if not isinstance(storage, SQLiteStorage):
        return -1
    path = Path(storage.path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return -1  # opening the storage says what is wrong with the file
    return int(row[0])


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations, creating the database if needed."""
    before = _version_on_disk(command_storage(args.storage, create=True))
    return _on_storage(args, lambda storage: _db_upgrade(storage, args, before), create=True)


async def _db_upgrade(storage: Storage, args: argparse.Namespace, before: int | None) -> int:
    after = (await storage.counts()).schema_version
    if args.json:
        _print_json(
            {
                "storage": redact_url(storage_url(args.storage)),
                "created": before is None,
                "schema_version_before": None if before is None or before < 0 else before,
                "schema_version": after,
            }
        )
    elif before is None:
        print(f"created {redact_url(storage_url(args.storage))} at schema version {after}")
    elif before < 0:
        print(f"schema version {after}; pending migrations, if any, were applied")
    elif before == after:
        print(f"schema version {after} (up to date)")
    else:
        print(f"upgraded from {before} to {after}")
    return EXIT_OK


# -- the command line ---------------------------------------------------------------------


def _add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        metavar="URL",
        default=None,
        help=(
            f"memory://, sqlite:///path.db or postgresql://user@host/db "
            f"(default: ${STORAGE_ENV}, else {DEFAULT_URL})"
        ),
    )


def _add_log_level_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        metavar="LEVEL",
        help=f"show log lines at this level and above: {', '.join(LOG_LEVELS)} "
        "(default: %(default)s)",
    )


#: One function per subcommand, adding its parser.
_SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_serve_parser,
    _add_dags_parser,
    _add_trigger_parser,
    _add_runs_parser,
    _add_show_parser,
    _add_logs_parser,
    _add_restart_parser,
    _add_pause_parser,
    _add_unpause_parser,
    _add_backfill_parser,
    _add_db_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppacer-async",
        description="ppacer-async: an asyncio-native DAG scheduler.",
        epilog=(
            "Every command but serve works on the storage directly (--storage, else "
            f"${STORAGE_ENV}, else {DEFAULT_URL}), so it works while a scheduler serves it "
            "from another process. Times are shown in the local time zone with their "
            "offset; the listing commands (dags, runs, show, logs, trigger, backfill, "
            "db info) take --json for machine-readable output, with times in ISO-8601 "
            "UTC. Exit codes: 0 done; 1 a run that the command waited for failed (or the "
            "wait timed out); 2 bad usage, or an unknown DAG or run, explained in one line."
        ),
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code when argparse ended (``--help``, bad usage)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the ``ppacer-async`` command; return its exit code."""
    parser = build_parser()
    parsed = _parse(parser, sys.argv[1:] if argv is None else argv)
    if isinstance(parsed, int):
        return parsed
    handler: Callable[[argparse.Namespace], int] | None = getattr(parsed, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        _print_error("name a command; see ppacer-async --help")
        return EXIT_USAGE
    try:
        return handler(parsed)
    except CliError as exc:
        _print_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed (while importing DAGs).
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:
        # A failed start and a broken storage are explained in one line; anything else
        # is a bug and keeps its traceback.
        found = _find_error(exc, CliError) or _find_error(exc, StorageError)
        if found is None:
            raise
        _print_error(str(found))
        return EXIT_USAGE
