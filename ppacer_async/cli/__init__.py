"""The ``ppacer-async`` command.

Each subcommand is one ``cmd_<name>(args) -> int`` function registered by one
``add_*parser`` function, in a module per command group: ``serve`` (and its signal
handling), ``dags`` (dags, trigger, pause, unpause, backfill), ``runs`` (runs, show,
restart, cancel), ``logs`` and ``db``. The commands only parse, call
:mod:`ppacer_async.operations` and format what it returns (``output``); loading DAG
files, the storage a command works on and ``--wait`` are shared modules. Exit codes:
0 done; 1 a run the command waited for failed; 2 bad usage, or something the command
could not find, load or open, explained in one line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from .._exceptions import StorageError
from ..storage import DEFAULT_URL
from . import completion, dags, db, events, logs, pools, runs, serve, trial, web
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    STORAGE_ENV,
    CliError,
    Subparsers,
    find_error,
    print_error,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "EXIT_USAGE",
    "STORAGE_ENV",
    "CliError",
    "build_parser",
    "main",
]

#: One function per subcommand, adding its parser, in the order ``--help`` lists them.
_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    serve.add_parser,
    dags.add_dags_parser,
    dags.add_trigger_parser,
    runs.add_runs_parser,
    runs.add_show_parser,
    logs.add_parser,
    runs.add_restart_parser,
    runs.add_cancel_parser,
    dags.add_pause_parser,
    dags.add_unpause_parser,
    dags.add_backfill_parser,
    pools.add_parser,
    events.add_parser,
    trial.add_parser,
    db.add_parser,
    web.add_parser,
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
    parser.add_argument("--version", action="version", version=f"ppacer-async {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    completion.add_parser(subparsers, build_parser)
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
        print_error("name a command; see ppacer-async --help")
        return EXIT_USAGE
    try:
        return handler(parsed)
    except CliError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed (while importing DAGs).
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:
        # A failed start and a broken storage are explained in one line; anything else
        # is a bug and keeps its traceback.
        found = find_error(exc, CliError) or find_error(exc, StorageError)
        if found is None:
            raise
        print_error(str(found))
        return EXIT_USAGE
