"""``ppacer-async logs``: print, or follow, the records that a run's tasks wrote."""

from __future__ import annotations

import argparse
import json

import anyio

from .. import operations
from .._enums import DagRunStatus
from .._structures import LogRecord
from ..abc import Storage
from . import output
from .common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    Subparsers,
    add_json_option,
    add_storage_option,
    on_storage,
    positive_int,
    positive_seconds,
    print_error,
    run_id,
)
from .waiting import POLL_SECONDS, check_timeout


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="print the stored task logs of a run (--follow to stream them)",
        description=(
            "Print the log records of a run's task attempts: what "
            "each wrote through ctx.log or standard logging, printed to stdout (STDOUT) or "
            "stderr (STDERR), and the traceback of a failed attempt (ERROR), in the "
            "order written. With --follow, keep printing new records until the run ends, "
            "then exit 0 if it succeeded and 1 if it failed."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=run_id)
    parser.add_argument("task_id", metavar="TASK_ID", nargs="?", help="only this task's logs")
    parser.add_argument(
        "--attempt", type=positive_int, metavar="N", help="only the logs of attempt N"
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new records until the run ends",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --follow, stop after this long and exit 1 (default: no limit)",
    )
    add_storage_option(parser)
    add_json_option(parser, "one record per line")
    parser.set_defaults(handler=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print (or follow) the stored logs of a run."""
    check_timeout(args, "--follow")
    return on_storage(args, lambda storage: _logs(storage, args))


def _print_log(record: LogRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(output.log_json(record), ensure_ascii=False), flush=True)
    else:
        # Lines after a record's first (a traceback) are indented, so that every line
        # that starts at the margin starts a record.
        message = record.message.replace("\n", "\n    ")
        print(
            f"{output.local(record.time)} {record.level:<7} {record.task_id}#{record.attempt} "
            f"{message}",
            flush=True,
        )


async def _logs(storage: Storage, args: argparse.Namespace) -> int:
    printed = 0
    started = anyio.current_time()
    while True:
        page = await operations.logs(
            storage, args.run_id, task_id=args.task_id, attempt=args.attempt, after=printed
        )
        run = page.run
        for record in page.records:
            _print_log(record, args.json)
        printed = page.next_after
        if not args.follow:
            break
        if run.status.finished:
            return EXIT_OK if run.status is DagRunStatus.success else EXIT_RUN_FAILED
        if args.timeout is not None and anyio.current_time() - started >= args.timeout:
            print_error(
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
        output.note(f"no log records for run {run.id}{which}")
    return EXIT_OK
