"""``ppacer-async serve``: run the scheduler in the foreground until SIGINT or SIGTERM,
with log lines on stderr."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .._exceptions import PpacerError
from .._scheduler.scheduler import Scheduler
from ..storage import redact_url
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    Subparsers,
    add_storage_option,
    duration,
    load_storage,
    pool_option,
    positive_int,
    storage_url,
)
from .loading import load_dags_and_pools
from .web import (
    WebSettings,
    add_web_options,
    bind,
    build_app,
    parse_bind,
    serve_app,
    web_settings,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

#: Seconds that threads of blocking tasks get to return after a stop before the
#: process exits without them.
THREAD_GRACE = 2.0

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

logger = logging.getLogger("ppacer_async.cli")


# -- log lines ------------------------------------------------------------------------------


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


# -- serve ------------------------------------------------------------------------------------


def add_parser(subparsers: Subparsers) -> None:
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
    add_storage_option(parser)
    parser.add_argument(
        "--max-concurrent-tasks",
        type=positive_int,
        default=100,
        metavar="N",
        help="task attempts running at once (default: %(default)s)",
    )
    parser.add_argument(
        "--max-threads",
        type=positive_int,
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
    parser.add_argument(
        "--pool",
        action="append",
        type=pool_option,
        default=[],
        metavar="NAME=SLOTS",
        help=(
            "a pool of SLOTS slots that tasks with pool=NAME share (on PostgreSQL, "
            "across every process); repeat for more pools. Added to, and overriding, "
            "the 'pools' dict of the DAGs' module"
        ),
    )
    parser.add_argument(
        "--retention",
        type=duration,
        metavar="AGE",
        help=(
            "delete runs that finished longer ago than AGE (30d, 12h), with their "
            "attempts and logs, while serving (default: keep everything)"
        ),
    )
    parser.add_argument(
        "--web",
        type=parse_bind,
        default=None,
        metavar="[HOST:]PORT",
        help=(
            "also serve the web pages, the JSON API and /metrics on this port (host "
            "127.0.0.1 unless given; another address needs a token or --web-insecure)"
        ),
    )
    add_web_options(parser, prefix="--web-")
    add_log_level_option(parser)
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the DAGs of ``args.target`` until SIGINT or SIGTERM."""
    configure_logging(args.log_level)
    settings, sock = None, None
    if args.web is not None:
        settings = web_settings(args, *args.web)
        sock = bind(settings)  # a taken port fails before anything starts
    elif args.web_token_file or args.web_insecure or args.web_read_only:
        raise CliError("--web-token-file, --web-insecure and --web-read-only need --web PORT")
    try:
        return _serve(args, settings, sock)
    finally:
        if sock is not None:
            sock.close()


def _serve(
    args: argparse.Namespace, settings: WebSettings | None, sock: socket.socket | None
) -> int:
    dags, pools = load_dags_and_pools(args.target)
    pools.update(args.pool)
    url = storage_url(args.storage)
    storage = load_storage(url)
    try:
        scheduler = Scheduler(
            dags,
            storage=storage,
            max_concurrent_tasks=args.max_concurrent_tasks,
            max_threads=args.max_threads,
            role=args.role,
            pools=pools,
            retention=args.retention,
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
    web: tuple[Starlette, socket.socket] | None = None
    if settings is not None and sock is not None:
        web = (build_app(scheduler, None, settings), sock)
    threads_before = set(threading.enumerate())
    # The DAGs just loaded live as long as this process: move them out of the cyclic
    # collector's reach, or every full collection rescans them (measurable with
    # DAGs of 100,000 tasks; see benchmarks/README.md, W6).
    gc.collect()
    gc.freeze()
    anyio.run(_serve_until_signal, scheduler, web)
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


async def _serve_until_signal(
    scheduler: Scheduler, web: tuple[Starlette, socket.socket] | None = None
) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(_stop_on_signal, scheduler)
        try:
            await tg.start(_serve_then_cancel, scheduler, tg.cancel_scope)
        except PpacerError as exc:
            # Could not start: the storage is locked, unreachable, or not ours.
            raise CliError(str(exc)) from None
        if web is not None:  # on the scheduler's loop, stopped with it
            await tg.start(serve_app, *web)


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


def add_log_level_option(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=default,
        metavar="LEVEL",
        help=f"show log lines at this level and above: {', '.join(LOG_LEVELS)} "
        "(default: %(default)s)",
    )
