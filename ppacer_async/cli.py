"""The ``ppacer-async`` command.

Each subcommand is one ``cmd_<name>(args) -> int`` function registered by one
``_add_<name>_parser`` function; loading DAGs, building the storage, logging and error
reporting are shared helpers. Exit codes: 0 done, 2 bad usage or something the command
could not find or open (with a one-line message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import anyio
import anyio.abc

from ._dag import DAG
from ._exceptions import DagDefinitionError, PpacerError, StorageError
from ._scheduler.scheduler import Scheduler
from .abc import Storage
from .storage import DEFAULT_URL, _redact, from_url

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
        raise CliError(f"cannot load DAGs: {path} cannot be imported as a Python file")
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
        )
    except PpacerError as exc:
        raise CliError(str(exc)) from None
    logger.info(
        "loaded %d DAG%s from %s; storage %s",
        len(dags),
        "" if len(dags) == 1 else "s",
        args.target,
        _redact(url),
    )
    anyio.run(_serve_until_signal, scheduler)
    logger.info("stopped")
    _exit_past_blocked_threads()
    return EXIT_OK


def _exit_past_blocked_threads() -> None:
    """Exit now if blocking tasks still hold threads after the stop.

    Their attempts are already saved as interrupted and will run again, but Python
    would wait for the threads before exiting: a task stuck in ``time.sleep`` or a
    socket read would keep the process alive long after "stopped". Threads get
    ``THREAD_GRACE`` seconds to return (a task that polls ``ctx.cancelled`` does).
    """
    deadline = time.monotonic() + THREAD_GRACE
    blocked = []
    try:
        for thread in threading.enumerate():
            if thread is threading.current_thread() or thread.daemon:
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
_SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (_add_serve_parser,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppacer-async",
        description="ppacer-async: an asyncio-native DAG scheduler.",
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
