"""What every command shares: exit codes, one-line errors, the storage a command works
on, and the options and argument types that several commands take."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from .._exceptions import PpacerError
from ..abc import Storage
from ..storage import DEFAULT_URL, MemoryStorage, from_url

#: The environment variable naming the storage URL when ``--storage`` is not given.
STORAGE_ENV = "PPACER_STORAGE"

EXIT_OK = 0
#: Exit code of a command that waited for a run which failed (or ran past ``--timeout``).
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
#: What a shell reports for a process ended by SIGINT; used when a second signal
#: abandons a graceful stop.
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """Something the user asked for cannot be done; its message is shown as one line."""


def one_line(text: str) -> str:
    """Join a possibly multi-line message into one line."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def print_error(message: str) -> None:
    print(f"ppacer-async: error: {one_line(message)}", file=sys.stderr, flush=True)


def find_error(exc: BaseException, kind: type[Exception]) -> Exception | None:
    """The first ``kind`` exception in ``exc`` or, for an exception group, inside it."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_error(inner, kind)
            if found is not None:
                return found
    return None


# -- the storage ----------------------------------------------------------------------------


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
    from ..storage.sqlite import SQLiteStorage

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


def run_on_storage(
    storage: Storage,
    work: Callable[[Storage], Awaitable[int]],
    *,
    before_open: Callable[[Storage], Awaitable[object]] | None = None,
) -> int:
    """Open ``storage``, run ``work`` on it, close it; return its exit code.

    :param before_open: awaited first, on the storage not yet open.
    :raises CliError: the storage cannot be used, or the request names something that
        does not exist or is not allowed (an unknown DAG or run, a bad range).
    """

    async def run() -> int:
        if before_open is not None:
            await before_open(storage)
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


def on_storage(
    args: argparse.Namespace,
    work: Callable[[Storage], Awaitable[int]],
) -> int:
    """Run ``work`` on the storage ``args`` name (see :func:`run_on_storage`)."""
    return run_on_storage(command_storage(args.storage), work)


# -- options and argument types ---------------------------------------------------------------


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        metavar="URL",
        default=None,
        help=(
            f"memory://, sqlite:///path.db or postgresql://user@host/db "
            f"(default: ${STORAGE_ENV}, else {DEFAULT_URL})"
        ),
    )


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON (times in ISO-8601 UTC) instead of text",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def pool_option(text: str) -> tuple[str, int]:
    """``NAME=SLOTS``, e.g. ``warehouse=4``."""
    name, sep, slots = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=SLOTS such as warehouse=4, got {text!r}")
    try:
        return name.strip(), positive_int(slots)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"pool {name.strip()!r}: slots {exc}") from None


def run_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a run id is a whole number, got {text!r}; list runs with `ppacer-async runs`"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a run id is at least 1, got {value}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([wdhms])\s*")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def duration(text: str) -> timedelta:
    """A positive duration: a number and a unit, ``30d``, ``12h``, ``90m``, ``2w``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a number and a unit (w, d, h, m or s), e.g. 30d or 12h; got {text!r}"
        )
    value = timedelta(**{_UNITS[match[2]]: float(match[1])})
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


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


#: What ``add_subparsers()`` returns; argparse does not name its type publicly.
Subparsers = Any
